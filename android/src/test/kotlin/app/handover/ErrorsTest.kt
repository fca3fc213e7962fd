package app.handover

import app.handover.core.ExceptionReason
import app.handover.ffi.HandoverDevice
import app.handover.ffi.HandoverException
import java.io.File
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import org.junit.After
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Before
import org.junit.Test

/** Every documented error, arguments out of range, and no personal data in any toString(). */
class ErrorsTest {
    private lateinit var office: TestOffice
    private val db get() = File(office.root, "d.db").path

    @Before fun setUp() { office = TestOffice() }

    @After fun tearDown() = office.close()

    private inline fun <reified E : Throwable> throws(what: String, block: () -> Unit): E {
        try {
            block()
        } catch (e: Throwable) {
            if (e is E) return e
            fail("$what: expected ${E::class.simpleName}, got $e")
        }
        fail("$what: nothing thrown")
        throw AssertionError()
    }

    @Test
    fun argumentsOutOfRangeAreRefusedBeforeAnythingIsDone() = runBlocking {
        HandoverClient.open(db).use { c ->
            throws<IllegalArgumentException>("purge(-1)") { runBlocking { c.purge(-1) } }
            throws<IllegalArgumentException>("exportBatch(0)") { runBlocking { c.exportBatch(0) } }
            throws<IllegalArgumentException>("sync(max 0)") { runBlocking { c.sync({ error("not reached") }, maxPerBatch = 0) } }
            throws<IllegalArgumentException>("syncOnce(max -1)") { runBlocking { c.syncOnce({ error("not reached") }, maxPerBatch = -1) } }
            throws<IllegalArgumentException>("payUpi(bad utr)") { runBlocking { c.payUpi("EE123456785IN", "12ab") } }
            throws<IllegalArgumentException>("verify(blank)") { runBlocking { c.verify(" ", "123456") } }
            throws<IllegalArgumentException>("enroll(blank)") { runBlocking { c.enroll("", { error("not reached") }) } }
            assertEquals("nothing was written", 0L, c.pendingCount())
        }
        throws<IllegalArgumentException>("open(blank)") { runBlocking { HandoverClient.open("") } }
        Unit
    }

    @Test
    fun theBindingsAnswerBadNumbersWithInvalidInputNotAPanic() {
        HandoverDevice.open(db).use { d ->
            val now = System.currentTimeMillis()
            for ((what, call) in listOf<Pair<String, () -> Unit>>(
                "purge(-1)" to { d.purge(-1, now) },
                "purge(MAX)" to { d.purge(Int.MAX_VALUE, now) },
                "exportBatch(0)" to { d.exportBatch(0) },
                "exportBatch(-1)" to { d.exportBatch(-1) },
                "syncSession(0)" to { d.syncSession(0) },
                "verify at Long.MAX_VALUE" to { d.verify("X", "1234", null, Long.MAX_VALUE) },
                "verify at Long.MIN_VALUE" to { d.verify("X", "1234", null, Long.MIN_VALUE) },
                "handleResponse status -1" to { d.syncSession(1).handleResponse(-1, ByteArray(0), now) },
            )) {
                throws<HandoverException.InvalidInput>(what) { call() }
            }
        }
    }

    @Test
    fun everyErrorTypeIsReachableAndItsMessageReadsWell() = runBlocking {
        HandoverClient.open(db).use { c ->
            val refused = throws<HandoverException.Refused>("untrusted manifest") { runBlocking { c.importManifest(ByteArray(300) { 1 }) } }
            assertTrue(refused.message!!, refused.message!!.startsWith("refused"))
            throws<HandoverException.InvalidInput>("bad key") { runBlocking { c.trustOfficeKey("zz") } }
            throws<HandoverException.UnknownItem>("unknown") { runBlocking { c.recordException("EE123456785IN", ExceptionReason.NOT_HOME) } }
            c.trustOfficeKey(office.key)
            office.enroll(c.identity.publicKeyHex)
            val (manifest, codes) = office.issue(c.identity.deviceId)
            c.importManifest(manifest)
            c.verify(office.articles[1], codes.getValue(office.articles[1]))
            val notAllowed = throws<HandoverException.NotAllowed>("pay for an item without COD") {
                runBlocking { c.payCash(office.articles[1]) }
            }
            assertFalse("no reference in the message", notAllowed.message!!.contains(office.articles[1]))
        }
        HandoverClient.open(File(office.root, "w.db").path, SoftwareKeyWrapper()).close()
        throws<HandoverException.KeyUnavailable>("wrapped, opened bare") { runBlocking { HandoverClient.open(File(office.root, "w.db").path) } }
        val junk = File(office.root, "junk.db").apply { writeBytes(ByteArray(4096) { (it * 7).toByte() }) }
        val storage = throws<HandoverException.Storage>("junk") { runBlocking { HandoverClient.open(junk.path) } }
        assertTrue(storage.message!!, storage.message!!.contains("untouched"))
    }

    @Test
    fun noPersonalDataOrCodeInAnyToString() = runBlocking {
        HandoverClient.open(db).use { c ->
            val http = HttpSyncTransport(office.serve())
            val enrolment = c.enroll(office.token(), http)
            val (_, codes) = office.issue(c.identity.deviceId)
            c.sync(http)
            val a = office.articles[0]
            val accepted = c.verify(a, codes.getValue(a)) as Verification.Accepted
            val item = c.item(a).first()!!
            val texts = listOf(
                item.toString(), item.post.toString(), c.items().first().toString(),
                accepted.toString(), accepted.receipt.toString(), c.receipt(a).toString(),
                enrolment.toString(), c.upiRequest(a).toString(),
            )
            // (Not the last digits alone: four digits can turn up in a hash by chance.)
            val secrets = listOf("Resident 0", "0 Lake Road", "Postman 1", codes.getValue(a), "9876543200")
            for (t in texts) for (s in secrets) assertFalse("'$s' in $t", t.contains(s))
            // What the screen needs is still there, on purpose.
            assertEquals("Resident 0", item.post!!.addressee.value)
            assertEquals("0 Lake Road", item.post!!.address.value)
            assertTrue(accepted.receipt.body.value.contains(codes.getValue(a)))
        }
    }
}
