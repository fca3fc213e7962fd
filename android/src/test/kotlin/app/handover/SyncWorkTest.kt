package app.handover

import app.handover.ffi.HandoverException
import app.handover.ffi.OfficeAnswer
import java.io.File
import java.io.IOException
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Test

/** The sync worker's decisions ([SyncWork]) and the sorting of failures ([SyncFailure]). */
class SyncWorkTest {
    @Test
    fun noForegroundServiceTypeBeforeAndroid14() {
        // API 29–30 run expedited work as a foreground service: a type the
        // manifest does not declare crashed the app there.
        for (sdk in 24..33) assertNull("API $sdk", SyncWork.foregroundServiceType(sdk))
        for (sdk in 34..36) assertEquals("API $sdk", SyncWork.FOREGROUND_SERVICE_TYPE_DATA_SYNC, SyncWork.foregroundServiceType(sdk))
    }

    @Test
    fun theLibraryManifestDeclaresNoForegroundServiceType() {
        // The decision above relies on it: nothing for Play's declaration.
        val manifest = File(System.getProperty("handover.android", "android"), "src/main/AndroidManifest.xml").readText()
        assertFalse(manifest, manifest.contains("foregroundServiceType"))
        assertFalse(manifest, manifest.contains("FOREGROUND_SERVICE_DATA_SYNC"))
    }

    @Test
    fun syncNowReplacesWorkInBackOffAndKeepsWorkThatRuns() {
        assertTrue("nothing queued", SyncWork.replaceQueued(emptyList()))
        assertTrue("sleeping in back-off", SyncWork.replaceQueued(listOf(false)))
        assertFalse("running", SyncWork.replaceQueued(listOf(true)))
        assertFalse("one of them running", SyncWork.replaceQueued(listOf(false, true)))
    }

    @Test
    fun permanentFailuresAreNotRetriedTheRestAreUpToTenTimes() {
        val revoked = SyncFailure.of(HandoverException.Refused("x"), OfficeAnswer(403, "revoked"))
        val network = SyncFailure.of(IOException("down"))
        assertEquals(SyncWork.Outcome.FAIL, SyncWork.outcome(null, revoked, 0))
        assertEquals(SyncWork.Outcome.RETRY, SyncWork.outcome(null, network, 0))
        assertEquals(SyncWork.Outcome.RETRY, SyncWork.outcome(null, network, SyncWork.MAX_ATTEMPTS - 2))
        assertEquals(SyncWork.Outcome.FAIL, SyncWork.outcome(null, network, SyncWork.MAX_ATTEMPTS - 1))
        assertEquals(SyncWork.Outcome.SUCCESS, SyncWork.outcome(0, null, 3))
        assertEquals("events still waiting", SyncWork.Outcome.RETRY, SyncWork.outcome(5, null, 0))
    }

    @Test
    fun failuresAreSortedByTheOfficesAnswerThenByKind() {
        val refused = HandoverException.Refused("the office answered 403 (revoked)")
        fun office(code: String) = SyncFailure.of(refused, OfficeAnswer(400, code))
        assertEquals(SyncFailure(SyncFailure.REVOKED, true, "revoked"), office("revoked"))
        assertEquals(SyncFailure(SyncFailure.NOT_ENROLLED, true, "unknown_device"), office("unknown_device"))
        assertEquals(SyncFailure(SyncFailure.FORKED, true, "fork"), office("fork"))
        for (code in listOf("rate_limited", "internal", "unavailable", "timeout", "stale_request", "gap")) {
            assertEquals(code, SyncFailure(SyncFailure.OFFICE, false, code), office(code))
        }
        assertEquals(SyncFailure(SyncFailure.KEY_UNAVAILABLE, true), SyncFailure.of(HandoverException.KeyUnavailable("gone")))
        assertEquals(SyncFailure(SyncFailure.REFUSED, false), SyncFailure.of(refused))
        assertEquals(SyncFailure(SyncFailure.NETWORK, false), SyncFailure.of(java.net.ConnectException("refused")))
        assertEquals(SyncFailure(SyncFailure.STORAGE, false), SyncFailure.of(HandoverException.Storage("disk")))
        assertEquals(SyncFailure(SyncFailure.OTHER, false), SyncFailure.of(IllegalStateException()))
    }
}
