package app.handover

import app.handover.core.ExceptionReason
import app.handover.core.ItemState
import java.io.File
import java.util.Collections
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.async
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.flow.filter
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.After
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Before
import org.junit.Test

/** Flows that follow every write, writes that survive cancellation, receipts again. */
class ReactiveTest {
    private lateinit var office: TestOffice
    private val db get() = File(office.root, "d.db").path

    @Before fun setUp() { office = TestOffice() }

    @After fun tearDown() = office.close()

    private suspend fun loaded(c: HandoverClient): Map<String, String> {
        c.trustOfficeKey(office.key)
        office.enroll(c.identity.publicKeyHex)
        val (manifest, codes) = office.issue(c.identity.deviceId)
        c.importManifest(manifest)
        return codes
    }

    @Test
    fun pendingFollowsWritesFromAnotherCaller() = runBlocking {
        HandoverClient.open(db).use { c ->
            assertEquals(0L, c.pending.value)
            val codes = loaded(c)
            assertEquals("the import is an event", 1L, c.pending.value)
            val seen = async(start = CoroutineStart.UNDISPATCHED) { c.pending.filter { it == 3L }.first() }
            // Another caller (say the sync worker's coroutine) writes twice.
            launch { c.verify(office.articles[0], codes.getValue(office.articles[0])) }.join()
            launch { c.recordException(office.articles[1], ExceptionReason.NOT_HOME) }.join()
            assertEquals(3L, withTimeout(5_000) { seen.await() })
        }
    }

    /** Collect [flow] in the background until [done] holds for what was seen; return it all. */
    private suspend fun <T> CoroutineScope.seen(flow: Flow<T>, writes: suspend () -> Unit, done: (List<T>) -> Boolean): List<T> {
        val seen = Collections.synchronizedList(mutableListOf<T>())
        val collector = launch(start = CoroutineStart.UNDISPATCHED) { flow.collect { seen.add(it) } }
        writes()
        withTimeout(5_000) { while (!done(seen.toList())) delay(10) }
        collector.cancel()
        return seen.toList()
    }

    @Test
    fun itemsFlowEmitsAfterEveryWrite() = runBlocking {
        HandoverClient.open(db).use { c ->
            val codes = loaded(c)
            val first = c.items().first()
            assertEquals(office.articles.toSet(), first.map { it.reference }.toSet())
            assertTrue(first.all { it.state == ItemState.PENDING })
            val r = office.articles[2]
            val seen = seen(c.items(), { c.verify(r, codes.getValue(r)) }) { lists ->
                lists.lastOrNull()?.single { it.reference == r }?.state == ItemState.HANDED_OVER
            }
            assertTrue(seen.isNotEmpty())
        }
    }

    @Test
    fun itemFlowFollowsOneItemAndSkipsUnrelatedWrites() = runBlocking {
        HandoverClient.open(db).use { c ->
            val codes = loaded(c)
            val b = office.articles[1]
            val seen = seen(c.item(b), {
                c.recordException(office.articles[3], ExceptionReason.REFUSED) // not b
                c.verify(b, if (codes.getValue(b) == "000000") "111111" else "000000")
                c.recordException(office.articles[2], ExceptionReason.NOT_HOME) // not b
                c.verify(b, codes.getValue(b))
            }) { it.lastOrNull()?.state == ItemState.HANDED_OVER }
            assertEquals(ItemState.PENDING, seen.first()!!.state)
            assertEquals(ItemState.HANDED_OVER, seen.last()!!.state)
            // Writes to other items emit nothing new: no two emissions alike.
            assertTrue(seen.zipWithNext().none { (x, y) -> x == y })
            assertNull(c.item("EE999999990IN").first())
        }
    }

    @Test
    fun aVerifyWhoseCallerIsCancelledIsStillCommitted() = runBlocking {
        HandoverClient.open(db).use { c ->
            val codes = loaded(c)
            val a = office.articles[0]
            // Keep the writer busy so the verify is queued, then cancel its caller
            // while it runs: once started, the write goes through.
            val job = launch { c.verify(a, codes.getValue(a)) }
            job.cancelAndJoin()
            // Whether the cancellation came before or after the write started,
            // the client is consistent: a started write is committed, and the
            // pending count says so.
            val receipt = c.receipt(a)
            val pending = c.pendingCount()
            if (receipt != null) {
                assertEquals(2L, pending)
                assertEquals(ItemState.HANDED_OVER, c.item(a).first()!!.state)
            } else {
                assertEquals(1L, pending)
            }
            assertEquals(pending, c.pending.value)
        }
    }

    @Test
    fun aWriteStartedBeforeCancellationCompletes() = runBlocking {
        HandoverClient.open(db).use { c ->
            val codes = loaded(c)
            val a = office.articles[0]
            val started = kotlinx.coroutines.CompletableDeferred<Unit>()
            val job = launch {
                c.write { d ->
                    started.complete(Unit)
                    Thread.sleep(200) // the doorstep's slow phone
                    d.verify(a, codes.getValue(a), null, System.currentTimeMillis())
                }
            }
            started.await()
            job.cancelAndJoin()
            assertNotNull("committed although its caller was cancelled", c.receipt(a))
            assertEquals(2L, c.pending.value)
        }
    }

    @Test
    fun receiptAgainAfterReopen() = runBlocking {
        val a: String
        val accepted: Verification.Accepted
        HandoverClient.open(db).use { c ->
            val codes = loaded(c)
            a = office.articles[0]
            accepted = c.verify(a, codes.getValue(a)) as Verification.Accepted
            assertNull("not handed over: no receipt", c.receipt(office.articles[1]))
        }
        HandoverClient.open(db).use { c ->
            val again = c.receipt(a)
            assertEquals(accepted.receipt, again)
            assertTrue(again!!.body.value.contains("\"handed_over\""))
            assertNull(c.receipt("EE999999990IN"))
        }
    }
}
