package app.handover

import app.handover.ffi.AckResult
import app.handover.ffi.Enrolment
import app.handover.ffi.OfficeRequest
import app.handover.ffi.SyncProgress
import java.io.IOException
import kotlinx.coroutines.CancellationException

/** The office's answer to an [OfficeRequest]: HTTP status and body. */
class OfficeResponse(val status: Int, val body: ByteArray) {
    override fun toString() = "OfficeResponse(status=$status, ${body.size} bytes)"
}

/**
 * Moves a signed request to the office and its answer back: [HttpSyncTransport]
 * over HTTP(S), or a test double. Throw [IOException] when the office cannot
 * be reached; nothing is lost, the next sync sends it again.
 */
fun interface OfficeTransport {
    suspend fun send(request: OfficeRequest): OfficeResponse
}

/**
 * Enrol this device with a single-use token from `handover office
 * enrol-token` (typed in or scanned from its QR code): the office learns the
 * device key and the device pins the office key the token binds, so a party
 * in the middle can neither enrol nor substitute a key. Safe to repeat after
 * a lost answer.
 */
suspend fun HandoverClient.enroll(token: String, transport: OfficeTransport): Enrolment {
    val trimmed = token.trim()
    require(trimmed.isNotEmpty()) { "token is blank" }
    val request = write { it.enrolRequest(trimmed, now()) }
    val response = transport.send(request)
    return write { it.finishEnrolment(trimmed, response.status, response.body, now()) }
}

/**
 * One sync with the office over [transport] (docs/sync-api.md): pull and
 * import newer manifests, then push the outbox in batches of at most
 * [maxPerBatch] events and apply each signed ack, until nothing waits or
 * the office makes no progress. A network failure throws [IOException]
 * with the outbox intact; a forged or mismatched ack throws
 * `HandoverException.Refused` and is not applied.
 *
 * One at a time per client: called while a sync runs, it waits for that
 * one and returns its result. [HandoverClient.syncState] follows it, with
 * every failure sorted by [SyncFailure.of] (retry, or a person must act).
 */
suspend fun HandoverClient.sync(transport: OfficeTransport, maxPerBatch: Int = 500): SyncProgress {
    require(maxPerBatch > 0) { "maxPerBatch must be 1 or more, not $maxPerBatch" }
    return singleFlight { syncSession(transport, maxPerBatch) }
}

private suspend fun HandoverClient.syncSession(transport: OfficeTransport, maxPerBatch: Int): SyncProgress {
    setSyncState(SyncState.Running(now()))
    HandoverLog.info("sync started")
    val session = write { it.syncSession(maxPerBatch) }
    try {
        while (true) {
            val request = write { session.nextRequest(now()) } ?: break
            val response = transport.send(request)
            write { session.handleResponse(response.status, response.body, now()) }
        }
        val progress = session.progress()
        setSyncState(SyncState.Succeeded(now(), progress))
        HandoverLog.info(
            "sync done: ${progress.manifestsImported} manifests imported, ${progress.eventsSent} events acknowledged " +
                "through seq ${progress.acknowledgedThrough}, ${progress.flagged} flagged, ${progress.pending} waiting" +
                if (progress.eventsResent > 0) {
                    ", ${progress.eventsResent} resent from seq ${progress.resentFrom} to an office that had lost them"
                } else {
                    ""
                },
        )
        return progress
    } catch (e: CancellationException) {
        setSyncState(SyncState.Idle)
        throw e
    } catch (e: Throwable) {
        val failure = SyncFailure.of(e, session.lastOfficeAnswer())
        setSyncState(SyncState.Failed(now(), failure))
        HandoverLog.warn("sync failed: $failure (${e.javaClass.simpleName}); the outbox is intact")
        throw e
    } finally {
        session.close()
    }
}

/**
 * How batches reach the office without HTTP (a file carried to the office,
 * a USB cable): send the batch bytes, return the office's signed ack bytes.
 * Throw on a failure; the outbox keeps everything.
 */
fun interface SyncTransport {
    suspend fun exchange(batch: ByteArray): ByteArray
}

/** What a [syncOnce] round did. */
data class SyncResult(val batches: Int, val acknowledgedThrough: Long, val flagged: Long, val pending: Long)

/**
 * Send batches until nothing is left or the office stops acknowledging new
 * events. Each ack is checked (signature, device, chain) before it is
 * applied; a refused ack throws and leaves the outbox as it was.
 */
suspend fun HandoverClient.syncOnce(transport: SyncTransport, maxPerBatch: Int = 500): SyncResult {
    require(maxPerBatch > 0) { "maxPerBatch must be 1 or more, not $maxPerBatch" }
    return drain(transport, { pendingCount() }, { exportBatch(maxPerBatch) }, { applyAck(it) })
}

/** Send batches from [export] until [pending] is 0 or an ack moves nothing. */
internal suspend fun drain(
    transport: SyncTransport,
    pending: suspend () -> Long,
    export: suspend () -> ByteArray,
    apply: suspend (ByteArray) -> AckResult,
): SyncResult {
    var batches = 0
    var through = -1L
    var flagged = 0L
    while (pending() > 0) {
        val ack = apply(transport.exchange(export()))
        batches++
        flagged += ack.flagged
        if (ack.throughSeq <= through) break // no progress: try again later
        through = ack.throughSeq
    }
    return SyncResult(batches, through, flagged, pending())
}
