package app.handover

import app.handover.ffi.HandoverDevice
import app.handover.ffi.HandoverException
import app.handover.ffi.KeyWrapException
import app.handover.ffi.KeyWrapper
import java.io.File
import java.security.SecureRandom
import javax.crypto.Cipher
import javax.crypto.KeyGenerator
import javax.crypto.SecretKey
import javax.crypto.spec.GCMParameterSpec
import kotlinx.coroutines.runBlocking
import org.junit.After
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Before
import org.junit.Test

/**
 * AES-256-GCM in software: what `KeystoreKeyWrapper` does on a phone, with
 * the key in memory instead of the Keystore. Remembers what it wrapped so
 * the tests can look for it in the database's files.
 */
class SoftwareKeyWrapper(private val key: SecretKey = newKey()) : KeyWrapper {
    val wrapped = mutableListOf<ByteArray>()

    override fun wrap(key: ByteArray): ByteArray {
        wrapped.add(key.copyOf())
        val iv = ByteArray(12).also { SecureRandom().nextBytes(it) }
        val c = Cipher.getInstance("AES/GCM/NoPadding")
        c.init(Cipher.ENCRYPT_MODE, this.key, GCMParameterSpec(128, iv))
        return iv + c.doFinal(key)
    }

    override fun unwrap(wrapped: ByteArray): ByteArray {
        if (wrapped.size < 12 + 16) throw KeyWrapException.Unavailable("wrapped key too short")
        val c = Cipher.getInstance("AES/GCM/NoPadding")
        c.init(Cipher.DECRYPT_MODE, key, GCMParameterSpec(128, wrapped, 0, 12))
        return try {
            c.doFinal(wrapped, 12, wrapped.size - 12)
        } catch (e: javax.crypto.AEADBadTagException) {
            throw KeyWrapException.Unavailable("not wrapped by this key")
        }
    }

    companion object {
        fun newKey(): SecretKey = KeyGenerator.getInstance("AES").apply { init(256) }.generateKey()
    }
}

/** The Keystore's key was invalidated (the lock screen was removed, say). */
class InvalidatedKeyWrapper : KeyWrapper {
    override fun wrap(key: ByteArray): ByteArray = throw KeyWrapException.Unavailable("key permanently invalidated")
    override fun unwrap(wrapped: ByteArray): ByteArray = throw IllegalStateException("key permanently invalidated")
}

class KeyWrapperTest {
    private lateinit var office: TestOffice
    private val db get() = File(office.root, "d.db")

    @Before fun setUp() { office = TestOffice() }

    @After fun tearDown() = office.close()

    private fun files(): ByteArray =
        listOf("", "-wal", "-shm", "-journal").map { File(db.path + it) }.filter { it.exists() }
            .fold(ByteArray(0)) { all, f -> all + f.readBytes() }

    private fun ByteArray.contains(needle: ByteArray): Boolean =
        (0..size - needle.size).any { i -> needle.indices.all { this[i + it] == needle[it] } }

    /** The Ed25519 seed inside the PKCS#8 v2 document the wrapper was given. */
    private fun seed(pkcs8: ByteArray) = pkcs8.copyOfRange(16, 48)

    @Test
    fun wrappedKeyRoundTripKeepsTheIdentity() = runBlocking {
        val wrapper = SoftwareKeyWrapper()
        val id = HandoverClient.open(db.path, wrapper).use { it.identity }
        HandoverClient.open(db.path, wrapper).use { assertEquals(id, it.identity) }
        assertEquals("wrapped once, when made", 1, wrapper.wrapped.size)
    }

    @Test
    fun theDatabaseNeverHoldsThePlaintextKey() = runBlocking {
        val wrapper = SoftwareKeyWrapper()
        HandoverClient.open(db.path, wrapper).use { c ->
            // A day's work while open: the key signs events.
            c.trustOfficeKey(office.key)
            office.enroll(c.identity.publicKeyHex)
            c.importManifest(office.issue(c.identity.deviceId).first)
            assertFalse("plaintext key in the open database", files().contains(seed(wrapper.wrapped.single())))
        }
        assertFalse("plaintext key in the closed database", files().contains(seed(wrapper.wrapped.single())))
    }

    @Test
    fun anUnwrappedStoreIsWrappedOnItsFirstWrappedOpen() = runBlocking {
        val id = HandoverClient.open(db.path).use { it.identity }
        val wrapper = SoftwareKeyWrapper()
        HandoverClient.open(db.path, wrapper).use { c ->
            assertEquals(id, c.identity)
            assertFalse(files().contains(seed(wrapper.wrapped.single())))
        }
        try {
            HandoverClient.open(db.path).close()
            fail("a wrapped store opened without its wrapper")
        } catch (e: HandoverException.KeyUnavailable) {
        }
    }

    @Test
    fun aLostWrappingKeyIsKeyUnavailableAndTheDatabaseIsUntouched() = runBlocking {
        HandoverClient.open(db.path, SoftwareKeyWrapper()).close()
        val before = files()
        for (other in listOf(SoftwareKeyWrapper(), InvalidatedKeyWrapper())) {
            try {
                HandoverClient.open(db.path, other).close()
                fail("opened with $other")
            } catch (e: HandoverException.KeyUnavailable) {
                assertTrue(e.message!!, e.message!!.contains("not wrapped by this key") || e.message!!.contains("invalidated"))
            }
        }
        assertArrayEquals(before, files())
    }

    @Test
    fun theGeneratedBindingsTakeTheWrapperDirectly() {
        val wrapper = SoftwareKeyWrapper()
        val id = HandoverDevice.openWrapped(db.path, wrapper).use { it.identity() }
        HandoverDevice.openWrapped(db.path, wrapper).use { assertEquals(id, it.identity()) }
    }
}
