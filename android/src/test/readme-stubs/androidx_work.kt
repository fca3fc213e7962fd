@file:Suppress("unused", "UNUSED_PARAMETER")

package androidx.work

import android.app.Notification
import android.content.Context
import java.util.concurrent.TimeUnit

enum class BackoffPolicy { EXPONENTIAL, LINEAR }

enum class NetworkType { NOT_REQUIRED, CONNECTED, UNMETERED }

enum class ExistingPeriodicWorkPolicy { REPLACE, KEEP, UPDATE, CANCEL_AND_REENQUEUE }

enum class ExistingWorkPolicy { REPLACE, KEEP, APPEND, APPEND_OR_REPLACE }

enum class OutOfQuotaPolicy { RUN_AS_NON_EXPEDITED_WORK_REQUEST, DROP_WORK_REQUEST }

class Constraints private constructor() {
    class Builder {
        fun setRequiredNetworkType(networkType: NetworkType): Builder = this
        fun build(): Constraints = Constraints()
    }
}

class WorkerParameters

class ForegroundInfo(notificationId: Int, notification: Notification, foregroundServiceType: Int = 0)

abstract class ListenableWorker(appContext: Context, params: WorkerParameters) {
    val applicationContext: Context = appContext
    val runAttemptCount: Int = 0

    abstract class Result {
        companion object {
            fun success(): Result = throw UnsupportedOperationException("stub")
            fun retry(): Result = throw UnsupportedOperationException("stub")
            fun failure(): Result = throw UnsupportedOperationException("stub")
        }
    }
}

abstract class CoroutineWorker(appContext: Context, params: WorkerParameters) : ListenableWorker(appContext, params) {
    abstract suspend fun doWork(): Result
    open suspend fun getForegroundInfo(): ForegroundInfo = throw UnsupportedOperationException("stub")
}

abstract class WorkRequest

class OneTimeWorkRequest : WorkRequest() {
    class Builder(workerClass: Class<out ListenableWorker>) {
        fun setConstraints(constraints: Constraints): Builder = this
        fun setBackoffCriteria(policy: BackoffPolicy, delay: Long, unit: TimeUnit): Builder = this
        fun setExpedited(policy: OutOfQuotaPolicy): Builder = this
        fun build(): OneTimeWorkRequest = OneTimeWorkRequest()
    }
}

class PeriodicWorkRequest : WorkRequest() {
    class Builder(workerClass: Class<out ListenableWorker>, interval: Long, unit: TimeUnit) {
        fun setConstraints(constraints: Constraints): Builder = this
        fun setBackoffCriteria(policy: BackoffPolicy, delay: Long, unit: TimeUnit): Builder = this
        fun build(): PeriodicWorkRequest = PeriodicWorkRequest()
    }
}

inline fun <reified W : ListenableWorker> OneTimeWorkRequestBuilder(): OneTimeWorkRequest.Builder =
    OneTimeWorkRequest.Builder(W::class.java)

inline fun <reified W : ListenableWorker> PeriodicWorkRequestBuilder(interval: Long, unit: TimeUnit): PeriodicWorkRequest.Builder =
    PeriodicWorkRequest.Builder(W::class.java, interval, unit)

class WorkInfo {
    enum class State { ENQUEUED, RUNNING, SUCCEEDED, FAILED, BLOCKED, CANCELLED }
    val state: State = State.ENQUEUED
}

abstract class WorkManager {
    abstract fun getWorkInfosForUniqueWorkFlow(uniqueWorkName: String): kotlinx.coroutines.flow.Flow<List<WorkInfo>>
    abstract fun enqueueUniqueWork(name: String, policy: ExistingWorkPolicy, request: OneTimeWorkRequest)
    abstract fun enqueueUniquePeriodicWork(name: String, policy: ExistingPeriodicWorkPolicy, request: PeriodicWorkRequest)

    companion object {
        fun getInstance(context: Context): WorkManager = throw UnsupportedOperationException("stub")
    }
}
