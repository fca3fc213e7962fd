package app.handover

import app.handover.ffi.KeyWrapException
import java.security.ProviderException
import java.util.concurrent.CountDownLatch
import java.util.concurrent.atomic.AtomicInteger
import javax.crypto.KeyGenerator
import javax.crypto.SecretKey
import javax.crypto.spec.SecretKeySpec
import kotlin.concurrent.thread
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

/**
 * [AesGcmKeyWrapper]'s making of the wrapping key, with the Keystore
 * played by memory that can be slow, refuse StrongBox, or make a bad key.
 */
class KeyWrappingTest {
    private class MemoryKeys(
        override val alias: String = "a-${System.nanoTime()}",
        override val strongBoxAvailable: Boolean = false,
        val strongBoxRefuses: Boolean = false,
        var badKeys: Int = 0,
        val slowMs: Long = 0,
    ) : WrappingKeys {
        @Volatile var key: SecretKey? = null
        val generated = AtomicInteger()
        val deleted = AtomicInteger()
        val strongBoxKeys = AtomicInteger()

        override fun find() = key

        override fun generate(strongBox: Boolean): SecretKey {
            if (strongBox && strongBoxRefuses) throw ProviderException("Failed to generate key") // what some phones throw
            Thread.sleep(slowMs)
            generated.incrementAndGet()
            if (strongBox) strongBoxKeys.incrementAndGet()
            val k = if (badKeys > 0) {
                badKeys--
                SecretKeySpec(ByteArray(5), "AES") // a key the cipher will not take
            } else {
                KeyGenerator.getInstance("AES").apply { init(256) }.generateKey()
            }
            key = k
            return k
        }

        override fun delete() {
            deleted.incrementAndGet()
            key = null
        }
    }

    private val deviceKey = ByteArray(48) { it.toByte() }

    @Test
    fun twoFirstUsesAtOnceMakeOneKey() {
        val keys = MemoryKeys(slowMs = 100)
        val start = CountDownLatch(1)
        val wrapped = arrayOfNulls<ByteArray>(4)
        val threads = (0 until 4).map { i ->
            thread {
                start.await()
                wrapped[i] = AesGcmKeyWrapper(keys).wrap(deviceKey)
            }
        }
        start.countDown()
        threads.forEach { it.join() }
        assertEquals(1, keys.generated.get())
        // Every wrap opens with the one key.
        for (w in wrapped) assertArrayEquals(deviceKey, AesGcmKeyWrapper(keys).unwrap(w!!))
    }

    @Test
    fun aStrongBoxRefusalMakesTheKeyInTheTee() {
        val keys = MemoryKeys(strongBoxAvailable = true, strongBoxRefuses = true)
        val w = AesGcmKeyWrapper(keys)
        assertArrayEquals(deviceKey, w.unwrap(w.wrap(deviceKey)))
        assertEquals(1, keys.generated.get())
        assertEquals(0, keys.strongBoxKeys.get())
        // StrongBox that works is used.
        val sb = MemoryKeys(strongBoxAvailable = true)
        AesGcmKeyWrapper(sb).wrap(deviceKey)
        assertEquals(1, sb.strongBoxKeys.get())
    }

    @Test
    fun aNewKeyThatFailsItsSelfTestIsDeletedAndMadeOnceMore() {
        val keys = MemoryKeys(badKeys = 1)
        val w = AesGcmKeyWrapper(keys)
        assertArrayEquals(deviceKey, w.unwrap(w.wrap(deviceKey)))
        assertEquals(2, keys.generated.get())
        assertEquals(1, keys.deleted.get())
    }

    @Test
    fun twoBadKeysAreUnavailableAndNoneIsLeft() {
        val keys = MemoryKeys(badKeys = 2)
        try {
            AesGcmKeyWrapper(keys).wrap(deviceKey)
            fail("wrapped with a bad key")
        } catch (e: KeyWrapException.Unavailable) {
            assertTrue(e.message!!, e.message!!.contains("no working key"))
        }
        assertEquals(2, keys.deleted.get())
        assertEquals(null, keys.key)
    }

    @Test
    fun unwrapNeverMakesAKey() {
        val keys = MemoryKeys()
        val w = AesGcmKeyWrapper(keys)
        val wrapped = w.wrap(deviceKey)
        keys.delete() // the app's data cleared, the Keystore key with it
        try {
            w.unwrap(wrapped)
            fail("unwrapped with no key")
        } catch (e: KeyWrapException.Unavailable) {
        }
        assertEquals(1, keys.generated.get())
    }
}
