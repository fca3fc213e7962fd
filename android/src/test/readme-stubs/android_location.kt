@file:Suppress("unused", "UNUSED_PARAMETER")

package android.location

import android.os.CancellationSignal
import java.util.concurrent.Executor
import java.util.function.Consumer

open class Location {
    open val latitude: Double get() = throw UnsupportedOperationException("stub")
    open val longitude: Double get() = throw UnsupportedOperationException("stub")
    open val accuracy: Float get() = throw UnsupportedOperationException("stub")
    open val time: Long get() = throw UnsupportedOperationException("stub")
    open fun hasAccuracy(): Boolean = throw UnsupportedOperationException("stub")
    open val isMock: Boolean get() = throw UnsupportedOperationException("stub")
    @Deprecated("API 31: isMock") open val isFromMockProvider: Boolean get() = throw UnsupportedOperationException("stub")
}

open class LocationManager {
    companion object {
        const val GPS_PROVIDER = "gps"
        const val NETWORK_PROVIDER = "network"
        const val FUSED_PROVIDER = "fused"
    }
    open fun getCurrentLocation(provider: String, cancellationSignal: CancellationSignal?, executor: Executor, consumer: Consumer<Location?>): Unit =
        throw UnsupportedOperationException("stub")
    open fun getLastKnownLocation(provider: String): Location? = throw UnsupportedOperationException("stub")
    open fun isProviderEnabled(provider: String): Boolean = throw UnsupportedOperationException("stub")
}
