package app.handover

import app.handover.ffi.KeyWrapException
import app.handover.ffi.KeyWrapper
import java.security.ProviderException
import java.security.SecureRandom
import java.util.concurrent.ConcurrentHashMap
import javax.crypto.Cipher
import javax.crypto.SecretKey
import javax.crypto.spec.GCMParameterSpec

/**
 * Where the wrapping key lives: on Android the Keystore
 * (`app.handover.android.KeystoreKeyWrapper`), in tests memory.
 */
interface WrappingKeys {
    /** Names the key; one key per alias. */
    val alias: String

    /** Whether to ask for a hardware-isolated key first (StrongBox). */
    val strongBoxAvailable: Boolean

    /** The key under [alias], or null. */
    fun find(): SecretKey?

    /** Make the key under [alias]; may throw [ProviderException] (StrongBox busy or absent). */
    fun generate(strongBox: Boolean): SecretKey

    /** Remove the key under [alias] (a new key that failed its self-test). */
    fun delete()
}

/**
 * The device key wrapped with AES-256-GCM under a key from [keys]:
 * `iv (12 bytes) || ciphertext || tag (16 bytes)`.
 *
 * The wrapping key is made once, on first use, and checked before it is
 * trusted, as Tink's Android Keystore integration does:
 * * two first uses at once (the UI and the sync worker) make one key:
 *   the check for a key and its generation run under one lock per alias,
 *   and the key is looked up again inside it;
 * * StrongBox may be absent or refuse (`StrongBoxUnavailableException`, or
 *   another `ProviderException` some phones throw): the key is then made in
 *   the TEE;
 * * a new key must wrap and unwrap a random value before it is used; if it
 *   does not, it is deleted and made once more, and a second failure is
 *   `KeyWrapException.Unavailable`.
 *
 * [unwrap] never makes a key: a wrapped device key whose wrapping key is
 * gone stays unavailable (see `Handover.reset`).
 */
class AesGcmKeyWrapper(private val keys: WrappingKeys) : KeyWrapper {
    override fun wrap(key: ByteArray): ByteArray = guarded {
        seal(wrappingKey(), key)
    }

    override fun unwrap(wrapped: ByteArray): ByteArray = guarded {
        if (wrapped.size < IV + TAG / 8) throw KeyWrapException.Unavailable("wrapped key too short")
        val key = keys.find() ?: throw KeyWrapException.Unavailable("the wrapping key is gone (app data cleared or restored elsewhere)")
        open(key, wrapped)
    }

    private fun wrappingKey(): SecretKey = synchronized(lockFor(keys.alias)) {
        keys.find() ?: create()
    }

    private fun create(): SecretKey {
        repeat(2) { attempt ->
            val key = try {
                keys.generate(keys.strongBoxAvailable)
            } catch (e: ProviderException) {
                if (!keys.strongBoxAvailable) throw e
                HandoverLog.info("StrongBox refused the wrapping key (${e.javaClass.simpleName}); making it in the TEE")
                keys.generate(false)
            }
            if (selfTest(key)) {
                HandoverLog.info("wrapping key made")
                return key
            }
            HandoverLog.warn("a new wrapping key failed its self-test (attempt ${attempt + 1}); deleting it")
            keys.delete()
        }
        throw KeyWrapException.Unavailable("the Keystore made no working key")
    }

    private fun selfTest(key: SecretKey): Boolean = try {
        val probe = ByteArray(32).also { SecureRandom().nextBytes(it) }
        open(key, seal(key, probe)).contentEquals(probe)
    } catch (e: Exception) {
        false
    }

    private fun seal(key: SecretKey, plain: ByteArray): ByteArray {
        val cipher = Cipher.getInstance(TRANSFORMATION)
        cipher.init(Cipher.ENCRYPT_MODE, key)
        return cipher.iv + cipher.doFinal(plain)
    }

    private fun open(key: SecretKey, wrapped: ByteArray): ByteArray {
        val cipher = Cipher.getInstance(TRANSFORMATION)
        cipher.init(Cipher.DECRYPT_MODE, key, GCMParameterSpec(TAG, wrapped, 0, IV))
        return cipher.doFinal(wrapped, IV, wrapped.size - IV)
    }

    private inline fun <T> guarded(block: () -> T): T = try {
        block()
    } catch (e: KeyWrapException) {
        throw e
    } catch (e: Exception) {
        // The class name only: Keystore messages carry no key material, but keep it short.
        throw KeyWrapException.Unavailable("key wrapping failed: ${e.javaClass.simpleName}")
    }

    private companion object {
        const val TRANSFORMATION = "AES/GCM/NoPadding"
        const val IV = 12
        const val TAG = 128
        private val locks = ConcurrentHashMap<String, Any>()
        fun lockFor(alias: String): Any = locks.getOrPut(alias) { Any() }
    }
}
