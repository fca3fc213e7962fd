package app.handover

import app.handover.ffi.HandoverException
import app.handover.ffi.RetiredOutbox
import java.io.File
import java.net.URLEncoder
import java.util.Collections
import java.util.concurrent.atomic.AtomicInteger
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.delay
import kotlinx.coroutines.runBlocking
import org.junit.After
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNotEquals
import org.junit.Assert.assertSame
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Before
import org.junit.Test

/**
 * The client over a day's life with the real office: sync state, one sync
 * at a time, the shared client, the QR enrolment, the log hook, and a store
 * whose key is lost.
 */
class LifecycleTest {
    private lateinit var office: TestOffice
    private lateinit var url: String
    private val db get() = File(office.root, "d.db").path

    @Before fun setUp() {
        office = TestOffice()
        url = office.serve()
    }

    @After fun tearDown() {
        HandoverLog.logger = null
        office.close()
    }

    private fun qr(token: String, server: String = url) =
        "handover:enrol?server=${URLEncoder.encode(server, Charsets.UTF_8)}&token=${URLEncoder.encode(token, Charsets.UTF_8)}"

    /** Enrol by QR code, pull the manifest, hand the first item over: one event waits. */
    private suspend fun handedOverOne(c: HandoverClient): Map<String, String> {
        c.enrolFromQr(qr(office.token()))
        val (_, codes) = office.issue(c.identity.deviceId)
        c.sync(HttpSyncTransport(url))
        val r = office.articles[0]
        assertTrue(c.verify(r, codes.getValue(r)) is Verification.Accepted)
        return codes
    }

    @Test
    fun enrolFromQrEnrolsWithTheOfficeTheCodeNames() = runBlocking {
        HandoverClient.open(db).use { c ->
            val done = c.enrolFromQr(qr(office.token()))
            assertEquals(url, done.server)
            assertEquals(c.identity.deviceId, done.enrolment.deviceId)
            assertEquals(office.key, done.enrolment.officeKeyHex)
        }
        HandoverClient.open(File(office.root, "e.db").path).use { c ->
            // A bare token needs an address from the app.
            try {
                c.enrolFromQr(office.token())
                fail("enrolled with no address")
            } catch (e: IllegalArgumentException) {
                assertTrue(e.message!!, e.message!!.contains("no server address"))
            }
            assertEquals(url, c.enrolFromQr(office.token(), fallbackServer = url).server)
        }
    }

    @Test
    fun syncStateFollowsEachSyncAndSortsARevocationAsPermanent() = runBlocking {
        HandoverClient.open(db).use { c ->
            assertEquals(SyncState.Idle, c.syncState.value)
            handedOverOne(c)
            val ok = c.syncState.value
            assertTrue(ok.toString(), ok is SyncState.Succeeded)
            office.cli("office", "revoke", "--dir", office.dir.path, "--device", c.identity.deviceId)
            c.recordException(office.articles[1], app.handover.core.ExceptionReason.NOT_HOME)
            try {
                c.sync(HttpSyncTransport(url))
                fail("a revoked device synced")
            } catch (e: HandoverException.Refused) {
            }
            val failed = c.syncState.value as SyncState.Failed
            assertEquals(SyncFailure(SyncFailure.REVOKED, true, "revoked"), failed.failure)
            assertEquals(SyncWork.Outcome.FAIL, SyncWork.outcome(null, failed.failure, 0))
            assertTrue("nothing dropped", c.pendingCount() > 0)
        }
    }

    @Test
    fun twoSyncsAtOnceRunOneSession() = runBlocking {
        HandoverClient.open(db).use { c ->
            handedOverOne(c)
            val http = HttpSyncTransport(url)
            val inFlight = AtomicInteger()
            val most = AtomicInteger()
            val paths = Collections.synchronizedList(mutableListOf<String>())
            val slow = OfficeTransport { req ->
                most.accumulateAndGet(inFlight.incrementAndGet(), ::maxOf)
                try {
                    paths += req.path
                    delay(150)
                    http.send(req)
                } finally {
                    inFlight.decrementAndGet()
                }
            }
            val results = (1..3).map { async { c.sync(slow) } }.awaitAll()
            assertEquals("one request at a time", 1, most.get())
            assertEquals("one session: one pull", 1, paths.count { it == "/v1/manifests" })
            assertSame(results[0], results[1])
            assertSame(results[0], results[2])
            assertEquals(0L, c.pendingCount())
            // Once it ended, the next sync is a new session.
            c.sync(slow)
            assertEquals(2, paths.count { it == "/v1/manifests" })
        }
    }

