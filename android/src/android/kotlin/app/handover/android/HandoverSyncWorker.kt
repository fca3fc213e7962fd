package app.handover.android

import android.app.Notification
import android.app.NotificationChannel
import android.app.NotificationManager
import android.content.Context
import android.os.Build
import androidx.work.BackoffPolicy
import androidx.work.Constraints
import androidx.work.CoroutineWorker
import androidx.work.ExistingPeriodicWorkPolicy
import androidx.work.ExistingWorkPolicy
import androidx.work.ForegroundInfo
import androidx.work.NetworkType
import androidx.work.OneTimeWorkRequestBuilder
import androidx.work.OutOfQuotaPolicy
import androidx.work.PeriodicWorkRequestBuilder
import androidx.work.WorkInfo
import androidx.work.WorkManager
import androidx.work.WorkerParameters
import app.handover.HttpSyncTransport
import app.handover.OfficeTransport
import app.handover.SyncFailure
import app.handover.SyncState
import app.handover.SyncWork
import app.handover.sync
import java.util.concurrent.TimeUnit
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.flow.first

/**
 * Implemented by the app's `Application`: how to reach the office. The
 * worker uses the process's shared client ([Handover.client]).
 */
interface HandoverSyncHost {
    /** The sync service's base URL, e.g. `https://office.example`. */
    val handoverOfficeUrl: String

    /** How requests reach the office; HTTPS to [handoverOfficeUrl] unless overridden. */
    fun handoverTransport(): OfficeTransport = HttpSyncTransport(handoverOfficeUrl)
}

/**
 * Syncs with the office when there is a network: pulls the day's manifests,
 * pushes the outbox and applies the acks ([sync]). A failure a retry can
 * fix (no network, the office down) is retried with back-off, at most
 * [SyncWork.MAX_ATTEMPTS] times per request; one it cannot (the device
 * revoked or not enrolled, its key gone: [SyncFailure.permanent]) ends the
 * request at once, is logged, and shows in `HandoverClient.syncState`.
 * Nothing is ever dropped (the outbox is cleared only by a verified ack).
 * An app that forgot to implement [HandoverSyncHost] fails loudly, at once.
 */
class HandoverSyncWorker(context: Context, params: WorkerParameters) : CoroutineWorker(context, params) {
    override suspend fun doWork(): Result {
        val host = applicationContext as? HandoverSyncHost
            ?: throw IllegalStateException(
                "handover: ${applicationContext.javaClass.name} does not implement app.handover.android.HandoverSyncHost; " +
                    "the sync worker cannot know the office",
            )
        val outcome = try {
            val progress = Handover.client(applicationContext).sync(host.handoverTransport())
            SyncWork.outcome(progress.pending, null, runAttemptCount)
        } catch (e: CancellationException) {
            throw e
        } catch (e: Exception) {
            // The client's syncState holds the failure sorted with the
            // office's answer; opening the client can fail before any sync.
            val failure = (Handover.clientOrNull()?.syncState?.value as? SyncState.Failed)?.failure ?: SyncFailure.of(e)
            SyncWork.outcome(null, failure, runAttemptCount)
        }
        return when (outcome) {
            SyncWork.Outcome.SUCCESS -> Result.success()
            SyncWork.Outcome.RETRY -> Result.retry()
            SyncWork.Outcome.FAIL -> Result.failure()
        }
    }

    /** Needed for expedited work before Android 12: a quiet notification while it runs. */
    override suspend fun getForegroundInfo(): ForegroundInfo {
        val manager = applicationContext.getSystemService(NotificationManager::class.java)
        if (Build.VERSION.SDK_INT >= 26) {
            manager.createNotificationChannel(NotificationChannel(CHANNEL, "Sync", NotificationManager.IMPORTANCE_LOW))
        }
        val builder = if (Build.VERSION.SDK_INT >= 26) {
            Notification.Builder(applicationContext, CHANNEL)
        } else {
            @Suppress("DEPRECATION")
            Notification.Builder(applicationContext)
        }
        val notification = builder
            .setSmallIcon(android.R.drawable.stat_notify_sync)
            .setContentTitle("Syncing with the office")
            .setOngoing(true)
            .build()
        return when (val type = SyncWork.foregroundServiceType(Build.VERSION.SDK_INT)) {
            null -> ForegroundInfo(NOTIFICATION_ID, notification)
            else -> ForegroundInfo(NOTIFICATION_ID, notification, type)
        }
    }

    companion object {
        private const val PERIODIC = "handover-sync"
        private const val NOW = "handover-sync-now"
        private const val CHANNEL = "handover-sync"
        private const val NOTIFICATION_ID = 0x4A4E
        private val online = Constraints.Builder().setRequiredNetworkType(NetworkType.CONNECTED).build()

        /** Sync every hour while connected. Calling again updates the schedule (UPDATE). */
        fun schedule(context: Context, every: Long = 1, unit: TimeUnit = TimeUnit.HOURS) {
            val request = PeriodicWorkRequestBuilder<HandoverSyncWorker>(every, unit)
                .setConstraints(online)
                .setBackoffCriteria(BackoffPolicy.EXPONENTIAL, 30, TimeUnit.SECONDS)
                .build()
            WorkManager.getInstance(context).enqueueUniquePeriodicWork(PERIODIC, ExistingPeriodicWorkPolicy.UPDATE, request)
        }

        /**
         * Sync as soon as there is a network (the postman is back at the
         * office), expedited. A request waiting in back-off is replaced, so
         * the tap is not swallowed for hours; a sync that is running is
         * kept, so a second tap does not cancel it ([SyncWork.replaceQueued]).
         */
        suspend fun syncNow(context: Context) {
            val manager = WorkManager.getInstance(context)
            val queued = manager.getWorkInfosForUniqueWorkFlow(NOW).first()
            val policy = if (SyncWork.replaceQueued(queued.map { it.state == WorkInfo.State.RUNNING })) {
                ExistingWorkPolicy.REPLACE
            } else {
                ExistingWorkPolicy.KEEP
            }
            val request = OneTimeWorkRequestBuilder<HandoverSyncWorker>()
                .setConstraints(online)
                .setExpedited(OutOfQuotaPolicy.RUN_AS_NON_EXPEDITED_WORK_REQUEST)
                .setBackoffCriteria(BackoffPolicy.EXPONENTIAL, 30, TimeUnit.SECONDS)
                .build()
            manager.enqueueUniqueWork(NOW, policy, request)
        }
    }
}
