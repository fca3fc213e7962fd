package app.handover

import app.handover.ffi.OfficeRequest
import java.io.IOException
import java.net.HttpURLConnection
import java.net.URL
import javax.net.ssl.HttpsURLConnection
import javax.net.ssl.SSLSocketFactory
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.withContext

/**
 * [OfficeTransport] over HTTP(S) with the platform's `HttpURLConnection`
 * (on Android and on any JVM; no other dependency). [officeUrl] is the
 * service's base URL, e.g. `https://office.example`; plain `http://` only
 * for a service on loopback (tests) — the office refuses plain HTTP
 * elsewhere, and so does this class.
 *
 * Requests are signed by the device; this class only moves bytes. A
 * connection failure or a timeout is an [IOException]; any HTTP status is
 * returned for the sync session to judge.
 */
class HttpSyncTransport(
    officeUrl: String,
    private val connectTimeoutMs: Int = 15_000,
    private val readTimeoutMs: Int = 60_000,
    private val sslSocketFactory: SSLSocketFactory? = null,
) : OfficeTransport {
    private val base: String = officeUrl.trimEnd('/')

    init {
        val url = try {
            URL(base)
        } catch (e: Exception) {
            throw IllegalArgumentException("not a URL: $officeUrl")
        }
        require(url.protocol == "https" || (url.protocol == "http" && url.host in LOOPBACK)) {
            "the office must be reached over https (plain http only on loopback)"
        }
        require(connectTimeoutMs > 0 && readTimeoutMs > 0) { "timeouts must be positive" }
    }

    override suspend fun send(request: OfficeRequest): OfficeResponse = withContext(Dispatchers.IO) {
        require(request.path.startsWith("/")) { "request path must start with /" }
        val connection = URL(base + request.path).openConnection() as HttpURLConnection
        try {
            if (connection is HttpsURLConnection && sslSocketFactory != null) {
                connection.sslSocketFactory = sslSocketFactory
            }
            connection.connectTimeout = connectTimeoutMs
            connection.readTimeout = readTimeoutMs
            connection.instanceFollowRedirects = false
            connection.useCaches = false
            connection.requestMethod = request.method
            for (h in request.headers) connection.setRequestProperty(h.name, h.value)
            if (request.method == "POST") {
                connection.doOutput = true
                connection.setFixedLengthStreamingMode(request.body.size)
                connection.outputStream.use { it.write(request.body) }
            }
            val status = connection.responseCode
            val stream = if (status >= 400) connection.errorStream else connection.inputStream
            val body = stream?.use { it.readBytes() } ?: ByteArray(0)
            OfficeResponse(status, body)
        } finally {
            connection.disconnect()
        }
    }

    override fun toString() = "HttpSyncTransport($base)"

    private companion object {
        val LOOPBACK = setOf("127.0.0.1", "localhost", "[::1]", "::1")
    }
}
