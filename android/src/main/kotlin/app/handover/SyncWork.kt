package app.handover

/**
 * The sync worker's decisions, kept free of Android types so that they
 * are tested on the JVM (`app.handover.android.HandoverSyncWorker` applies
 * them).
 */
object SyncWork {
    /** `ServiceInfo.FOREGROUND_SERVICE_TYPE_DATA_SYNC`. */
    const val FOREGROUND_SERVICE_TYPE_DATA_SYNC = 1

    /** Tries of one sync request before it is given up (the next request starts afresh). */
    const val MAX_ATTEMPTS = 10

    /**
     * The foreground service type for the worker's `ForegroundInfo` on
     * [sdkInt], or null for none.
     *
     * WorkManager asks for a `ForegroundInfo` only when expedited work runs
     * as a foreground service, which is before Android 12 (API 31). There a
     * type the manifest does not declare crashes the app on API 29–30
     * (neither WorkManager's manifest nor ours declares `dataSync`, and
     * declaring it would put every app through Play's foreground-service
     * declaration): so no type. From Android 14 (API 34) a foreground
     * service must have a type; WorkManager never asks there for expedited
     * work, but should an app promote the worker itself, it gets `dataSync`
     * and must declare it (android/README.md).
     */
    fun foregroundServiceType(sdkInt: Int): Int? = if (sdkInt >= 34) FOREGROUND_SERVICE_TYPE_DATA_SYNC else null

    /**
     * Whether "sync now" replaces the unique work already queued (REPLACE)
     * or keeps it (KEEP), given whether each queued request [isRunning]:
     * a request sleeping in back-off (which can be hours) is replaced, so
     * the tap runs now; one that is running is kept, so a second tap does
     * not cancel a sync half-way.
     */
    fun replaceQueued(isRunning: List<Boolean>): Boolean = isRunning.none { it }

    /** What the worker answers WorkManager. */
    enum class Outcome { SUCCESS, RETRY, FAIL }

    /**
     * After a sync that left [pending] events (or failed with [failure]),
     * on try [runAttemptCount] (0 for the first): a permanent failure is
     * not retried (a revoked phone retried ten times is still revoked);
     * anything else is retried with back-off up to [MAX_ATTEMPTS] tries.
     */
    fun outcome(pending: Long?, failure: SyncFailure?, runAttemptCount: Int): Outcome = when {
        failure?.permanent == true -> Outcome.FAIL
        failure == null && pending == 0L -> Outcome.SUCCESS
        runAttemptCount + 1 < MAX_ATTEMPTS -> Outcome.RETRY
        else -> Outcome.FAIL
    }
}
