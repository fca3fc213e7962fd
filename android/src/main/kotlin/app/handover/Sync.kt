package app.handover

/**
 * How batches reach the office: send the batch bytes, return the office's
 * signed ack bytes. Throw on a network failure; the outbox keeps everything.
 */
fun interface SyncTransport {
    suspend fun exchange(batch: ByteArray): ByteArray
}

/** What a sync round did. */
data class SyncResult(val batches: Int, val acknowledgedThrough: Long, val flagged: Long, val pending: Long)

/**
 * Send batches until nothing is left or the office stops acknowledging new
 * events. Each ack is checked (signature, device, chain) before it is
 * applied; a refused ack throws and leaves the outbox as it was.
 */
suspend fun HandoverClient.syncOnce(transport: SyncTransport, maxPerBatch: Int = 500): SyncResult {
    var batches = 0
    var through = -1L
    var flagged = 0L
    while (pendingCount() > 0) {
        val ack = applyAck(transport.exchange(exportBatch(maxPerBatch)))
        batches++
        flagged += ack.flagged.toLong()
        if (ack.throughSeq.toLong() <= through) break // no progress: try again later
        through = ack.throughSeq.toLong()
    }
    return SyncResult(batches, through, flagged, pendingCount())
}
