package app.handover.android

import android.content.Context
import android.content.pm.PackageManager
import android.os.Build
import android.security.keystore.KeyGenParameterSpec
import android.security.keystore.KeyProperties
import android.security.keystore.StrongBoxUnavailableException
import app.handover.ffi.KeyWrapException
import app.handover.ffi.KeyWrapper
import java.security.KeyStore
import javax.crypto.Cipher
import javax.crypto.KeyGenerator
import javax.crypto.SecretKey
import javax.crypto.spec.GCMParameterSpec

/**
 * Wraps the device key with an AES-256-GCM key that never leaves the
 * Android Keystore (StrongBox when the phone has one, else the TEE).
 * The wrapped form is `iv (12 bytes) || ciphertext || tag (16 bytes)`.
 *
 * What this buys: a copy of the app's files (a backup that slipped
 * through, a file-level exploit, a forensic image of the flash) holds no
 * usable device key. What it does not: on a rooted phone, code running as
 * the app can ask the Keystore to unwrap, and then holds the key in memory
 * (see docs/threat-model.md).
 */
class KeystoreKeyWrapper(private val context: Context, private val alias: String = "handover-device-key-wrapper") : KeyWrapper {
    override fun wrap(key: ByteArray): ByteArray = guarded {
        val cipher = Cipher.getInstance(TRANSFORMATION)
        cipher.init(Cipher.ENCRYPT_MODE, secretKey())
        cipher.iv + cipher.doFinal(key)
    }

    override fun unwrap(wrapped: ByteArray): ByteArray = guarded {
        if (wrapped.size < IV + TAG / 8) throw KeyWrapException.Unavailable("wrapped key too short")
        val key = existingKey() ?: throw KeyWrapException.Unavailable("the Keystore key is gone (app data cleared or restored elsewhere)")
        val cipher = Cipher.getInstance(TRANSFORMATION)
        cipher.init(Cipher.DECRYPT_MODE, key, GCMParameterSpec(TAG, wrapped, 0, IV))
        cipher.doFinal(wrapped, IV, wrapped.size - IV)
    }

    private inline fun <T> guarded(block: () -> T): T = try {
        block()
    } catch (e: KeyWrapException) {
        throw e
    } catch (e: Exception) {
        // The class name only: Keystore messages carry no key material, but keep it short.
        throw KeyWrapException.Unavailable("Android Keystore: ${e.javaClass.simpleName}")
    }

    private fun keyStore(): KeyStore = KeyStore.getInstance(ANDROID_KEYSTORE).apply { load(null) }

    private fun existingKey(): SecretKey? = (keyStore().getEntry(alias, null) as? KeyStore.SecretKeyEntry)?.secretKey

    private fun secretKey(): SecretKey = existingKey() ?: generate()

    private fun generate(): SecretKey {
        val strongBox = Build.VERSION.SDK_INT >= 28 &&
            context.packageManager.hasSystemFeature(PackageManager.FEATURE_STRONGBOX_KEYSTORE)
        return try {
            generate(strongBox)
        } catch (e: Exception) {
            if (strongBox && Build.VERSION.SDK_INT >= 28 && e is StrongBoxUnavailableException) generate(false) else throw e
        }
    }

    private fun generate(strongBox: Boolean): SecretKey {
        val spec = KeyGenParameterSpec.Builder(alias, KeyProperties.PURPOSE_ENCRYPT or KeyProperties.PURPOSE_DECRYPT)
            .setBlockModes(KeyProperties.BLOCK_MODE_GCM)
            .setEncryptionPaddings(KeyProperties.ENCRYPTION_PADDING_NONE)
            .setKeySize(256)
            .setRandomizedEncryptionRequired(true)
            .apply { if (strongBox && Build.VERSION.SDK_INT >= 28) setIsStrongBoxBacked(true) }
            .build()
        return KeyGenerator.getInstance(KeyProperties.KEY_ALGORITHM_AES, ANDROID_KEYSTORE).run {
            init(spec)
            generateKey()
        }
    }

    private companion object {
        const val ANDROID_KEYSTORE = "AndroidKeyStore"
        const val TRANSFORMATION = "AES/GCM/NoPadding"
        const val IV = 12
        const val TAG = 128
    }
}
