package app.handover.work

import android.content.Context
import androidx.work.BackoffPolicy
import androidx.work.Constraints
import androidx.work.CoroutineWorker
import androidx.work.ExistingPeriodicWorkPolicy
import androidx.work.ExistingWorkPolicy
import androidx.work.NetworkType
import androidx.work.OneTimeWorkRequestBuilder
import androidx.work.PeriodicWorkRequestBuilder
import androidx.work.WorkManager
import androidx.work.WorkerParameters
import app.handover.HandoverClient
import app.handover.SyncTransport
import app.handover.ffi.HandoverException
import app.handover.syncOnce
import java.io.IOException
import java.util.concurrent.TimeUnit

/** Implemented by the app's `Application`: where the database is and how to reach the office. */
interface HandoverSyncHost {
    val handoverDatabasePath: String
    fun handoverTransport(): SyncTransport
}

/**
 * Sends the outbox to the office when there is a network, and applies the
 * acks. Android only (it cannot be compiled on the JVM-only CI; see
 * android/README.md). The sync logic itself is [syncOnce], tested on the JVM.
 */
class HandoverSyncWorker(context: Context, params: WorkerParameters) : CoroutineWorker(context, params) {
    override suspend fun doWork(): Result {
        val host = applicationContext as? HandoverSyncHost ?: return Result.failure()
        return try {
            HandoverClient.open(host.handoverDatabasePath).use { client ->
                val r = client.syncOnce(host.handoverTransport())
                if (r.pending == 0L) Result.success() else Result.retry()
            }
        } catch (e: IOException) {
            Result.retry()
        } catch (e: HandoverException.Refused) {
            // An ack that does not check out: keep everything, report, try later.
            Result.retry()
        }
    }

    companion object {
        private const val PERIODIC = "handover-sync"
        private const val NOW = "handover-sync-now"
        private val online = Constraints.Builder().setRequiredNetworkType(NetworkType.CONNECTED).build()

        /** Sync every hour while connected. */
        fun schedule(context: Context) {
            val request = PeriodicWorkRequestBuilder<HandoverSyncWorker>(1, TimeUnit.HOURS)
                .setConstraints(online)
                .setBackoffCriteria(BackoffPolicy.EXPONENTIAL, 30, TimeUnit.SECONDS)
                .build()
            WorkManager.getInstance(context).enqueueUniquePeriodicWork(PERIODIC, ExistingPeriodicWorkPolicy.KEEP, request)
        }

        /** Sync as soon as there is a network (e.g. when the postman is back at the office). */
        fun syncNow(context: Context) {
            val request = OneTimeWorkRequestBuilder<HandoverSyncWorker>()
                .setConstraints(online)
                .setBackoffCriteria(BackoffPolicy.EXPONENTIAL, 30, TimeUnit.SECONDS)
                .build()
            WorkManager.getInstance(context).enqueueUniqueWork(NOW, ExistingWorkPolicy.REPLACE, request)
        }
    }
}
