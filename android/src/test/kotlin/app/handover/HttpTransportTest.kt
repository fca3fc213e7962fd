package app.handover

import app.handover.ffi.HttpHeader
import app.handover.ffi.OfficeRequest
import com.sun.net.httpserver.HttpServer
import com.sun.net.httpserver.HttpsConfigurator
import com.sun.net.httpserver.HttpsServer
import java.io.File
import java.io.IOException
import java.net.InetAddress
import java.net.InetSocketAddress
import java.nio.file.Files
import java.security.KeyStore
import java.util.Collections
import javax.net.ssl.KeyManagerFactory
import javax.net.ssl.SSLContext
import javax.net.ssl.SSLPeerUnverifiedException
import javax.net.ssl.TrustManagerFactory
import kotlinx.coroutines.runBlocking
import org.junit.After
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

/** [HttpSyncTransport] against small loopback servers: keep-alive, answer caps, pinning. */
class HttpTransportTest {
    private val servers = mutableListOf<HttpServer>()
    private val tmp: File = Files.createTempDirectory("handover-tls").toFile()

    @After fun tearDown() {
        servers.forEach { it.stop(0) }
        tmp.deleteRecursively()
    }

    private val ports = Collections.synchronizedList(mutableListOf<Int>())
    private val seen = Collections.synchronizedList(mutableListOf<String>())

    /** Answers [answer] bytes to every request; remembers each request's client port and path. */
    private fun <S : HttpServer> serve(server: S, answer: ByteArray, chunked: Boolean = false): S {
        server.createContext("/") { ex ->
            ports += ex.remoteAddress.port
            seen += ex.requestURI.path
            ex.requestBody.readBytes()
            ex.sendResponseHeaders(200, if (chunked) 0 else answer.size.toLong())
            ex.responseBody.use { it.write(answer) }
        }
        server.start()
        servers += server
        return server
    }

    private fun plain(answer: ByteArray, chunked: Boolean = false) =
        serve(HttpServer.create(InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0), answer, chunked)

    private val request = OfficeRequest("POST", "/v1/batches", listOf(HttpHeader("content-type", "application/json")), ByteArray(10))

    @Test
    fun connectionsAreKeptAliveBetweenRequests() = runBlocking {
        val s = plain("{}".toByteArray())
        val t = HttpSyncTransport("http://127.0.0.1:${s.address.port}")
        repeat(3) { assertEquals(200, t.send(request).status) }
        assertEquals(3, ports.size)
        assertEquals("one connection for three requests: $ports", 1, ports.toSet().size)
    }

    @Test
    fun anAnswerOverTheCapIsAnIOExceptionLengthKnownOrNot() = runBlocking {
        for (chunked in listOf(false, true)) {
            val s = plain(ByteArray(100_000), chunked)
            val t = HttpSyncTransport("http://127.0.0.1:${s.address.port}", maxAnswerBytes = 50_000)
            try {
                t.send(request)
                fail("read an answer over the cap (chunked: $chunked)")
            } catch (e: IOException) {
                assertTrue(e.message!!, e.message!!.contains("over 50000 bytes"))
            }
            assertEquals(100_000, HttpSyncTransport("http://127.0.0.1:${s.address.port}").send(request).body.size)
        }
    }

    /** An HTTPS server with a fresh self-signed certificate (keytool), and a client context that trusts it. */
    private fun tls(): Triple<HttpsServer, SSLContext, KeyStore> {
        val ks = File(tmp, "office.p12")
        val keytool = File(System.getProperty("java.home"), "bin/keytool").path
        val p = ProcessBuilder(
            keytool, "-genkeypair", "-alias", "office", "-keyalg", "EC", "-groupname", "secp256r1",
            "-dname", "CN=localhost", "-ext", "SAN=ip:127.0.0.1,dns:localhost", "-validity", "2",
            "-keystore", ks.path, "-storetype", "PKCS12", "-storepass", "changeit",
        ).redirectErrorStream(true).start()
        val out = p.inputStream.bufferedReader().readText()
        assertEquals(out, 0, p.waitFor())
        val store = KeyStore.getInstance("PKCS12").apply { ks.inputStream().use { load(it, "changeit".toCharArray()) } }
        val kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm()).apply { init(store, "changeit".toCharArray()) }
        val serverCtx = SSLContext.getInstance("TLS").apply { init(kmf.keyManagers, null, null) }
        val server = HttpsServer.create(InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0)
        server.httpsConfigurator = HttpsConfigurator(serverCtx)
        serve(server, "{}".toByteArray())
        val tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm()).apply { init(store) }
        val clientCtx = SSLContext.getInstance("TLS").apply { init(null, tmf.trustManagers, null) }
        return Triple(server, clientCtx, store)
    }

    @Test
    fun aPinnedOfficeIsReachedAndAnyOtherKeyIsRefusedBeforeAnythingIsSent() = runBlocking {
        val (server, ctx, store) = tls()
        val base = "https://127.0.0.1:${server.address.port}"
        val pin = HttpSyncTransport.pinOf(store.getCertificate("office").publicKey.encoded)
        val right = HttpSyncTransport(base, sslSocketFactory = ctx.socketFactory, pins = setOf(pin))
        assertEquals(200, right.send(request).status)
        assertEquals(1, seen.size)
        val other = HttpSyncTransport.pinOf(ByteArray(91) { 7 })
        val wrong = HttpSyncTransport(base, sslSocketFactory = ctx.socketFactory, pins = setOf(other))
        try {
            wrong.send(request)
            fail("sent to an office whose key is not pinned")
        } catch (e: SSLPeerUnverifiedException) {
        }
        assertEquals("the request never reached it", 1, seen.size)
        // No pins: the trusted chain is enough.
        assertEquals(200, HttpSyncTransport(base, sslSocketFactory = ctx.socketFactory).send(request).status)
    }

    @Test
    fun badPinsAreRefusedUpFront() {
        for ((pins, url) in listOf(
            setOf("sha1/AAAA") to "https://office.example",
            setOf("sha256/not base64!") to "https://office.example",
            setOf("sha256/AAAA") to "https://office.example",
            setOf(HttpSyncTransport.pinOf(ByteArray(3))) to "http://127.0.0.1:1",
        )) {
            try {
                HttpSyncTransport(url, pins = pins)
                fail("took $pins for $url")
            } catch (e: IllegalArgumentException) {
            }
        }
    }
}
