package app.handover.android

import android.content.Context
import app.handover.HandoverClient
import java.io.File
import kotlinx.coroutines.sync.Mutex
import kotlinx.coroutines.sync.withLock

/**
 * The process's one [HandoverClient], shared by the screens and
 * [HandoverSyncWorker]:
 *
 * * the database lives in `noBackupFilesDir/handover/handover.db`, which
 *   Auto Backup and device-to-device transfer never copy (a restored copy
 *   would clone the device's identity or rewind its outbox);
 * * the device key is wrapped at rest by [KeystoreKeyWrapper] (an
 *   AES-256-GCM key in the Android Keystore, in StrongBox when present).
 *
 * ```
 * val handover = Handover.client(context)
 * ```
 */
object Handover {
    private val lock = Mutex()

    @Volatile
    private var shared: HandoverClient? = null

    /** Where the database is: never in a folder that is backed up. */
    fun databaseFile(context: Context): File =
        File(File(context.applicationContext.noBackupFilesDir, "handover"), "handover.db")

    /** The shared client, opened on first use. */
    suspend fun client(context: Context): HandoverClient {
        shared?.let { return it }
        return lock.withLock {
            shared ?: run {
                val app = context.applicationContext
                val file = databaseFile(app)
                file.parentFile?.mkdirs()
                HandoverClient.open(file.path, KeystoreKeyWrapper(app)).also { shared = it }
            }
        }
    }
}
