package app.handover

import app.handover.ffi.RetiredOutbox
import java.io.File
import java.io.IOException
import java.text.SimpleDateFormat
import java.util.Date
import java.util.Locale
import java.util.TimeZone
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.withContext

/**
 * Moving a device store aside when its key is lost
 * (`HandoverException.KeyUnavailable`: the Keystore key was wiped, the app
 * data restored onto another phone). The store is never deleted: its
 * signed, unacknowledged events still reach the office through a
 * [RetiredOutbox], and the office's records stay whole.
 */
object RetiredStores {
    private val SUFFIXES = listOf("", "-wal", "-shm", "-journal")

    /**
     * Move [database] (and its log files) into [retiredDir] as
     * `handover-<UTC time>.db`; returns the moved database, or null when
     * there was nothing at [database]. A name already taken gets a counter;
     * nothing is overwritten or deleted. Throws [IOException] when a file
     * cannot be moved (the store is then left where it was, whole).
     */
    fun moveAside(database: File, retiredDir: File, nowMillis: Long = System.currentTimeMillis()): File? {
        if (!database.exists()) return null
        if (!retiredDir.isDirectory && !retiredDir.mkdirs()) throw IOException("cannot make $retiredDir")
        val stamp = SimpleDateFormat("yyyyMMdd'T'HHmmss'Z'", Locale.ROOT)
            .apply { timeZone = TimeZone.getTimeZone("UTC") }
            .format(Date(nowMillis))
        var n = 0
        var target: File
        do {
            target = File(retiredDir, if (n == 0) "handover-$stamp.db" else "handover-$stamp-$n.db")
            n++
        } while (SUFFIXES.any { File(target.path + it).exists() })
        val moved = mutableListOf<Pair<File, File>>()
        for (suffix in SUFFIXES) {
            val from = File(database.path + suffix)
            if (!from.exists()) continue
            val to = File(target.path + suffix)
            if (!from.renameTo(to)) {
                // Put back what moved: the store stays whole in one place.
                for ((a, b) in moved.asReversed()) b.renameTo(a)
                throw IOException("cannot move ${from.name} aside")
            }
            moved += from to to
        }
        HandoverLog.warn("device store moved aside to ${target.name}: its key is lost; its events can still be sent")
        return target
    }

    /** The stores moved aside in [retiredDir], oldest first. */
    fun list(retiredDir: File): List<File> =
        retiredDir.listFiles()
            ?.mapNotNull { f -> NAME.matchEntire(f.name)?.let { m -> Triple(m.groupValues[1], m.groupValues[2].toIntOrNull() ?: 0, f) } }
            ?.sortedWith(compareBy({ it.first }, { it.second }))
            ?.map { it.third }
            .orEmpty()

    private val NAME = Regex("handover-(\\d{8}T\\d{6}Z)(?:-(\\d+))?\\.db")
}

/**
 * Send a retired store's unacknowledged events over [transport] (a batch
 * file carried to the office and `handover office ingest`, or a USB
 * cable): they are already signed by the lost key, and the office checks
 * them against the key it enrolled. When [SyncResult.pending] is 0 the
 * store holds nothing the office lacks.
 */
suspend fun RetiredOutbox.syncOnce(transport: SyncTransport, maxPerBatch: Int = 500): SyncResult {
    require(maxPerBatch > 0) { "maxPerBatch must be 1 or more, not $maxPerBatch" }
    return withContext(Dispatchers.IO) {
        drain(transport, { pendingCount() }, { exportBatch(maxPerBatch) }, { applyAck(it, System.currentTimeMillis()) })
    }
}
