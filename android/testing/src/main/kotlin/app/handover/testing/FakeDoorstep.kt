package app.handover.testing

import app.handover.Doorstep
import app.handover.Receipt
import app.handover.Sensitive
import app.handover.SyncState
import app.handover.Verification
import app.handover.core.ExceptionReason
import app.handover.core.Fix
import app.handover.core.ItemState
import app.handover.core.Programme
import app.handover.ffi.Item
import app.handover.ffi.PostInfo
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.distinctUntilChanged
import kotlinx.coroutines.flow.map

/**
 * An in-memory [Doorstep] for an app's own unit tests: no native library,
 * no database, no office. Give it items and their right codes, drive the
 * screens, then look at [events] (what would have gone to the office).
 *
 * It follows the real rules where a screen can see them: a code of the
 * wrong length is [Verification.Malformed] and counts no attempt; wrong
 * codes count down to [Verification.Locked]; a handed-over item is
 * [Verification.AlreadyDone]; a payment before the handover, or for an
 * item without cash on delivery, throws [IllegalStateException] (the real
 * client throws `HandoverException.NotAllowed`). It does not sign, chain
 * or check validity windows.
 *
 * ```
 * val doorstep = FakeDoorstep().apply { addItem("EE123456785IN", code = "482913") }
 * val screen = DoorstepViewModel(doorstep)   // the app's own class, taking a Doorstep
 * ```
 */
class FakeDoorstep(private val clock: () -> Long = System::currentTimeMillis) : Doorstep {
    /** What the device would have recorded, in order. */
    data class Event(val seq: Long, val reference: String, val kind: String, val at: Fix?)

    private class Entry(var item: Item, val code: String)

    private val entries = LinkedHashMap<String, Entry>()
    private val log = mutableListOf<Event>()
    private val state = MutableStateFlow(0L)
    private val pendingFlow = MutableStateFlow(0L)
    private val syncFlow = MutableStateFlow<SyncState>(SyncState.Idle)

    override val pending: StateFlow<Long> = pendingFlow.asStateFlow()
    override val syncState: StateFlow<SyncState> = syncFlow.asStateFlow()

    /** Every event recorded so far. */
    val events: List<Event> get() = synchronized(this) { log.toList() }

    /**
     * Add an item whose right code is [code]; [attempts] wrong codes are
     * allowed; [codPaise] sets cash on delivery.
     */
    fun addItem(
        reference: String,
        code: String,
        attempts: Int = 3,
        programme: Programme = Programme.POST,
        codPaise: Long? = null,
        post: PostInfo? = null,
    ): Unit = synchronized(this) {
        require(code.isNotEmpty() && code.all { it in '0'..'9' }) { "a code is digits" }
        val now = clock()
        entries[reference] = Entry(
            Item(
                reference = reference,
                manifestId = "fake",
                programme = programme,
                state = ItemState.PENDING,
                exceptionReason = null,
                attemptsLeft = attempts,
                digits = code.length,
                paid = false,
                validFromMs = now - 3_600_000,
                validUntilMs = now + 12 * 3_600_000,
                post = post ?: codPaise?.let {
                    PostInfo(app.handover.core.PostService.PARCEL, Sensitive(""), Sensitive(""), Sensitive(""), it)
                },
                vaccination = null,
            ),
            code,
        )
        changed()
    }

    /** Pretend a sync reached the office: nothing is pending any more. */
    fun acknowledgeAll(): Unit = synchronized(this) {
        pendingFlow.value = 0
        syncFlow.value = SyncState.Succeeded(clock(), syncProgress())
    }

    /** Show [state] as the sync state (a revoked phone, a failed sync). */
    fun setSyncState(state: SyncState) {
        syncFlow.value = state
    }

    override fun items(): Flow<List<Item>> = state.map { synchronized(this) { entries.values.map { it.item } } }.distinctUntilChanged()

    override fun item(reference: String): Flow<Item?> = state.map { synchronized(this) { entries[reference]?.item } }.distinctUntilChanged()

    override suspend fun verify(reference: String, code: String, at: Fix?): Verification = synchronized(this) {
        val e = entries[reference] ?: return Verification.UnknownItem
        val typed = code.filter { it != ' ' && it != '-' }
        when (e.item.state) {
            ItemState.HANDED_OVER -> return Verification.AlreadyDone
            ItemState.LOCKED -> return Verification.Locked
            ItemState.WITHDRAWN -> return Verification.UnknownItem
            else -> {}
        }
        if (typed.length != e.item.digits || typed.any { it !in '0'..'9' }) return Verification.Malformed(e.item.digits)
        if (typed == e.code) {
            e.item = e.item.copy(state = ItemState.HANDED_OVER, exceptionReason = null)
            val seq = record(reference, "handed_over", at)
            return Verification.Accepted(Receipt(seq, "%064x".format(seq), "", Sensitive("{\"fake\":true}")))
        }
        val left = e.item.attemptsLeft - 1
        record(reference, "attempt_failed", at)
        e.item = e.item.copy(attemptsLeft = left, state = if (left <= 0) ItemState.LOCKED else e.item.state)
        changed()
        return if (left <= 0) Verification.Locked else Verification.Refused(left)
    }

    override suspend fun receipt(reference: String): Receipt? = synchronized(this) {
        val e = entries[reference] ?: return null
        if (e.item.state != ItemState.HANDED_OVER) return null
        val seq = log.last { it.reference == reference && it.kind == "handed_over" }.seq
        Receipt(seq, "%064x".format(seq), "", Sensitive("{\"fake\":true}"))
    }

    override suspend fun recordException(reference: String, reason: ExceptionReason, at: Fix?): Long = synchronized(this) {
        val e = entries[reference] ?: throw IllegalArgumentException("no such item")
        check(e.item.state == ItemState.PENDING || e.item.state == ItemState.EXCEPTION) { "not allowed: the item is ${e.item.state}" }
        e.item = e.item.copy(state = ItemState.EXCEPTION, exceptionReason = reason)
        record(reference, "exception", at)
    }

    override suspend fun payCash(reference: String, at: Fix?): Long = pay(reference, "payment_cash", at)

    override suspend fun payUpi(reference: String, utr: String, at: Fix?): Long {
        require(utr.length == 12 && utr.all { it in '0'..'9' }) { "a UTR is 12 digits" }
        return pay(reference, "payment_upi", at)
    }

    private fun pay(reference: String, kind: String, at: Fix?): Long = synchronized(this) {
        val e = entries[reference] ?: throw IllegalArgumentException("no such item")
        check(e.item.post?.codAmountPaise != null) { "not allowed: the item has no cash on delivery" }
        check(e.item.state == ItemState.HANDED_OVER) { "not allowed: payment only after the handover" }
        check(!e.item.paid) { "not allowed: already paid" }
        e.item = e.item.copy(paid = true)
        record(reference, kind, at)
    }

    private fun record(reference: String, kind: String, at: Fix?): Long {
        val seq = log.size + 1L
        log += Event(seq, reference, kind, at)
        pendingFlow.value = pendingFlow.value + 1
        changed()
        return seq
    }

    private fun changed() {
        state.value = state.value + 1
    }

    private fun syncProgress() = app.handover.ffi.SyncProgress(0, 0, log.size.toLong(), log.size.toLong(), 0, 0)
}
