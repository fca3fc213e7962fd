@file:Suppress("unused", "UNUSED_PARAMETER")

package android.content

import android.content.pm.PackageManager
import java.io.File

abstract class Context {
    open val applicationContext: Context get() = throw UnsupportedOperationException("stub")
    open val noBackupFilesDir: File get() = throw UnsupportedOperationException("stub")
    open val packageManager: PackageManager get() = throw UnsupportedOperationException("stub")
    open fun <T> getSystemService(serviceClass: Class<T>): T = throw UnsupportedOperationException("stub")
    open val mainExecutor: java.util.concurrent.Executor get() = throw UnsupportedOperationException("stub")
}
