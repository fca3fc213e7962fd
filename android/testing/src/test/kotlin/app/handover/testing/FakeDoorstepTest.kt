package app.handover.testing

import app.handover.Doorstep
import app.handover.SyncFailure
import app.handover.SyncState
import app.handover.Verification
import app.handover.core.ExceptionReason
import app.handover.core.ItemState
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

/**
 * The fake as an app team uses it: in a JVM with no JNA and no native
 * library on the class path (scripts/test-kotlin runs these so).
 */
class FakeDoorstepTest {
    /** What an app's screen logic might look like: it takes a [Doorstep]. */
    private class DoorScreen(private val doorstep: Doorstep) {
        var message = ""
        suspend fun enter(reference: String, code: String) {
            message = when (val v = doorstep.verify(reference, code)) {
                is Verification.Accepted -> "Hand it over"
                is Verification.Refused -> "Wrong code: ${v.attemptsLeft} tries left"
                is Verification.Malformed -> "Enter ${v.digits} digits"
                Verification.Locked -> "Locked: the office must re-issue"
                else -> v.toString()
            }
        }
    }

    @Test
    fun noNativeLibraryIsNeeded() {
        try {
            Class.forName("com.sun.jna.Native")
            fail("JNA is on this test's class path: the check proves nothing")
        } catch (e: ClassNotFoundException) {
        }
    }

    @Test
    fun aScreenDrivenThroughTheFakeSeesTheRealRules() = runBlocking {
        val fake = FakeDoorstep().apply { addItem("EE123456785IN", code = "482913", attempts = 2) }
        val screen = DoorScreen(fake)
        screen.enter("EE123456785IN", "12")
        assertEquals("Enter 6 digits", screen.message)
        screen.enter("EE123456785IN", "000000")
        assertEquals("Wrong code: 1 tries left", screen.message)
        screen.enter("EE123456785IN", "482 913")
        assertEquals("Hand it over", screen.message)
        assertEquals(ItemState.HANDED_OVER, fake.item("EE123456785IN").first()!!.state)
        assertEquals(listOf("attempt_failed", "handed_over"), fake.events.map { it.kind })
        assertEquals(2L, fake.pending.value)
        assertTrue(fake.verify("EE123456785IN", "482913") is Verification.AlreadyDone)
        assertEquals(2L, fake.receipt("EE123456785IN")!!.seq)
    }

    @Test
    fun wrongCodesLockAndUnknownItemsAreSaidSo() = runBlocking {
        val fake = FakeDoorstep().apply { addItem("A", code = "1234", attempts = 1) }
        assertTrue(fake.verify("A", "9999") is Verification.Locked)
        assertTrue(fake.verify("A", "1234") is Verification.Locked)
        assertTrue(fake.verify("B", "1234") is Verification.UnknownItem)
        assertNull(fake.receipt("A"))
    }

    @Test
    fun paymentsOnlyAfterTheHandoverAndExceptionsAreRecorded() = runBlocking {
        val fake = FakeDoorstep().apply {
            addItem("COD", code = "1111", codPaise = 25_000)
            addItem("AWAY", code = "2222")
        }
        try {
            fake.payCash("COD")
            fail("paid before the handover")
        } catch (e: IllegalStateException) {
        }
        fake.verify("COD", "1111")
        fake.payUpi("COD", "123456789012")
        assertTrue(fake.item("COD").first()!!.paid)
        fake.recordException("AWAY", ExceptionReason.NOT_HOME)
        assertEquals(ExceptionReason.NOT_HOME, fake.items().first().single { it.reference == "AWAY" }.exceptionReason)
        assertEquals(listOf("handed_over", "payment_upi", "exception"), fake.events.map { it.kind })
    }

    @Test
    fun syncStateAndPendingCanBeSetForTheScreensThatShowThem() {
        val fake = FakeDoorstep().apply { addItem("A", code = "1234") }
        runBlocking { fake.verify("A", "1234") }
        assertEquals(1L, fake.pending.value)
        fake.acknowledgeAll()
        assertEquals(0L, fake.pending.value)
        assertTrue(fake.syncState.value is SyncState.Succeeded)
        val revoked = SyncState.Failed(0, SyncFailure(SyncFailure.REVOKED, true, "revoked"))
        fake.setSyncState(revoked)
        assertEquals(revoked, fake.syncState.value)
    }
}