    @Test
    fun closingTheSharedClientDoesNothing() = runBlocking {
        val c = HandoverClient.open(db)
        c.markShared()
        c.use { it.pendingCount() } // a screen's use {} closes it...
        assertEquals(0L, c.pendingCount()) // ...and it still works for the rest of the process.
        c.closeForGood()
        val own = HandoverClient.open(File(office.root, "own.db").path)
        own.close()
        try {
            own.pendingCount()
            fail("a closed client answered")
        } catch (e: Exception) {
        }
    }

    @Test
    fun theLogHookHearsTheDayButNoCodeOrPersonalData() = runBlocking {
        val lines = Collections.synchronizedList(mutableListOf<String>())
        HandoverLog.logger = HandoverLogger { level, message -> lines += "$level $message" }
        val wrapper = SoftwareKeyWrapper()
        val codes = HandoverClient.open(db, wrapper).use { c ->
            val codes = handedOverOne(c)
            c.recordException(office.articles[1], app.handover.core.ExceptionReason.NOT_HOME)
            c.sync(HttpSyncTransport(url))
            codes
        }
        val log = lines.joinToString("\n")
        assertTrue(log, log.contains("INFO sync done"))
        assertTrue(log, log.contains("enrolled as device"))
        val secrets = codes.values + office.articles + (0..3).flatMap { listOf("Resident $it", "$it Lake Road", "98765432$it$it") } +
            listOf("Postman 1", office.key)
        for (s in secrets) assertFalse("the log holds \"$s\":\n$log", log.contains(s))
        // A logger that throws never fails the library.
        HandoverLog.logger = HandoverLogger { _, _ -> throw IllegalStateException("broken logger") }
        HandoverClient.open(db, wrapper).use { it.pendingCount() }
        Unit
    }

    @Test
    fun aStoreWhoseKeyIsLostIsMovedAsideAndItsEventsStillReachTheOffice() = runBlocking {
        val wrapper = SoftwareKeyWrapper()
        val oldId = HandoverClient.open(db, wrapper).use { c ->
            handedOverOne(c)
            c.recordException(office.articles[1], app.handover.core.ExceptionReason.NOT_HOME)
            c.identity.deviceId
        }
        // The Keystore key is gone: a new wrapping key cannot unwrap.
        try {
            HandoverClient.open(db, SoftwareKeyWrapper())
            fail("opened without the key")
        } catch (e: HandoverException.KeyUnavailable) {
        }
        val retiredDir = File(office.root, "retired")
        val moved = RetiredStores.moveAside(File(db), retiredDir)!!
        assertFalse(File(db).exists())
        assertEquals(listOf(moved), RetiredStores.list(retiredDir))
        RetiredOutbox.open(moved.path).use { outbox ->
            assertEquals(oldId, outbox.identity().deviceId)
            assertTrue(outbox.pendingCount() >= 2)
            // The batch is carried to the office as a file: `handover office ingest`.
            var n = 0
            val carried = SyncTransport { batch ->
                n++
                val batchFile = File(office.root, "retired-$n.batch").apply { writeBytes(batch) }
                val ackFile = File(office.root, "retired-$n.ack")
                office.cli("office", "ingest", "--dir", office.dir.path, "--batch", batchFile.path, "--ack-out", ackFile.path)
                ackFile.readBytes()
            }
            val result = outbox.syncOnce(carried)
            assertEquals(0L, result.pending)
            assertEquals(0L, result.flagged)
        }
        val report = office.cli("office", "report", "--dir", office.dir.path, "--json")
        assertTrue(report, report.contains("\"verified\": 1"))
        // A new store, a new identity: it enrols again.
        HandoverClient.open(db, SoftwareKeyWrapper()).use { c -> assertNotEquals(oldId, c.identity.deviceId) }
    }

    @Test
    fun movingAsideNeverOverwritesAndKeepsEveryFile() {
        val dir = File(office.root, "stores").apply { mkdirs() }
        val retired = File(dir, "retired")
        val now = 1_764_000_000_000L
        fun store(text: String) = File(dir, "h.db").also {
            it.writeText(text)
            File(it.path + "-wal").writeText("$text-wal")
        }
        val first = RetiredStores.moveAside(store("one"), retired, now)!!
        val second = RetiredStores.moveAside(store("two"), retired, now)!!
        assertNotEquals(first, second)
        assertEquals("one", first.readText())
        assertEquals("one-wal", File(first.path + "-wal").readText())
        assertEquals("two", second.readText())
        assertEquals(null, RetiredStores.moveAside(File(dir, "h.db"), retired, now))
        assertEquals(listOf(first, second), RetiredStores.list(retired))
    }
}
