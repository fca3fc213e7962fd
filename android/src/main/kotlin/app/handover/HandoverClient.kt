package app.handover

import app.handover.core.ExceptionReason
import app.handover.core.Fix
import app.handover.ffi.AckResult
import app.handover.ffi.DeviceIdentity
import app.handover.ffi.EventRecord
import app.handover.ffi.HandoverDevice
import app.handover.ffi.ImportResult
import app.handover.ffi.Item
import app.handover.ffi.KeyWrapper
import app.handover.ffi.Payment
import app.handover.ffi.SyncProgress
import app.handover.ffi.UpiPayment
import app.handover.ffi.VerifyResult
import java.io.Closeable
import java.util.concurrent.Executors
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Deferred
import kotlinx.coroutines.ExecutorCoroutineDispatcher
import kotlinx.coroutines.NonCancellable
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.async
import kotlinx.coroutines.asCoroutineDispatcher
import kotlinx.coroutines.cancel
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.distinctUntilChanged
import kotlinx.coroutines.flow.map
import kotlinx.coroutines.withContext

/**
 * A signed handover event: the recipient's receipt. Already on disk when you
 * get it. [body] holds the code that was entered, so it is [Sensitive]:
 * log the seq and hash, never the body.
 */
data class Receipt(val seq: Long, val hashHex: String, val signatureHex: String, val body: Sensitive)

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
 * The doorstep API for apps. Open **one** client per process and share it
 * between the screens and the sync worker (on Android,
 * `app.handover.android.Handover.client(context)` does that for you).
 *
 * * Every call runs on one writer thread owned by this client, so the
 *   database sees one call at a time and the main thread never touches the
 *   disk.
 * * Writes run `NonCancellable`: once a write has started, cancelling the
 *   screen that asked for it does not stop it, and its outcome is committed
 *   before the call returns. If the caller was cancelled meanwhile, the
 *   outcome is still on disk: [receipt] and [item] show it.
 * * Reads are [Flow]s that emit again after every write through this client,
 *   whoever made it (the UI or the sync worker): [pending], [items], [item].
 * * One sync at a time: a second [sync] while one runs waits for it and
 *   gets its result; [syncState] says how the last one went.
 * * Errors are [app.handover.ffi.HandoverException] (`InvalidInput`,
 *   `Refused`, `UnknownItem`, `NotAllowed`, `KeyUnavailable`, `Storage`);
 *   arguments out of range are `IllegalArgumentException` before anything is
 *   done. Messages carry no codes or personal data.
 *
 * No Android APIs are used here: it runs on any JVM.
 */
