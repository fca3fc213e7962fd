package app.handover

import app.handover.ffi.HandoverException
import app.handover.ffi.OfficeAnswer
import app.handover.ffi.SyncProgress
import java.io.IOException

/**
 * Where the client's sync stands, for the app to show ("last synced 10:42",
 * "this phone is revoked: see the postmaster"): [HandoverClient.syncState].
 */
sealed class SyncState {
    /** No sync since the client opened. */
    data object Idle : SyncState()

    /** A sync is running since [sinceMillis]. */
    data class Running(val sinceMillis: Long) : SyncState()

    /** The last sync ended well at [atMillis]. */
    data class Succeeded(val atMillis: Long, val progress: SyncProgress) : SyncState()

    /** The last sync failed at [atMillis]; [failure] says whether trying again can help. */
    data class Failed(val atMillis: Long, val failure: SyncFailure) : SyncState()
}

/**
 * Why a sync failed, sorted into what a retry can fix ([permanent] false:
 * no network, the office busy or down, an answer that did not check out)
 * and what it cannot ([permanent] true: the device is revoked or not
 * enrolled at this office, its key is gone, its chain forked): those need
 * a person, and the sync worker stops trying.
 *
 * [reason] is one of the constants below; [officeCode] the office's error
 * code when it answered one (`docs/sync-api.md`).
 */
data class SyncFailure(val reason: String, val permanent: Boolean, val officeCode: String? = null) {
    override fun toString() = "SyncFailure($reason, permanent=$permanent${officeCode?.let { ", office=$it" } ?: ""})"

    companion object {
        /** The office revoked this device. */
        const val REVOKED = "revoked"

        /** The office does not know this device (not enrolled, or another office). */
        const val NOT_ENROLLED = "not_enrolled"

        /** The device key is gone (see `Handover.reset`). */
        const val KEY_UNAVAILABLE = "key_unavailable"

        /** The office holds another chain for this device: flagged, a person must look. */
        const val FORKED = "forked"

        /** The office could not be reached, or the connection broke. */
        const val NETWORK = "network"

        /** The office answered with an error a later try may not get. */
        const val OFFICE = "office"

        /** An answer did not check out (a forged or mismatched ack): nothing was applied. */
        const val REFUSED = "refused"

        /** The device's own database failed. */
        const val STORAGE = "storage"

        /** Anything else. */
        const val OTHER = "other"

        /** Sort [error], with the office's last error answer if there was one. */
        fun of(error: Throwable, answer: OfficeAnswer? = null): SyncFailure {
            answer?.let { a ->
                return when (a.code) {
                    "revoked" -> SyncFailure(REVOKED, true, a.code)
                    "unknown_device", "wrong_device", "bad_signature" -> SyncFailure(NOT_ENROLLED, true, a.code)
                    "fork" -> SyncFailure(FORKED, true, a.code)
                    else -> SyncFailure(OFFICE, false, a.code)
                }
            }
            return when (error) {
                is HandoverException.KeyUnavailable -> SyncFailure(KEY_UNAVAILABLE, true)
                is HandoverException.Refused -> SyncFailure(REFUSED, false)
                is HandoverException.Storage -> SyncFailure(STORAGE, false)
                is IOException -> SyncFailure(NETWORK, false)
                else -> SyncFailure(OTHER, false)
            }
        }
    }
}
