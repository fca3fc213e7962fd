package app.handover

import app.handover.core.ExceptionReason
import app.handover.core.Fix
import app.handover.ffi.HandoverException
import java.io.File
import kotlinx.coroutines.runBlocking
import org.junit.After
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Before
import org.junit.Test

/** Presence evidence through the Kotlin API: a fix goes into the signed event, and the office places it. */
class PresenceTest {
    private lateinit var office: TestOffice

    @Before
    fun setUp() {
        office = TestOffice()
    }

    @After
    fun tearDown() = office.close()

    private fun fix(lat: Double, lon: Double, accuracy: UInt = 10u, mock: Boolean = false) =
        Fix(Math.round(lat * 1e7).toInt(), Math.round(lon * 1e7).toInt(), accuracy, System.currentTimeMillis(), mock)

    @Test
    fun theOfficeFindsEachOutcomeAtTheDoorOrAway() = runBlocking {
        HandoverClient.open(File(office.root, "d.db").path).use { c ->
            c.trustOfficeKey(office.key)
            val id = office.enroll(c.identity.publicKeyHex)
            val (manifest, codes) = office.issue(id)
            c.importManifest(manifest)
            val a = office.articles
            // At the door (Dak Bhawan), in the post office 2 km north, and a mock location.
            assertTrue(c.verify(a[0], codes.getValue(a[0]), fix(28.622788, 77.213033)) is Verification.Accepted)
            c.recordException(a[1], ExceptionReason.NOT_HOME, fix(28.6428, 77.213033))
            c.recordException(a[2], ExceptionReason.NOT_HOME, fix(28.622788, 77.213033, mock = true))
            c.recordException(a[3], ExceptionReason.REFUSED)
            try {
                c.recordException(a[3], ExceptionReason.REFUSED, fix(28.6, 77.2).copy(latE7 = 1_000_000_000))
                fail("a latitude beyond 90 degrees was taken")
            } catch (e: HandoverException) {
                // expected: the fix is checked before anything is written
            }
            val batch = File(office.root, "b.json").apply { writeBytes(c.exportBatch()) }
            val ack = File(office.root, "ack.bin")
            office.cli("office", "ingest", "--dir", office.dir.path, "--batch", batch.path, "--ack-out", ack.path)
            val report = office.cli("office", "report", "--dir", office.dir.path, "--json")
            val presence = report.substringAfter("\"presence\"")
            for (want in listOf("\"at_address\": 1", "\"away\": 1", "\"mock_location\": 1", "\"no_fix\": 1", "\"distance_m\"")) {
                assertTrue("$want in $presence", presence.contains(want))
            }
        }
    }
}