class HandoverClient private constructor(
    private val device: HandoverDevice,
    private val writer: ExecutorCoroutineDispatcher,
    private val clock: () -> Long,
) : Doorstep, Closeable {
    companion object {
        /** Days acknowledged events are kept before [purge] removes them. */
        const val DEFAULT_RETENTION_DAYS: Int = 7

        /**
         * Open (or create) the device database at [path]. With a
         * [keyWrapper] the device key is stored wrapped by it (on Android, an
         * Android Keystore key: `app.handover.android.KeystoreKeyWrapper`)
         * and the database never holds it in the clear. On Android use
         * `app.handover.android.Handover.client(context)`, which keeps the
         * database out of backups.
         */
        suspend fun open(
            path: String,
            keyWrapper: KeyWrapper? = null,
            clock: () -> Long = System::currentTimeMillis,
        ): HandoverClient {
            require(path.isNotBlank()) { "path is blank" }
            val writer = Executors.newSingleThreadExecutor { r ->
                Thread(r, "handover-writer").apply { isDaemon = true }
            }.asCoroutineDispatcher()
            return try {
                withContext(writer) {
                    val device = if (keyWrapper == null) HandoverDevice.open(path) else HandoverDevice.openWrapped(path, keyWrapper)
                    HandoverClient(device, writer, clock).also { it.publish() }
                }
            } catch (e: Throwable) {
                writer.close()
                throw e
            }
        }
    }

    /** The process's shared client ignores [close]: see [markShared]. */
    @Volatile
    private var shared = false

    /** Runs the one sync in flight, apart from any caller's cancellation. */
    private val syncScope = CoroutineScope(SupervisorJob())
    private val syncLock = Any()
    private var syncInFlight: Deferred<SyncProgress>? = null
    private val syncStateFlow = MutableStateFlow<SyncState>(SyncState.Idle)

    /** How the last sync went; [SyncState.Idle] before the first. */
    override val syncState: StateFlow<SyncState> = syncStateFlow.asStateFlow()

    /**
     * Run [block] as the one sync in flight: a caller that comes while one
     * runs waits for that one and gets its result (or its failure). The
     * sync runs in the client's own scope, so a caller that is cancelled
     * (its screen closed) does not stop it half-way.
     */
    internal suspend fun singleFlight(block: suspend () -> SyncProgress): SyncProgress {
        val run = synchronized(syncLock) {
            syncInFlight ?: syncScope.async {
                try {
                    block()
                } finally {
                    synchronized(syncLock) { syncInFlight = null }
                }
            }.also { syncInFlight = it }
        }
        return run.await()
    }

    internal fun setSyncState(state: SyncState) {
        syncStateFlow.value = state
    }

    /**
     * Make [close] a no-op: the process's one client (`Handover.client`) is
     * shared by every screen and the sync worker, and a `use {}` in one of
     * them must not close it for all.
     */
    internal fun markShared() {
        shared = true
    }

    /** Close even a shared client (the store is being moved aside). */
    internal fun closeForGood() {
        syncScope.cancel()
        device.close()
        writer.close()
    }

    /** Bumped after every write: what the read flows follow. */
    private val changes = MutableStateFlow(0L)
    private val pendingCount = MutableStateFlow(0L)

    /** Events not yet acknowledged by the office; updated after every write. */
    override val pending: StateFlow<Long> = pendingCount.asStateFlow()

    /** Run on the writer thread; not cancellable once started; readers notified after. */
    internal suspend fun <T> write(block: (HandoverDevice) -> T): T = withContext(NonCancellable + writer) {
        try {
            block(device)
        } finally {
            publish()
        }
    }

    private suspend fun <T> read(block: (HandoverDevice) -> T): T = withContext(writer) { block(device) }

    private fun publish() {
        pendingCount.value = try {
            device.pendingCount()
        } catch (e: Exception) {
            pendingCount.value
        }
        changes.value = changes.value + 1
    }

    internal fun now(): Long = clock()

    /** This device's id and public key (hex), for enrolment at the office. */
    val identity: DeviceIdentity by lazy { device.identity() }

    /** Pin the office's signing key (hex), as shown by `handover office init`. */
    suspend fun trustOfficeKey(publicKeyHex: String) {
        require(publicKeyHex.isNotBlank()) { "office key is blank" }
        write { it.trustOfficeKey(publicKeyHex, clock()) }
    }

    /** Import a signed manifest (the sync does this for you). */
    suspend fun importManifest(manifest: ByteArray): ImportResult = write { it.importManifest(manifest, clock()) }

    /** The day's items with their state; emits again after every write. */
    override fun items(): Flow<List<Item>> = changes.map { read { it.items() } }.distinctUntilChanged()

    /** One item, or null; emits again when it changes. */
    override fun item(reference: String): Flow<Item?> = changes.map { read { d -> d.item(reference) } }.distinctUntilChanged()

    /**
     * Check the code the recipient says. Committed before it returns, even if the caller is cancelled.
     * [at]: where the phone is (e.g. from `DoorstepLocation.current`), signed into the event as
     * presence evidence; null records that there was no fix.
     */
    override suspend fun verify(reference: String, code: String, at: Fix?): Verification {
        require(reference.isNotBlank()) { "reference is blank" }
        return write { d ->
            when (val r = d.verify(reference, code, at, clock())) {
                is VerifyResult.Accepted -> Verification.Accepted(r.receipt.toReceipt())
                is VerifyResult.Refused -> Verification.Refused(r.attemptsLeft)
                is VerifyResult.Malformed -> Verification.Malformed(r.digits)
                VerifyResult.Locked -> Verification.Locked
                VerifyResult.AlreadyDone -> Verification.AlreadyDone
                VerifyResult.NotYetValid -> Verification.NotYetValid
                VerifyResult.Expired -> Verification.Expired
                VerifyResult.UnknownItem -> Verification.UnknownItem
            }
        }
    }

    /** The receipt of an item handed over, again (e.g. after the app was closed); null if it was not. */
    override suspend fun receipt(reference: String): Receipt? = read { it.receipt(reference)?.toReceipt() }

    /** Record why an item was not handed over, and where ([at], or null: no fix); returns the event's seq. */
    override suspend fun recordException(reference: String, reason: ExceptionReason, at: Fix?): Long =
        write { it.recordException(reference, reason, at, clock()).seq }

    /** Record a cash payment of the item's cash on delivery (after the handover); returns the event's seq. */
    override suspend fun payCash(reference: String, at: Fix?): Long =
        write { it.recordPayment(reference, Payment.Cash, at, clock()).seq }

    /** Record a UPI payment with its transaction reference (UTR, 12 digits); returns the event's seq. */
    override suspend fun payUpi(reference: String, utr: String, at: Fix?): Long {
        require(utr.length == 12 && utr.all { it in '0'..'9' }) { "a UTR is 12 digits" }
        return write { it.recordPayment(reference, Payment.Upi(utr), at, clock()).seq }
    }

    /** A fresh UPI request (deep link and QR modules) for the item's cash on delivery. */
    suspend fun upiRequest(reference: String): UpiPayment = write { it.upiRequest(reference, clock()) }

    /** The next batch to send to the office (at most [max] events, 1 or more). */
    suspend fun exportBatch(max: Int = 1000): ByteArray {
        require(max > 0) { "max must be 1 or more, not $max" }
        return read { it.exportBatch(max) }
    }

    /** Apply the office's signed answer to a batch. */
    suspend fun applyAck(ack: ByteArray): AckResult = write { it.applyAck(ack, clock()) }

    /** Events not yet acknowledged by the office, read now. */
    suspend fun pendingCount(): Long = read { it.pendingCount() }

    /**
     * Remove acknowledged events and finished manifests older than [retentionDays] (0 or more;
     * default [DEFAULT_RETENTION_DAYS]). Acknowledged events are kept that long so that an office
     * restored from a backup, or failed over to a standby that was behind, can ask for them again
     * (docs/sync-api.md, "Refill"): purge with a shorter retention only if the office says so.
     */
    suspend fun purge(retentionDays: Int = DEFAULT_RETENTION_DAYS): Long {
        require(retentionDays >= 0) { "retentionDays must be 0 or more, not $retentionDays" }
        return write { it.purge(retentionDays, clock()) }
    }

    /** The device object, for the sync session (same writer thread). */
    internal val handoverDevice: HandoverDevice get() = device

    /** Close the database; a no-op on the process's shared client. */
    override fun close() {
        if (shared) {
            HandoverLog.debug("close() on the shared client ignored: it serves the whole process")
            return
        }
        closeForGood()
    }
}

private fun EventRecord.toReceipt() = Receipt(seq, hashHex, signatureHex, bodyJson)
