package app.handover

import app.handover.ffi.AckResult
import app.handover.ffi.DeviceIdentity
import app.handover.ffi.EventRecord
import app.handover.core.ExceptionReason
import app.handover.ffi.HandoverDevice
import app.handover.ffi.ImportResult
import app.handover.ffi.Item
import app.handover.ffi.Payment
import app.handover.ffi.UpiPayment
import app.handover.ffi.VerifyResult
import java.io.Closeable
import java.util.concurrent.Executors
import kotlinx.coroutines.ExecutorCoroutineDispatcher
import kotlinx.coroutines.asCoroutineDispatcher
import kotlinx.coroutines.withContext

/**
 * A signed handover event: the recipient's receipt. Already on disk when you
 * get it. [bodyJson] holds the code that was entered, so [toString] leaves it
 * out: log the seq and hash, never the body.
 */
data class Receipt(val seq: Long, val hashHex: String, val signatureHex: String, val bodyJson: String) {
    override fun toString() = "Receipt(seq=$seq, hash=$hashHex)"
}

/** What to tell the person at the door after a code was entered. */
sealed class Verification {
    /** Right code: hand the item over (or give the dose). */
    data class Accepted(val receipt: Receipt) : Verification()

    /** Wrong code; [attemptsLeft] more are allowed. */
    data class Refused(val attemptsLeft: Int) : Verification()

    /** Too many wrong codes: the office must re-issue the code. */
    data object Locked : Verification()

    /** Already handed over. */
    data object AlreadyDone : Verification()

    /** The day's manifest is not valid yet. */
    data object NotYetValid : Verification()

    /** The day's manifest has expired. */
    data object Expired : Verification()

    /** No such item on this device. */
    data object UnknownItem : Verification()

    /** Not a code of [digits] digits; no attempt was counted. */
    data class Malformed(val digits: Int) : Verification()
}

/**
 * The doorstep API for apps: suspend functions that run on one writer thread
 * owned by this client, so the database sees one call at a time and the main
 * thread never touches the disk. Every outcome is committed before the call
 * returns. Errors are thrown as [app.handover.ffi.HandoverException]
 * (InvalidInput, Refused, UnknownItem, NotAllowed, Storage); their messages
 * carry no codes or personal data.
 *
 * No Android APIs are used here: it runs on any JVM.
 */
class HandoverClient private constructor(
    private val device: HandoverDevice,
    private val writer: ExecutorCoroutineDispatcher,
    private val clock: () -> Long,
) : Closeable {
    companion object {
        /** Open (or create) the device database at [path], e.g. `context.getDatabasePath("handover.db")`. */
        suspend fun open(path: String, clock: () -> Long = System::currentTimeMillis): HandoverClient {
            val writer = Executors.newSingleThreadExecutor { r ->
                Thread(r, "handover-writer").apply { isDaemon = true }
            }.asCoroutineDispatcher()
            return try {
                withContext(writer) { HandoverClient(HandoverDevice.open(path), writer, clock) }
            } catch (e: Throwable) {
                writer.close()
                throw e
            }
        }
    }

    private suspend fun <T> write(block: () -> T): T = withContext(writer) { block() }

    /** This device's id and public key (hex), for enrolment at the office. */
    val identity: DeviceIdentity by lazy { device.identity() }

    /** Pin the office's signing key (hex), as shown by `handover office init`. */
    suspend fun trustOfficeKey(publicKeyHex: String) = write { device.trustOfficeKey(publicKeyHex, clock()) }

    /** Import the day's signed manifest. */
    suspend fun importManifest(manifest: ByteArray): ImportResult = write { device.importManifest(manifest, clock()) }

    /** The day's items with their state. */
    suspend fun items(): List<Item> = write { device.items() }

    /** One item, or null. */
    suspend fun item(reference: String): Item? = write { device.item(reference) }

    /** Check the code the recipient says. */
    suspend fun verify(reference: String, code: String): Verification = write {
        when (val r = device.verify(reference, code, clock())) {
            is VerifyResult.Accepted -> Verification.Accepted(r.receipt.toReceipt())
            is VerifyResult.Refused -> Verification.Refused(r.attemptsLeft.toInt())
            is VerifyResult.Malformed -> Verification.Malformed(r.digits.toInt())
            VerifyResult.Locked -> Verification.Locked
            VerifyResult.AlreadyDone -> Verification.AlreadyDone
            VerifyResult.NotYetValid -> Verification.NotYetValid
            VerifyResult.Expired -> Verification.Expired
            VerifyResult.UnknownItem -> Verification.UnknownItem
        }
    }

    /** Record why an item was not handed over; returns the event's seq. */
    suspend fun recordException(reference: String, reason: ExceptionReason): Long =
        write { device.recordException(reference, reason, clock()).seq.toLong() }

    /** Record a cash payment of the item's cash on delivery; returns the event's seq. */
    suspend fun payCash(reference: String): Long =
        write { device.recordPayment(reference, Payment.Cash, clock()).seq.toLong() }

    /** Record a UPI payment with its transaction reference (UTR); returns the event's seq. */
    suspend fun payUpi(reference: String, utr: String): Long =
        write { device.recordPayment(reference, Payment.Upi(utr), clock()).seq.toLong() }

    /** A fresh UPI request (deep link and QR modules) for the item's cash on delivery. */
    suspend fun upiRequest(reference: String): UpiPayment = write { device.upiRequest(reference, clock()) }

    /** The next batch to send to the office (at most [max] events). */
    suspend fun exportBatch(max: Int = 1000): ByteArray = write { device.exportBatch(max.toUInt()) }

    /** Apply the office's signed answer to a batch. */
    suspend fun applyAck(ack: ByteArray): AckResult = write { device.applyAck(ack, clock()) }

    /** Events not yet acknowledged by the office. */
    suspend fun pendingCount(): Long = write { device.pendingCount().toLong() }

    /** Remove acknowledged events and finished manifests older than [retentionDays]. */
    suspend fun purge(retentionDays: Int): Long = write { device.purge(retentionDays.toUInt(), clock()).toLong() }

    override fun close() {
        device.close()
        writer.close()
    }
}

private fun EventRecord.toReceipt() = Receipt(seq.toLong(), hashHex, signatureHex, bodyJson)
