package app.handover

/** How much a [HandoverLogger] line matters. */
enum class HandoverLogLevel { DEBUG, INFO, WARN, ERROR }

/**
 * Receives the library's log lines: syncs started and finished, failures
 * and whether they are worth retrying, keys made, stores moved aside.
 * Lines carry counts, seqs, device ids, office error codes and exception
 * class names; never a code, a name, an address, a mobile number, an
 * item's reference or a key.
 */
fun interface HandoverLogger {
    fun log(level: HandoverLogLevel, message: String)
}

/**
 * Where the library logs: nowhere until the app sets [logger], e.g. to
 * Timber or `android.util.Log`:
 *
 * ```
 * HandoverLog.logger = HandoverLogger { level, message -> Log.println(priority(level), "handover", message) }
 * ```
 */
object HandoverLog {
    @Volatile
    var logger: HandoverLogger? = null

    internal fun debug(message: String) = emit(HandoverLogLevel.DEBUG, message)
    internal fun info(message: String) = emit(HandoverLogLevel.INFO, message)
    internal fun warn(message: String) = emit(HandoverLogLevel.WARN, message)

    private fun emit(level: HandoverLogLevel, message: String) {
        val sink = logger ?: return
        try {
            sink.log(level, message)
        } catch (e: Exception) {
            // A failing logger never fails a handover.
        }
    }
}
