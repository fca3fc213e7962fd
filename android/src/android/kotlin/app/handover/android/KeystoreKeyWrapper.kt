package app.handover.android

import android.content.Context
import android.content.pm.PackageManager
import android.os.Build
import android.security.keystore.KeyGenParameterSpec
import android.security.keystore.KeyProperties
import app.handover.AesGcmKeyWrapper
import app.handover.WrappingKeys
import app.handover.ffi.KeyWrapper
import java.security.KeyStore
import javax.crypto.KeyGenerator
import javax.crypto.SecretKey

/**
 * Wraps the device key with an AES-256-GCM key that never leaves the
 * Android Keystore (StrongBox when the phone has one, else the TEE); the
 * logic (one key per alias even on two first uses at once, the StrongBox
 * fallback, the self-test of a new key) is [AesGcmKeyWrapper]'s, tested on
 * the JVM.
 *
 * What this buys: a copy of the app's files (a backup that slipped
 * through, a file-level exploit, a forensic image of the flash) holds no
 * usable device key. What it does not: on a rooted phone, code running as
 * the app can ask the Keystore to unwrap, and then holds the key in memory
 * (see docs/threat-model.md).
 */
class KeystoreKeyWrapper(context: Context, alias: String = "handover-device-key-wrapper") :
    KeyWrapper by AesGcmKeyWrapper(AndroidKeystoreKeys(context.applicationContext, alias))

/** The wrapping key in the Android Keystore. */
internal class AndroidKeystoreKeys(private val context: Context, override val alias: String) : WrappingKeys {
    override val strongBoxAvailable: Boolean
        get() = Build.VERSION.SDK_INT >= 28 &&
            context.packageManager.hasSystemFeature(PackageManager.FEATURE_STRONGBOX_KEYSTORE)

    private fun keyStore(): KeyStore = KeyStore.getInstance(ANDROID_KEYSTORE).apply { load(null) }

    override fun find(): SecretKey? = (keyStore().getEntry(alias, null) as? KeyStore.SecretKeyEntry)?.secretKey

    override fun generate(strongBox: Boolean): SecretKey {
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

    override fun delete() = keyStore().deleteEntry(alias)

    private companion object {
        const val ANDROID_KEYSTORE = "AndroidKeyStore"
    }
}
