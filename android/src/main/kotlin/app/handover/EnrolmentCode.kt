package app.handover

import app.handover.ffi.Enrolment
import java.net.URLDecoder

/**
 * What the office's enrolment QR code holds (`handover office enrol-token
 * --server URL`): `handover:enrol?server=URL&token=TOKEN`, both
 * percent-encoded; or the bare token, when the office gave no address (the
 * app then uses the address it is configured with). [toString] never shows
 * the token: it enrols a device once.
 */
class EnrolmentCode(val server: String?, val token: String) {
    override fun toString(): String = "EnrolmentCode(server=$server, token=<redacted>)"

    companion object {
        private const val PREFIX = "handover:enrol?"

        /** Read a scanned code; [IllegalArgumentException] if it is not one. */
        fun parse(scanned: String): EnrolmentCode {
            val text = scanned.trim()
            if (!text.startsWith(PREFIX)) {
                require(text.isNotEmpty() && text.none { it.isWhitespace() }) { "not an enrolment code" }
                return EnrolmentCode(null, text)
            }
            val fields = text.removePrefix(PREFIX).split('&').associate {
                val (k, v) = it.split('=', limit = 2).let { kv -> kv[0] to kv.getOrElse(1) { "" } }
                k to URLDecoder.decode(v, Charsets.UTF_8)
            }
            val token = fields["token"]?.takeIf { it.isNotEmpty() }
                ?: throw IllegalArgumentException("the enrolment code holds no token")
            val server = fields["server"]?.takeIf { it.isNotEmpty() }
            require(server == null || server.startsWith("https://") || server.startsWith("http://")) {
                "the enrolment code's server is not an http(s) URL"
            }
            return EnrolmentCode(server, token)
        }
    }
}

/** What [enrolFromQr] did: the office it enrolled with, and as whom. */
data class QrEnrolment(val server: String, val enrolment: Enrolment)

/**
 * Enrol with the text of the office's enrolment QR code: parse it
 * ([EnrolmentCode.parse]) and enrol ([enroll]) with the office it names, or
 * with [fallbackServer] when it names none. Keep [QrEnrolment.server]: it
 * is where this device syncs.
 */
suspend fun HandoverClient.enrolFromQr(
    scanned: String,
    fallbackServer: String? = null,
    transportFor: (String) -> OfficeTransport = { HttpSyncTransport(it) },
): QrEnrolment {
    val code = EnrolmentCode.parse(scanned)
    val server = code.server ?: fallbackServer
        ?: throw IllegalArgumentException("the enrolment code holds no server address, and no fallback was given")
    val enrolment = enroll(code.token, transportFor(server))
    HandoverLog.info("enrolled as device ${enrolment.deviceId}")
    return QrEnrolment(server, enrolment)
}
