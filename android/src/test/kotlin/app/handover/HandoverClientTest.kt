package app.handover

import app.handover.core.ExceptionReason
import app.handover.ffi.HandoverDevice
import app.handover.ffi.HandoverException
import app.handover.core.ItemState
import app.handover.ffi.VerifyResult
import java.io.File
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import org.junit.After
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Before
import org.junit.Test

/**
 * The Kotlin facade and the generated bindings on the JVM, against the
 * host-built library, with the real office driven through the `handover`
 * binary (system property `handover.bin`).
 */
class HandoverClientTest {
    private lateinit var office: TestOffice
    private val dir get() = office.root
    private val officeDir get() = office.dir
    private val articles get() = office.articles

    private fun cli(vararg args: String) = office.cli(*args)

    @Before
    fun setUp() {
        office = TestOffice()
    }

    @After
    fun tearDown() = office.close()

    /** Enrol [client], issue a post manifest of the office's articles and return the codes by reference. */
    private suspend fun loaded(client: HandoverClient): Map<String, String> {
        client.trustOfficeKey(office.key)
        val id = office.enroll(client.identity.publicKeyHex)
        assertEquals(client.identity.deviceId, id)
        val (manifest, codes) = office.issue(id)
        val imported = client.importManifest(manifest)
        assertEquals(articles.size.toLong(), imported.items)
        assertTrue(imported.changed)
        assertFalse(client.importManifest(manifest).changed)
        return codes
    }

    private fun wrong(code: String) = if (code == "000000") "111111" else "000000"

    @Test
    fun importAndVerifyAcceptedRefusedLocked() = runBlocking {
        HandoverClient.open(File(dir, "d.db").path).use { c ->
            val codes = loaded(c)
            val (a, b) = articles
            val accepted = c.verify(a, codes.getValue(a))
            assertTrue(accepted is Verification.Accepted)
            assertTrue((accepted as Verification.Accepted).receipt.body.value.contains("\"handed_over\""))
            assertEquals(128, accepted.receipt.signatureHex.length)
            assertFalse("no code in toString", accepted.toString().contains(codes.getValue(a)))
            assertEquals(Verification.AlreadyDone, c.verify(a, codes.getValue(a)))
            assertEquals(Verification.Refused(2), c.verify(b, wrong(codes.getValue(b))))
            assertEquals(Verification.Malformed(6), c.verify(b, "12"))
            assertEquals(Verification.Refused(1), c.verify(b, wrong(codes.getValue(b))))
            assertEquals(Verification.Locked, c.verify(b, wrong(codes.getValue(b))))
            assertEquals(Verification.Locked, c.verify(b, codes.getValue(b)))
            assertEquals(Verification.UnknownItem, c.verify("EE999999990IN", "123456"))
            assertEquals(ItemState.LOCKED, c.item(b).first()!!.state)
            assertEquals(ItemState.HANDED_OVER, c.item(a).first()!!.state)
            assertNull(c.item("nope").first())
        }
        // Lockout and outcomes survive reopening.
        HandoverClient.open(File(dir, "d.db").path).use { c ->
            assertEquals(ItemState.LOCKED, c.item(articles[1]).first()!!.state)
            assertEquals(0, c.item(articles[1]).first()!!.attemptsLeft)
        }
    }

    @Test
    fun exceptionsPaymentsAndUpi() = runBlocking {
        HandoverClient.open(File(dir, "d.db").path).use { c ->
            val codes = loaded(c)
            val cod = articles[0]
            val upi = c.upiRequest(cod)
            assertTrue(upi.uri, upi.uri.startsWith("upi://pay?pa=indiapost.cod@sbi&pn=India%20Post&am=250.00&cu=INR&tr=$cod-1"))
            assertEquals(upi.qrWidth * upi.qrWidth, upi.qrModules.size)
            // Paid as it changes hands: after the recipient's code.
            try {
                c.payCash(cod)
                fail("paid before the handover")
            } catch (e: HandoverException.NotAllowed) {
                assertTrue(e.message!!, e.message!!.contains("not yet handed over"))
            }
            assertTrue(c.verify(cod, codes.getValue(cod)) is Verification.Accepted)
            assertTrue(c.payUpi(cod, "612345678901") > 0)
            try {
                c.payCash(cod)
                fail("paid twice")
            } catch (e: HandoverException.NotAllowed) {
                assertFalse(e.message!!.contains(cod))
            }
            c.recordException(articles[2], ExceptionReason.NOT_HOME)
            val item = c.item(articles[2]).first()!!
            assertEquals(ItemState.EXCEPTION, item.state)
            assertEquals(ExceptionReason.NOT_HOME, item.exceptionReason)
            assertTrue(c.verify(articles[2], codes.getValue(articles[2])) is Verification.Accepted)
            assertTrue(c.item(cod).first()!!.paid)
            assertEquals(25000L, c.item(cod).first()!!.post!!.codAmountPaise)
        }
    }

