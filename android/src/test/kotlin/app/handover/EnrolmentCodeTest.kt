package app.handover

import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNull
import org.junit.Assert.fail
import org.junit.Test

/** The enrolment QR code as `handover office enrol-token --server` writes it. */
class EnrolmentCodeTest {
    @Test
    fun readsTheOfficesCode() {
        // The same vector as the CLI's test (tests/tests/operator_cli.rs).
        val code = EnrolmentCode.parse("handover:enrol?server=https%3A%2F%2Fpo.example%3A8443&token=T0k")
        assertEquals("https://po.example:8443", code.server)
        assertEquals("T0k", code.token)
        assertFalse(code.toString().contains("T0k"))
        val bare = EnrolmentCode.parse(" b9bdcab603a2054e.k3x7 ")
        assertNull(bare.server)
        assertEquals("b9bdcab603a2054e.k3x7", bare.token)
    }

    @Test
    fun refusesWhatIsNotACode() {
        for (bad in listOf("", "handover:enrol?server=https%3A%2F%2Fx", "handover:enrol?server=ftp%3A%2F%2Fx&token=t", "two words")) {
            try {
                EnrolmentCode.parse(bad)
                fail("took $bad")
            } catch (e: IllegalArgumentException) {
                // expected
            }
        }
    }
}
