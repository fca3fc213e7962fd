package app.handover.android

import android.content.Context
import android.location.Location
import android.location.LocationManager
import android.os.Build
import android.os.CancellationSignal
import app.handover.core.Fix
import kotlin.coroutines.resume
import kotlinx.coroutines.suspendCancellableCoroutine
import kotlinx.coroutines.withTimeoutOrNull

/**
 * Where the phone is at the door, for presence evidence: give the result to
 * `verify`, `recordException` or `payCash`/`payUpi` (null records "no fix").
 * The app holds the location permission and asks for it; without it, or
 * when no provider answers within [timeoutMillis], this returns null and
 * the doorstep work goes on.
 *
 * Only a single fix at that moment is taken: the library never tracks the
 * phone between doors.
 *
 * ```
 * val at = DoorstepLocation.current(context)
 * handover.recordException(reference, ExceptionReason.NOT_HOME, at)
 * ```
 */
object DoorstepLocation {
    /** A fresh fix (API 30+), or on older releases the last known one if under a minute old. */
    suspend fun current(context: Context, timeoutMillis: Long = 5_000): Fix? {
        val manager = context.getSystemService(LocationManager::class.java) ?: return null
        val provider = when {
            Build.VERSION.SDK_INT >= 31 && manager.isProviderEnabled(LocationManager.FUSED_PROVIDER) -> LocationManager.FUSED_PROVIDER
            manager.isProviderEnabled(LocationManager.GPS_PROVIDER) -> LocationManager.GPS_PROVIDER
            manager.isProviderEnabled(LocationManager.NETWORK_PROVIDER) -> LocationManager.NETWORK_PROVIDER
            else -> return null
        }
        return try {
            if (Build.VERSION.SDK_INT >= 30) {
                withTimeoutOrNull(timeoutMillis) {
                    suspendCancellableCoroutine { cont ->
                        val signal = CancellationSignal()
                        cont.invokeOnCancellation { signal.cancel() }
                        manager.getCurrentLocation(provider, signal, context.mainExecutor) { location ->
                            cont.resume(location?.toFix())
                        }
                    }
                }
            } else {
                manager.getLastKnownLocation(provider)
                    ?.takeIf { System.currentTimeMillis() - it.time < 60_000 }
                    ?.toFix()
            }
        } catch (e: SecurityException) {
            null // the app does not hold the permission
        }
    }

    /** A platform location as a [Fix]: 1e-7 degrees, accuracy in metres, the fix's own time, the mock flag. */
    @Suppress("DEPRECATION")
    fun Location.toFix(): Fix = Fix(
        latE7 = Math.round(latitude * 1e7).toInt(),
        lonE7 = Math.round(longitude * 1e7).toInt(),
        accuracyM = if (hasAccuracy()) accuracy.toDouble().coerceIn(0.0, 100_000.0).toUInt() else 100_000u,
        timeMs = time,
        mock = if (Build.VERSION.SDK_INT >= 31) isMock else isFromMockProvider,
    )
}
