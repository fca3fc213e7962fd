@file:Suppress("unused", "UNUSED_PARAMETER")

package android.os

class Build {
    object VERSION {
        @JvmField val SDK_INT: Int = 24
    }
}

class CancellationSignal {
    fun cancel() {}
}
