package app.handover

import app.handover.core.ExceptionReason
import app.handover.core.Fix
import app.handover.ffi.Item
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.StateFlow

/**
 * What the app's doorstep screens use: the day's items, the code check,
 * the outcomes, and how the sync stands. [HandoverClient] is the real one;
 * `app.handover.testing.FakeDoorstep` (artefact
 * `app.handover:handover-android-testing`) is an in-memory one for the
 * app's own unit tests, with no native library. Take a [Doorstep] in view
 * models, not a [HandoverClient], and both fit.
 */
interface Doorstep {
    /** Events not yet acknowledged by the office. */
    val pending: StateFlow<Long>

    /** How the last sync went. */
    val syncState: StateFlow<SyncState>

    /** The day's items with their state; emits again after every write. */
    fun items(): Flow<List<Item>>

    /** One item, or null; emits again when it changes. */
    fun item(reference: String): Flow<Item?>

    /** Check the code the recipient says; committed before it returns. [at]: where the phone is, or null. */
    suspend fun verify(reference: String, code: String, at: Fix? = null): Verification

    /** The receipt of an item handed over, or null. */
    suspend fun receipt(reference: String): Receipt?

    /** Record why an item was not handed over; returns the event's seq. */
    suspend fun recordException(reference: String, reason: ExceptionReason, at: Fix? = null): Long

    /** Record a cash payment of the item's cash on delivery (after the handover); returns the event's seq. */
    suspend fun payCash(reference: String, at: Fix? = null): Long

    /** Record a UPI payment with its transaction reference (UTR, 12 digits); returns the event's seq. */
    suspend fun payUpi(reference: String, utr: String, at: Fix? = null): Long
}
