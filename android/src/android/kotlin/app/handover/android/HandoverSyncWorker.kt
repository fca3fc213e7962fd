package app.handover.android

import android.app.NotificationChannel
import android.app.NotificationManager
import android.content.Context
import android.content.pm.ServiceInfo
import android.os.Build
import androidx.core.app.NotificationCompat
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
import androidx.work.WorkManager
import androidx.work.WorkerParameters
import app.handover.HttpSyncTransport
import app.handover.OfficeTransport
import app.handover.sync
import java.util.concurrent.TimeUnit
import kotlinx.coroutines.CancellationException

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
 * pushes the outbox and applies the acks ([sync]). Any failure but
 * cancellation is retried with back-off, at most [MAX_ATTEMPTS] times per
 * request; nothing is ever dropped (the outbox is cleared only by a
 * verified ack). An app that forgot to implement [HandoverSyncHost] fails
 * loudly, at once.
 */
class HandoverSyncWorker(context: Context, params: WorkerParameters) : CoroutineWorker(context, params) {
    override suspend fun doWork(): Result {
        val host = applicationContext as? HandoverSyncHost
            ?: throw IllegalStateException(
                "handover: ${applicationContext.javaClass.name} does not implement app.handover.android.HandoverSyncHost; " +
                    "the sync worker cannot know the office",
            )
        return try {
            val progress = Handover.client(applicationContext).sync(host.handoverTransport())
            if (progress.pending == 0L) Result.success() else retryOrFail()
        } catch (e: CancellationException) {
            throw e
        } catch (e: Exception) {
            // Network down, office refusing, a forged ack: keep everything, try later.
            retryOrFail()
        }
    }

    private fun retryOrFail(): Result = if (runAttemptCount + 1 < MAX_ATTEMPTS) Result.retry() else Result.failure()

    /** Needed for expedited work before Android 12: a quiet notification while it runs. */
    override suspend fun getForegroundInfo(): ForegroundInfo {
        val manager = applicationContext.getSystemService(NotificationManager::class.java)
        if (Build.VERSION.SDK_INT >= 26) {
            manager.createNotificationChannel(NotificationChannel(CHANNEL, "Sync", NotificationManager.IMPORTANCE_LOW))
        }
        val notification = NotificationCompat.Builder(applicationContext, CHANNEL)
            .setSmallIcon(android.R.drawable.stat_notify_sync)
            .setContentTitle("Syncing with the office")
            .setOngoing(true)
            .build()
        return if (Build.VERSION.SDK_INT >= 29) {
            ForegroundInfo(NOTIFICATION_ID, notification, ServiceInfo.FOREGROUND_SERVICE_TYPE_DATA_SYNC)
        } else {
            ForegroundInfo(NOTIFICATION_ID, notification)
        }
    }

    companion object {
        /** Tries of one sync request before it is given up (the next request starts afresh). */
        const val MAX_ATTEMPTS = 10
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
         * office), expedited. A sync already queued or running is kept (KEEP):
         * tapping "sync" twice does not cancel the first.
         */
        fun syncNow(context: Context) {
            val request = OneTimeWorkRequestBuilder<HandoverSyncWorker>()
                .setConstraints(online)
                .setExpedited(OutOfQuotaPolicy.RUN_AS_NON_EXPEDITED_WORK_REQUEST)
                .setBackoffCriteria(BackoffPolicy.EXPONENTIAL, 30, TimeUnit.SECONDS)
                .build()
            WorkManager.getInstance(context).enqueueUniqueWork(NOW, ExistingWorkPolicy.KEEP, request)
        }
    }
}
