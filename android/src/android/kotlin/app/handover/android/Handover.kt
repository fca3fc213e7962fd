package app.handover.android

import android.content.Context
import app.handover.HandoverClient
import app.handover.RetiredStores
import app.handover.enrolFromQr
import app.handover.ffi.Enrolment
import java.io.File
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.sync.Mutex
import kotlinx.coroutines.sync.withLock
import kotlinx.coroutines.withContext

/**
 * The process's one [HandoverClient], shared by the screens and
 * [HandoverSyncWorker]:
 *
 * * the database lives in `noBackupFilesDir/handover/handover.db`, which
 *   Auto Backup and device-to-device transfer never copy (a restored copy
 *   would clone the device's identity or rewind its outbox);
 * * the device key is wrapped at rest by [KeystoreKeyWrapper] (an
 *   AES-256-GCM key in the Android Keystore, in StrongBox when present);
 * * `close()` on it does nothing: a `use {}` in one screen cannot close it
 *   for the others.
 *
 * ```
 * val handover = Handover.client(context)
 * ```
 */
object Handover {
    private val lock = Mutex()

    @Volatile
    private var shared: HandoverClient? = null

    private fun folder(context: Context) = File(context.applicationContext.noBackupFilesDir, "handover")

    /** Where the database is: never in a folder that is backed up. */
    fun databaseFile(context: Context): File = File(folder(context), "handover.db")

    /** Where stores moved aside by [reset] are kept (never deleted by the library). */
    fun retiredDirectory(context: Context): File = File(folder(context), "retired")

    /**
     * The shared client, opened on first use. Throws
     * `HandoverException.KeyUnavailable` when the Keystore key that wraps
     * the device key is gone: then [reset].
     */
    suspend fun client(context: Context): HandoverClient {
        shared?.let { return it }
        return lock.withLock {
            shared ?: run {
                val app = context.applicationContext
                val file = databaseFile(app)
                file.parentFile?.mkdirs()
                HandoverClient.open(file.path, KeystoreKeyWrapper(app)).also {
                    it.markShared()
                    shared = it
                }
            }
        }
    }

    /** The shared client if it is open. */
    internal fun clientOrNull(): HandoverClient? = shared

    /**
     * Start afresh after the device key is lost (`KeyUnavailable`): close
     * the shared client, move the database aside into [retiredDirectory]
     * (never deleted) and return it, or null if there was none. The next
     * [client] makes a new store with a new key, which must enrol again.
     * The moved store's signed, unacknowledged events still reach the
     * office: open it with `app.handover.ffi.RetiredOutbox` and send them
     * (`RetiredOutbox.syncOnce`).
     */
    suspend fun reset(context: Context): File? = lock.withLock {
        withContext(Dispatchers.IO) {
            shared?.closeForGood()
            shared = null
            RetiredStores.moveAside(databaseFile(context), retiredDirectory(context))
        }
    }

    /**
     * Enrol with the text of the office's enrolment QR code
     * (`handover:enrol?server=…&token=…`, as `handover office enrol-token
     * --server` and the office console draw it). The office's address is
     * saved ([officeUrl]) for the sync worker; a QR code without one uses
     * [fallbackServer].
     */
    suspend fun enrolFromQr(context: Context, scanned: String, fallbackServer: String? = null): Enrolment {
        val done = client(context).enrolFromQr(scanned, fallbackServer)
        withContext(Dispatchers.IO) { File(folder(context), OFFICE_URL).writeText(done.server) }
        return done.enrolment
    }

    /** The office address saved by [enrolFromQr], or null. */
    suspend fun officeUrl(context: Context): String? = withContext(Dispatchers.IO) {
        File(folder(context), OFFICE_URL).takeIf { it.isFile }?.readText()?.trim()?.takeIf { it.isNotEmpty() }
    }

    private const val OFFICE_URL = "office-url"
}