    @Test
    fun exportIngestAckRoundTrip() = runBlocking {
        HandoverClient.open(File(dir, "d.db").path).use { c ->
            val codes = loaded(c)
            for (r in articles) c.verify(r, codes.getValue(r))
            assertEquals(1L + articles.size, c.pendingCount())
            val batch = c.exportBatch()
            assertArrayEquals(batch, c.exportBatch())
            val batchFile = File(dir, "batch.json").apply { writeBytes(batch) }
            val ackFile = File(dir, "ack.bin")
            val summary = cli("office", "ingest", "--dir", officeDir.path, "--batch", batchFile.path,
                "--ack-out", ackFile.path, "--json")
            assertTrue(summary, summary.contains("\"verified\": ${articles.size}"))
            val ack = ackFile.readBytes()
            val tampered = ack.copyOf().also { it[it.size / 2] = (it[it.size / 2].toInt() xor 1).toByte() }
            try {
                c.applyAck(tampered)
                fail("tampered ack applied")
            } catch (e: HandoverException) {
                assertTrue(e is HandoverException.Refused || e is HandoverException.InvalidInput)
            }
            assertEquals(1L + articles.size, c.pendingCount())
            val result = c.applyAck(ack)
            assertEquals(articles.size.toLong(), result.verified)
            assertEquals(0L, result.flagged)
            assertEquals(0L, c.pendingCount())
        }
    }

    @Test
    fun badBytesAndBadFilesSurfaceAsExceptions() = runBlocking {
        HandoverClient.open(File(dir, "d.db").path).use { c ->
            try {
                c.importManifest(byteArrayOf(1, 2, 3))
                fail("garbage imported")
            } catch (e: HandoverException.Refused) {
                // No office key pinned yet: nothing is trusted.
            }
            c.trustOfficeKey(office.key)
            try {
                c.importManifest(ByteArray(200) { it.toByte() })
                fail("garbage imported")
            } catch (e: HandoverException.InvalidInput) {
            }
            try {
                c.trustOfficeKey("not hex")
                fail("bad key accepted")
            } catch (e: HandoverException.InvalidInput) {
            }
            try {
                c.recordException("EE123456785IN", ExceptionReason.REFUSED)
                fail("unknown item")
            } catch (e: HandoverException.UnknownItem) {
            }
            try {
                c.applyAck(ByteArray(0))
                fail("empty ack applied")
            } catch (e: HandoverException) {
            }
        }
        val junk = File(dir, "junk.db").apply { writeBytes(ByteArray(4096) { (it * 7).toByte() }) }
        val before = junk.readBytes()
        try {
            HandoverClient.open(junk.path)
            fail("junk opened")
        } catch (e: HandoverException.Storage) {
            assertNotNull(e.message)
        }
        assertArrayEquals("a database it cannot open is left untouched", before, junk.readBytes())
    }

    @Test
    fun concurrentCallsAreSerialisedOnOneWriter() = runBlocking {
        HandoverClient.open(File(dir, "d.db").path).use { c ->
            val codes = loaded(c)
            val results = articles.map { r -> async { c.verify(r, codes.getValue(r)) } }.awaitAll()
            val seqs = results.map { (it as Verification.Accepted).receipt.seq }.sorted()
            assertEquals((2L..(1L + articles.size)).toList(), seqs)
        }
    }

    @Test
    fun syncOnceSendsEverythingInBatchesAndRefusesForgedAcks() = runBlocking {
        HandoverClient.open(File(dir, "d.db").path).use { c ->
            val codes = loaded(c)
            for (r in articles) c.verify(r, codes.getValue(r))
            // A transport answered by another office: its ack is refused, nothing is lost.
            val rogue = File(dir, "rogue")
            cli("office", "init", "--dir", rogue.path)
            cli("office", "enroll", "--dir", rogue.path, "--device-key", c.identity.publicKeyHex, "--assignee", "X")
            val forged = SyncTransport { batch -> exchange(rogue, batch, "forged") }
            try {
                c.syncOnce(forged)
                fail("forged ack applied")
            } catch (e: HandoverException.Refused) {
            }
            assertEquals(1L + articles.size, c.pendingCount())
            var sent = 0
            val honest = SyncTransport { batch -> sent++; exchange(officeDir, batch, "b$sent") }
            val r = c.syncOnce(honest, maxPerBatch = 2)
            assertEquals(3, r.batches) // 5 events, 2 per batch
            assertEquals(5L, r.acknowledgedThrough)
            assertEquals(0L, r.pending)
            assertEquals(0L, r.flagged)
        }
    }

    private fun exchange(office: File, batch: ByteArray, name: String): ByteArray {
        val b = File(dir, "$name.json").apply { writeBytes(batch) }
        val a = File(dir, "$name.ack")
        cli("office", "ingest", "--dir", office.path, "--batch", b.path, "--ack-out", a.path)
        return a.readBytes()
    }

    @Test
    fun generatedBindingsDirectly() {
        HandoverDevice.open(File(dir, "g.db").path).use { d ->
            assertEquals(16, d.identity().deviceId.length)
            assertEquals(VerifyResult.UnknownItem, d.verify("X1", "1234", null, System.currentTimeMillis()))
            assertEquals(0L, d.pendingCount())
            assertTrue(d.items().isEmpty())
        }
    }
}
