package app.handover

import java.io.File
import java.nio.file.Files
import java.util.concurrent.TimeUnit
import org.junit.Assert.assertEquals

/**
 * A real office for the JVM tests, driven through the `handover` binary
 * (system property `handover.bin`): init, enrol, issue, and
 * `handover office serve` on a loopback port.
 */
class TestOffice : AutoCloseable {
    val root: File = Files.createTempDirectory("handover-kt").toFile()
    val dir = File(root, "office")
    val key: String = cli("office", "init", "--dir", dir.path, "--office-id", "PO-1",
        "--cod-upi", "indiapost.cod@sbi", "--cod-name", "India Post").trim()
    private var server: Process? = null

    val articles = listOf("EE123456785IN", "RR287043775IN", "CP000000080IN", "EE000000014IN")

    fun cli(vararg args: String): String {
        val bin = System.getProperty("handover.bin") ?: error("-Dhandover.bin is not set")
        val p = ProcessBuilder(listOf(bin) + args).start()
        val out = p.inputStream.bufferedReader().readText()
        val err = p.errorStream.bufferedReader().readText()
        val code = p.waitFor()
        assertEquals("handover ${args.joinToString(" ")}: $err", 0, code)
        return out
    }

    /** Enrol a device key by hand (the file-based path); returns the device id. */
    fun enroll(publicKeyHex: String): String =
        cli("office", "enroll", "--dir", dir.path, "--device-key", publicKeyHex, "--assignee", "Postman 1").trim()

    /** A single-use enrolment token. */
    fun token(): String = cli("office", "enrol-token", "--dir", dir.path, "--assignee", "Postman 1").lines().first().trim()

    /** Issue a post manifest of [articles] to [deviceId]; returns (manifest bytes, codes by reference). */
    fun issue(deviceId: String, name: String = "m"): Pair<ByteArray, Map<String, String>> {
        val csv = File(root, "$name.csv")
        csv.writeText(buildString {
            // Every address at Dak Bhawan's DIGIPIN cell (the specification's example).
            append("reference,service,addressee,address,mobile,cod_paise,digipin\n")
            articles.forEachIndexed { i, r -> append("$r,parcel,Resident $i,$i Lake Road,98765432$i$i,${if (i == 0) 25000 else ""},39J-49L-L8T4\n") }
        })
        val manifest = File(root, "$name.bin")
        val sms = File(root, "$name.sms.csv")
        cli("office", "issue", "--dir", dir.path, "--device", deviceId, "--programme", "post", "--bookings", csv.path,
            "--out", manifest.path, "--sms-out", sms.path, "--policy", "digits=6,tag_bits=64,iterations=10,max_attempts=3")
        val codes = sms.readLines().drop(1).associate { line ->
            val ref = line.split(",")[1]
            ref to Regex(" is (\\d+)").find(line)!!.groupValues[1]
        }
        return manifest.readBytes() to codes
    }

    /** Start `handover office serve` on a loopback port; returns its base URL. */
    fun serve(): String {
        val bin = System.getProperty("handover.bin") ?: error("-Dhandover.bin is not set")
        val p = ProcessBuilder(bin, "office", "serve", "--dir", dir.path, "--listen", "127.0.0.1:0")
            .redirectError(ProcessBuilder.Redirect.DISCARD)
            .start()
        server = p
        val line = p.inputStream.bufferedReader().readLine() ?: error("serve printed nothing")
        return line.removePrefix("listening on ").trim()
    }

    fun stopServer() {
        server?.let {
            it.destroy()
            it.waitFor(10, TimeUnit.SECONDS)
        }
        server = null
    }

    override fun close() {
        stopServer()
        root.deleteRecursively()
    }
}
