package app.handover

import app.handover.ffi.OfficeRequest
import java.io.ByteArrayOutputStream
import java.io.IOException
import java.io.InputStream
import java.net.HttpURLConnection
import java.net.URL
import java.security.MessageDigest
import java.util.Base64
import javax.net.ssl.HttpsURLConnection
import javax.net.ssl.SSLPeerUnverifiedException
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
 * * Connections are kept alive between requests (the platform's pool): a
 *   sync of many batches does one TLS handshake, not one per batch. Every
 *   answer is read to its end, so its connection can be reused.
 * * An answer longer than [maxAnswerBytes] (by default the API's 64 MiB,
 *   docs/sync-api.md) is an [IOException] before it is read into memory.
 * * [pins]: for an office behind a private CA, the SHA-256 of its
 *   certificate's public key (SPKI), `sha256/` and Base64, as OkHttp and
 *   `openssl … | openssl dgst -sha256 -binary | base64` write it. The
 *   connection is refused (an [SSLPeerUnverifiedException], nothing sent)
 *   unless a certificate of the office's chain matches one. The chain must
 *   still be trusted (the platform's, or [sslSocketFactory]'s).
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
    pins: Set<String> = emptySet(),
    private val maxAnswerBytes: Int = MAX_ANSWER_BYTES,
) : OfficeTransport {
    private val base: String = officeUrl.trimEnd('/')
    private val pinned: List<ByteArray> = pins.map { pin ->
        require(pin.startsWith("sha256/")) { "a pin is sha256/ and the Base64 of the SPKI's SHA-256" }
        val digest = try {
            Base64.getDecoder().decode(pin.removePrefix("sha256/"))
        } catch (e: IllegalArgumentException) {
            throw IllegalArgumentException("a pin's hash is not Base64")
        }
        require(digest.size == 32) { "a pin's hash is 32 bytes" }
        digest
    }

    init {
        val url = try {
            URL(base)
        } catch (e: Exception) {
            throw IllegalArgumentException("not a URL: $officeUrl")
        }
        require(url.protocol == "https" || (url.protocol == "http" && url.host in LOOPBACK)) {
            "the office must be reached over https (plain http only on loopback)"
        }
        require(pinned.isEmpty() || url.protocol == "https") { "pins need an https URL" }
        require(connectTimeoutMs > 0 && readTimeoutMs > 0) { "timeouts must be positive" }
        require(maxAnswerBytes > 0) { "maxAnswerBytes must be positive" }
    }

    override suspend fun send(request: OfficeRequest): OfficeResponse = withContext(Dispatchers.IO) {
        require(request.path.startsWith("/")) { "request path must start with /" }
        val connection = URL(base + request.path).openConnection() as HttpURLConnection
        var reusable = false
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
            }
            if (pinned.isNotEmpty()) {
                connection.connect()
                checkPins(connection as HttpsURLConnection)
            }
            if (request.method == "POST") connection.outputStream.use { it.write(request.body) }
            val status = connection.responseCode
            if (connection.contentLengthLong > maxAnswerBytes) throw tooLarge()
            val stream = if (status >= 400) connection.errorStream else connection.inputStream
            val body = stream?.use { readCapped(it) } ?: ByteArray(0)
            reusable = true
            OfficeResponse(status, body)
        } finally {
            // Read to the end and closed: the connection goes back to the
            // pool. Anything else (a failure half-way) is not reused.
            if (!reusable) connection.disconnect()
        }
    }

    private fun checkPins(connection: HttpsURLConnection) {
        val chain = connection.serverCertificates
        val ok = chain.any { cert ->
            val spki = MessageDigest.getInstance("SHA-256").digest(cert.publicKey.encoded)
            pinned.any { MessageDigest.isEqual(it, spki) }
        }
        if (!ok) throw SSLPeerUnverifiedException("the office's certificate matches none of the pinned keys")
    }

    private fun tooLarge() = IOException("the office's answer is over $maxAnswerBytes bytes")

    private fun readCapped(input: InputStream): ByteArray {
        val out = ByteArrayOutputStream()
        val buffer = ByteArray(16 * 1024)
        while (true) {
            val n = input.read(buffer)
            if (n < 0) return out.toByteArray()
            if (out.size() + n > maxAnswerBytes) throw tooLarge()
            out.write(buffer, 0, n)
        }
    }

    override fun toString() = "HttpSyncTransport($base${if (pinned.isEmpty()) "" else ", ${pinned.size} pins"})"

    companion object {
        /** The longest answer read by default: the API's largest body (docs/sync-api.md). */
        const val MAX_ANSWER_BYTES = 64 * 1024 * 1024

        /** The pin of a certificate's public key: `sha256/` and the Base64 of the SPKI's SHA-256. */
        fun pinOf(publicKeyEncoded: ByteArray): String =
            "sha256/" + Base64.getEncoder().encodeToString(MessageDigest.getInstance("SHA-256").digest(publicKeyEncoded))

        private val LOOPBACK = setOf("127.0.0.1", "localhost", "[::1]", "::1")
    }
}
