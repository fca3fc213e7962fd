package app.handover

import app.handover.core.ItemState
import app.handover.ffi.HandoverException
import java.io.File
import java.io.IOException
import java.net.ServerSocket
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import org.junit.After
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Before
import org.junit.Test

/** [HttpSyncTransport] against the real `handover office serve` on loopback. */
class HttpSyncTest {
    private lateinit var office: TestOffice
    private lateinit var url: String
    private val db get() = File(office.root, "d.db").path

    @Before fun setUp() {
        office = TestOffice()
        url = office.serve()
    }

    @After fun tearDown() = office.close()

    @Test
    fun enrolPullVerifyPushASyncedDay() = runBlocking {
        HandoverClient.open(db, SoftwareKeyWrapper()).use { c ->
            val http = HttpSyncTransport(url)
            val enrolment = c.enroll(office.token(), http)
            assertEquals(c.identity.deviceId, enrolment.deviceId)
            assertEquals(office.key, enrolment.officeKeyHex)
            assertEquals("Postman 1", enrolment.assignee.value)
            val (_, codes) = office.issue(c.identity.deviceId)
            val pulled = c.sync(http)
            assertEquals(1L, pulled.manifestsImported)
            assertEquals(office.articles.size, c.items().first().size)
            for (r in office.articles) assertTrue(c.verify(r, codes.getValue(r)) is Verification.Accepted)
            assertTrue(c.pending.value > 0)
            val pushed = c.sync(http, maxPerBatch = 2)
            assertEquals(0L, pushed.pending)
            assertEquals(0L, pushed.flagged)
            assertEquals(c.pendingCount(), 0L)
            assertEquals(0L, c.pending.value)
            assertTrue(c.items().first().all { it.state == ItemState.HANDED_OVER })
            val report = office.cli("office", "report", "--dir", office.dir.path, "--json")
            assertTrue(report, report.contains("\"verified\": ${office.articles.size}"))
        }
    }

    /** Enrol [c] over [http], pull its manifest and hand one item over: an event waits. */
    private suspend fun oneHandoverWaiting(c: HandoverClient, http: HttpSyncTransport) {
        c.enroll(office.token(), http)
        val (_, codes) = office.issue(c.identity.deviceId)
        c.sync(http)
        assertTrue(c.verify(office.articles[0], codes.getValue(office.articles[0])) is Verification.Accepted)
    }

    @Test
    fun aForgedAckIsRefusedAndNothingIsLost() = runBlocking {
        HandoverClient.open(db).use { c ->
            val http = HttpSyncTransport(url)
            oneHandoverWaiting(c, http)
            val pending = c.pendingCount()
            // A party in the middle flips a bit of every ack.
            val tampering = OfficeTransport { req ->
                val r = http.send(req)
                if (req.path == "/v1/batches" && r.status == 200) {
                    val b = r.body.copyOf()
                    b[b.size / 2] = (b[b.size / 2].toInt() xor 1).toByte()
                    OfficeResponse(r.status, b)
                } else r
            }
            try {
                c.sync(tampering)
                fail("a forged ack was applied")
            } catch (e: HandoverException) {
                assertTrue(e.toString(), e is HandoverException.Refused || e is HandoverException.InvalidInput)
            }
            assertEquals(pending, c.pendingCount())
            // The honest path still works afterwards: the office answers the same ack again.
            assertEquals(0L, c.sync(http).pending)
        }
    }

    @Test
    fun anOfficeThatIsDownIsAnIOExceptionAndNothingIsLost() = runBlocking {
        HandoverClient.open(db).use { c ->
            val http = HttpSyncTransport(url)
            oneHandoverWaiting(c, http)
            office.stopServer()
            val pending = c.pendingCount()
            try {
                c.sync(HttpSyncTransport(url, connectTimeoutMs = 2_000))
                fail("synced with no office")
            } catch (e: IOException) {
            }
            assertEquals(pending, c.pendingCount())
            // Nobody listening at all.
            val closedPort = ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress()).use { it.localPort }
            try {
                c.sync(HttpSyncTransport("http://127.0.0.1:$closedPort"))
                fail("synced with nobody")
            } catch (e: IOException) {
            }
            assertEquals(pending, c.pendingCount())
        }
    }

    @Test
    fun aTokenIsSingleUseAndAWrongOneIsRefused() = runBlocking {
        val token = office.token()
        HandoverClient.open(db).use { c -> c.enroll(token, HttpSyncTransport(url)) }
        HandoverClient.open(File(office.root, "other.db").path).use { other ->
            try {
                other.enroll(token, HttpSyncTransport(url))
                fail("a used token enrolled a second device")
            } catch (e: HandoverException.Refused) {
                assertFalse("no token in the message", e.message!!.contains(token.substringAfter('.')))
            }
            try {
                other.enroll("not-a-token", HttpSyncTransport(url))
                fail("garbage token")
            } catch (e: HandoverException.InvalidInput) {
            }
        }
    }

    @Test
    fun syncBeforeEnrolmentIsRefused() = runBlocking {
        HandoverClient.open(db).use { c ->
            try {
                c.sync(HttpSyncTransport(url))
                fail("an unenrolled device synced")
            } catch (e: HandoverException) {
                assertTrue(e.toString(), e is HandoverException.Refused || e is HandoverException.NotAllowed)
            }
        }
    }

    @Test
    fun plainHttpOnlyOnLoopback() {
        for (bad in listOf("http://office.example", "ftp://127.0.0.1", "nonsense")) {
            try {
                HttpSyncTransport(bad)
                fail("accepted $bad")
            } catch (e: IllegalArgumentException) {
            }
        }
        HttpSyncTransport("https://office.example")
        HttpSyncTransport("http://127.0.0.1:8080/")
    }
}
