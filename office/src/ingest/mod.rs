//! Ingesting a device's batch: checks, verdicts, confirmations and the ack.
//!
//! In order:
//!
//! 1. The batch's structure; the device is enrolled, not revoked, and the
//!    batch's key is the enrolled key.
//! 2. Each event, against the [`ChainCursor`] at the head the office holds:
//!    * at a seq already held, byte-identical to the held event: a replay,
//!      nothing changes;
//!    * at a held seq, different, **validly signed and chained onto the
//!      event held before it**: a fork (a cloned device). The batch is
//!      refused, the device flagged `fork` (a flag is never overwritten) and
//!      the event kept as evidence;
//!    * at a held seq, different, and not validly signed and chained: a
//!      forgery or damage. Anyone can send bytes, so the batch is refused
//!      **without** flagging the device;
//!    * the next seq: accepted only if the cursor accepts it (signature,
//!      hash, chain); otherwise refused without flagging. A later seq is a
//!      gap.
//! 3. Each new event gets a verdict (below) and is stored; all of it in one
//!    transaction.
//!
//! The office derives clock suspicion itself from each signed body, and
//! does not rely on the device's flag alone: the counter (the device's
//! hybrid logical clock) ahead of the device time by more than the
//! tolerance, a device time behind the highest counter seen from the device
//! (a clock walked back, however small the steps), a counter that does not
//! rise, or a device time ahead of the office's.
//!
//! Verdicts of `handed_over`, the first check that fails deciding:
//!
//! | verdict | when |
//! |---|---|
//! | `outside_validity` | the item was never issued to this device in that manifest |
//! | `duplicate` | this device handed the item over before, whatever that verdict (no second guess: [`judge`]) |
//! | `code_mismatch` | the version was never issued |
//! | `attempts_exceeded` | this device's wrong codes of that version (`attempt_failed` events and `code_mismatch` handovers) reached its `max_attempts` |
//! | `code_mismatch` | the code is not the code of that version (re-derived with the policy of the version in force) |
//! | `outside_validity` | the device time is outside the manifest's window |
//! | `superseded` | the right code of a version the office has since replaced |
//! | `after_lock` | the item had locked on this device at that version |
//! | `duplicate` | the item was already confirmed by an earlier event |
//! | `clock_suspect` | the device flagged, or the office derived, clock suspicion |
//! | `verified` | none of the above |
//!
//! A second handover of an item by one device, or a handover beyond the
//! attempt limit, also flags the device `code_guessing`.
//!
//! Other events: `attempts_exceeded` for a wrong code beyond the version's
//! `max_attempts`; `reimported` for a second import of one manifest
//! revision; `payment_mismatch` for a payment that is not the item's cash
//! on delivery (amount, an item without one, a second payment, a UPI
//! reference that is not 12 digits); `recorded` otherwise. Only `verified`
//! handovers produce a confirmation SMS (and, for vaccination, a certificate
//! record).
//!
//! **A resend after the office lost events** (a restore from a backup, a
//! failover to a standby that was behind): a batch that starts beyond the
//! head is a `gap`, answered with the seq the office needs, never a fork.
//! The device resends from there with the acks this office sealed for those
//! events the first time ([`Batch::acks`]). An ack counts only if it opens
//! under the office's key, names this device, and its head hash is the hash
//! of the batch's event at its seq (the chain then fixes every event before
//! it). Its verdicts are kept instead of the office's second judgement, so
//! a handover another device made in the meantime cannot turn a verified
//! one into a duplicate; and a verified handover's confirmation SMS, queued
//! (and most likely sent) the first time, is recorded `cancelled` with its
//! reason instead of going out again. An ack that does not count is
//! ignored: its events are judged as new.
//!
//! The ack acknowledges through the batch's last seq with that event's hash,
//! and carries the stored verdict of each event of the batch, so ingesting
//! the same batch again returns byte-for-byte the same ack.
//!
//! A batch costs a fixed handful of statements, not a few per event: the
//! events already held are read in one range, what the verdicts depend on
//! is read once ([`judge`]), and the new events, their confirmations and
//! the device's head are written in multi-row statements ([`rows`]). On
//! PostgreSQL, where every statement is a round trip, this is what lets
//! two servers take thousands of events a second (`docs/scale.md`).
//!
//! | file | concern |
//! |---|---|
//! | `mod.rs` | the flow above: the chain, forks, gaps, clock suspicion, the ack |
//! | `judge.rs` | what the office knows about a batch's items; verdicts |
//! | `rows.rs` | reading held events; writing events and confirmations |

mod judge;
mod rows;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use handover_core::event::{ChainCursor, Event, EventBody, Verified, GENESIS};
use handover_core::keys::PublicKey;
use handover_core::rules::{clock_tolerance, later};
use handover_core::sync::{Ack, Batch, EventVerdict, Verdict, ACK_FORMAT};
use serde::Serialize;

use crate::auth::{spend_nonce_with, CheckedRequest};
use crate::error::{Error, Result};
use crate::store::sql::{lock_order, reference_locks, P};
use crate::store::{ps, Tx};
use crate::{ms, Office};

/// What an ingest did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IngestSummary {
    /// The device.
    pub device_id: String,
    /// Events in the batch.
    pub received: u64,
    /// Events stored for the first time.
    pub new: u64,
    /// Events already held (a replayed or overlapping batch).
    pub already_held: u64,
    /// The ack acknowledges through this seq.
    pub through_seq: u64,
    /// Verdicts of the batch's events, by name.
    pub verdicts: BTreeMap<String, u64>,
}

/// The result of an ingest: the sealed ack for the device, and a summary.
#[derive(Debug)]
pub struct Ingested {
    /// The sealed ack.
    pub ack: Vec<u8>,
    /// What happened.
    pub summary: IngestSummary,
}

/// The request's nonce, as reading the head left it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Nonce {
    /// Spent by the read (PostgreSQL), or no request to spend one of.
    Spent,
    /// Already spent by an earlier request: a replay.
    Replayed,
    /// Still to spend (SQLite).
    NotSpent,
}

/// The device as ingest sees it, read once per batch.
struct DeviceHead {
    nonce: Nonce,
    key: PublicKey,
    cursor: ChainCursor,
    /// Highest counter (hybrid logical clock) seen from the device.
    clock_mark: Option<i64>,
    /// A `handover load` device: its handovers queue no SMS.
    simulated: bool,
}

/// Why a batch was refused: a fork is recorded after the rollback.
enum Refusal {
    Fork { seq: u64, event: Box<Event> },
    Other(Error),
}

impl From<handover_core::Error> for Refusal {
    fn from(e: handover_core::Error) -> Self {
        Refusal::Other(e.into())
    }
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Refusal::Other(e)
    }
}

impl crate::store::Transient for Refusal {
    fn is_transient(&self) -> bool {
        matches!(self, Refusal::Other(e) if crate::store::Transient::is_transient(e))
    }

    fn is_unreachable(&self) -> bool {
        matches!(self, Refusal::Other(e) if crate::store::Transient::is_unreachable(e))
    }
}

impl Office {
    /// Ingest a batch (see the module docs).
    pub fn ingest(&self, batch_bytes: &[u8], now: DateTime<Utc>) -> Result<Ingested> {
        self.ingest_batch(&Batch::from_bytes(batch_bytes)?, now)
    }

    /// Ingest a parsed batch (see the module docs).
    pub fn ingest_batch(&self, batch: &Batch, now: DateTime<Utc>) -> Result<Ingested> {
        self.ingest_with(batch, None, now)
    }

    /// Ingest the batch a device's checked request carries
    /// ([`Office::check_request`]): the request's nonce is spent and its
    /// device's revocation read in the batch's own transaction (the events
    /// need the device's row anyway), so a batch costs one transaction.
    /// A refused batch's nonce is spent in a transaction of its own.
    pub fn ingest_request(
        &self,
        request: &CheckedRequest,
        batch: &Batch,
        now: DateTime<Utc>,
    ) -> Result<Ingested> {
        if batch.device_id != request.device_id() {
            return Err(handover_core::Error::WrongDevice.into());
        }
        match self.ingest_with(batch, Some(request), now) {
            Ok(ingested) => Ok(ingested),
            // Refused before the nonce was spent (or with it rolled back):
            // spend it now, so the same request is a replay, whatever the
            // answer was. A replayed request is refused as one.
            Err(e) if !matches!(e, Error::ReplayedRequest | Error::StoreUnavailable(_)) => {
                self.store.write(|tx| request.spend_nonce(tx))?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    fn ingest_with(
        &self,
        batch: &Batch,
        request: Option<&CheckedRequest>,
        now: DateTime<Utc>,
    ) -> Result<Ingested> {
        let device_id = batch.device_id.clone();
        // Signatures and hashes are checked before the writer is taken, so
        // concurrent batches share the cores; the chain is checked inside.
        let checked: Vec<(&Event, handover_core::Result<Verified<'_>>)> = batch
            .events
            .iter()
            .map(|e| (e, e.verified(&batch.device_key)))
            .collect();
        let signed = self.signed_verdicts(batch, now)?;
        // The items the events name: another device's batch naming one of
        // them waits for this one (several servers on PostgreSQL).
        let references = lock_order(
            checked
                .iter()
                .filter_map(|(_, v)| v.as_ref().ok()?.body().kind.subject().1),
        );
        let stored = self.store.write(|tx| {
            // One batch of a device at a time, across servers: the head is
            // read with the device's row lock (and the nonce spent in the
            // same round trip on PostgreSQL).
            let head = device_head(tx, &device_id, request, &references)?;
            if head.key != batch.device_key {
                return Err(Refusal::Other(Error::UnknownDevice(device_id.clone())));
            }
            match (request, head.nonce) {
                (_, Nonce::Replayed) => return Err(Refusal::Other(Error::ReplayedRequest)),
                (Some(request), Nonce::NotSpent) => request.spend_nonce(tx)?,
                _ => {}
            }
            ingest_events(self, tx, &device_id, head, &checked, &signed, now)
        });
        let done = match stored {
            Ok(done) => done,
            Err(Refusal::Other(e)) => return Err(e),
            Err(Refusal::Fork { seq, event }) => {
                // Rolled back; the flag and the evidence go in on their own.
                self.store
                    .write(|tx| record_fork(tx, &device_id, &event, now))?;
                return Err(Error::Fork {
                    device: device_id,
                    seq,
                });
            }
        };
        let mut counts = BTreeMap::new();
        for v in &done.verdicts {
            *counts.entry(v.verdict.as_str().to_owned()).or_insert(0) += 1;
        }
        let ack = Ack {
            format: ACK_FORMAT.into(),
            device_id: device_id.clone(),
            through_seq: done.through.0,
            head_hash: done.through.1,
            verdicts: done.verdicts,
        };
        let through_seq = ack.through_seq;
        let ack = ack.seal(&self.signing_key())?;
        let received = batch.events.len() as u64;
        Ok(Ingested {
            ack,
            summary: IngestSummary {
                through_seq,
                device_id,
                received,
                new: done.new,
                already_held: received - done.new,
                verdicts: counts,
            },
        })
    }

    /// The verdicts of this office's own acks carried by a resend (see the
    /// module docs), by seq. Acks that do not count are left out.
    fn signed_verdicts(&self, batch: &Batch, now: DateTime<Utc>) -> Result<Signed> {
        let mut signed = Signed::default();
        if batch.acks.is_empty() {
            return Ok(signed);
        }
        // This office's keys, earlier ones until their grace ends.
        let trusted = self.ack_keys(now)?;
        let (Some(first), Some(last)) = (batch.events.first(), batch.events.last()) else {
            return Ok(signed);
        };
        for text in &batch.acks {
            let Ok(ack) = handover_core::api::from_base64(text)
                .and_then(|sealed| Ack::open(&sealed, &trusted))
            else {
                continue;
            };
            if ack.device_id != batch.device_id {
                continue;
            }
            if ack.through_seq.checked_add(1) == Some(first.seq) && ack.head_hash == first.prev_hash
            {
                // The device purged what the office lost: take the chain
                // up from the event this office acknowledged last.
                signed.checkpoint = Some((ack.through_seq, ack.head_hash));
                continue;
            }
            if ack.through_seq < first.seq || ack.through_seq > last.seq {
                continue;
            }
            let at = (ack.through_seq - first.seq) as usize;
            if batch.events.get(at).map(|e| e.hash) != Some(ack.head_hash) {
                continue;
            }
            for v in ack.verdicts {
                if v.seq >= first.seq && v.seq <= ack.through_seq {
                    signed.verdicts.insert(v.seq, v.verdict);
                }
            }
        }
        Ok(signed)
    }
}

/// What the acks a resend carries establish (module docs): the verdicts
/// this office sealed for its events, by seq, and a checkpoint (the seq and
/// hash of an event it acknowledged, just before the batch's first).
#[derive(Default)]
struct Signed {
    verdicts: BTreeMap<u64, Verdict>,
    checkpoint: Option<(u64, [u8; 32])>,
}

/// What a batch did, for its ack.
struct Done {
    /// Events stored for the first time.
    new: u64,
    /// The ack's seq and hash: the batch's last event, or the head for an
    /// empty batch.
    through: (u64, [u8; 32]),
    /// The stored verdict of each of the batch's events, in order.
    verdicts: Vec<EventVerdict>,
}

/// A new event, checked and chained, waiting for its verdict.
struct New<'e> {
    event: &'e Event,
    body: &'e EventBody,
    clock_suspect: bool,
}

/// Check the batch's events against the chain, judge and store the new
/// ones, move the device's head.
fn ingest_events<'e>(
    office: &Office,
    tx: &mut Tx<'_, '_>,
    device_id: &str,
    mut head: DeviceHead,
    checked: &'e [(&'e Event, handover_core::Result<Verified<'e>>)],
    signed: &Signed,
    now: DateTime<Utc>,
) -> std::result::Result<Done, Refusal> {
    // A checkpoint past the head: the events between are lost to the
    // office (the device purged them), recorded as such.
    if let (Some((at, hash)), Some((first, _))) = (signed.checkpoint, checked.first()) {
        if at > head.cursor.seq() && first.seq == at + 1 {
            rows::record_gap(tx, device_id, head.cursor.seq() + 1, at, now)?;
            head.cursor = ChainCursor::at(at, hash);
        }
    }
    let refuse = |seq: u64, why: String| {
        Refusal::Other(Error::BadEvent {
            device: device_id.to_owned(),
            seq,
            why,
        })
    };
    let through = match checked.last() {
        Some((e, _)) => (e.seq, e.hash),
        None => (head.cursor.seq(), head.cursor.hash()),
    };
    // The events the office holds already, read at once.
    let held_seqs: Vec<u64> = checked
        .iter()
        .map(|(e, _)| e.seq)
        .filter(|&s| s <= head.cursor.seq())
        .collect();
    let held = match (held_seqs.iter().min(), held_seqs.iter().max()) {
        (Some(&lo), Some(&hi)) => rows::held_events(tx, device_id, lo, hi)?,
        _ => BTreeMap::new(),
    };
    let mut verdicts: Vec<Option<Verdict>> = Vec::with_capacity(checked.len());
    let mut new: Vec<New<'e>> = Vec::new();
    for (event, verified) in checked {
        let event = *event;
        if event.seq <= head.cursor.seq() {
            let (stored, verdict) = held
                .get(&event.seq)
                .ok_or(Error::Store("an event below the head is missing"))?;
            if stored == event {
                verdicts.push(Some(*verdict));
                continue;
            }
            let mut before = match event.seq {
                1 => ChainCursor::genesis(),
                s => {
                    let prev = match held.get(&(s - 1)) {
                        Some((prev, _)) => prev.clone(),
                        None => rows::held_event(tx, device_id, s - 1)?
                            .ok_or(Error::Store("an event below the head is missing"))?,
                    };
                    ChainCursor::at(prev.seq, prev.hash)
                }
            };
            return Err(match verified {
                Ok(v) if before.link(v).is_ok() => Refusal::Fork {
                    seq: event.seq,
                    event: Box::new(event.clone()),
                },
                Ok(_) => refuse(
                    event.seq,
                    "differs from the event held at its seq and does not continue the chain".into(),
                ),
                Err(e) => refuse(
                    event.seq,
                    format!("differs from the event held at its seq and {e}"),
                ),
            });
        }
        if event.seq > head.cursor.next_seq() {
            return Err(Refusal::Other(Error::Gap {
                device: device_id.to_owned(),
                first: event.seq,
                head: head.cursor.seq(),
            }));
        }
        let verified = verified
            .as_ref()
            .map_err(|e| refuse(event.seq, e.to_string()))?;
        head.cursor
            .link(verified)
            .map_err(|e| refuse(event.seq, e.to_string()))?;
        let body = verified.body();
        let clock_suspect = clock_suspicion(body, head.clock_mark, now);
        head.clock_mark = Some(
            head.clock_mark
                .map_or(body.counter, |m| m.max(body.counter)),
        );
        verdicts.push(None);
        new.push(New {
            event,
            body,
            clock_suspect,
        });
    }

    if !new.is_empty() {
        let bodies: Vec<&EventBody> = new.iter().map(|n| n.body).collect();
        let mut known = judge::Known::load(tx, device_id, &bodies)?;
        let mut judged = Vec::with_capacity(new.len());
        for n in &new {
            let judged_now = known.judge(&office.code_keys, n.body, n.clock_suspect)?;
            // A resend: the verdict this office signed the first time.
            let verdict = signed
                .verdicts
                .get(&n.event.seq)
                .copied()
                .unwrap_or(judged_now);
            known.note(n.body, verdict);
            judged.push(verdict);
        }
        let stored: Vec<rows::Judged<'_>> = new
            .iter()
            .zip(&judged)
            .map(|(n, &verdict)| {
                let (manifest_id, reference) = n.body.kind.subject();
                let digipin = manifest_id
                    .zip(reference)
                    .and_then(|(m, r)| known.item(m, r))
                    .and_then(|i| i.digipin.as_deref());
                rows::Judged {
                    event: n.event,
                    body: n.body,
                    verdict,
                    clock_suspect: n.clock_suspect,
                    presence: crate::presence::find(n.body, digipin),
                }
            })
            .collect();
        // The device's head moves in the events' own statement.
        let head_hash = head.cursor.hash();
        let moved = [
            P::from(device_id),
            P::from(head.cursor.seq()),
            P::from(&head_hash),
            P::from(head.clock_mark),
            P::from(ms(now)),
        ];
        rows::store_events(tx, device_id, &stored, (MOVE_HEAD, &moved), now)?;
        if !head.simulated {
            // A simulated (load) device's handovers are nobody's: no SMS.
            rows::confirm(office, tx, device_id, &known, &stored, now)?;
            let resent: Vec<u64> = new
                .iter()
                .map(|n| n.event.seq)
                .filter(|seq| signed.verdicts.contains_key(seq))
                .collect();
            rows::mark_confirmed_before(tx, device_id, &resent, now)?;
        }
        if known.guessing {
            // The events, stored with their verdicts, are the evidence.
            tx.exec(
                "UPDATE devices SET flagged = 'code_guessing'
                 WHERE device_id = $1 AND flagged IS NULL",
                ps![device_id],
            )?;
        }
        let mut next = judged.into_iter();
        for v in verdicts.iter_mut().filter(|v| v.is_none()) {
            *v = next.next();
        }
    }
    let verdicts = checked
        .iter()
        .zip(verdicts)
        .map(|((e, _), v)| {
            Ok(EventVerdict {
                seq: e.seq,
                verdict: v.ok_or(Error::Store("an event without a verdict"))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Done {
        new: new.len() as u64,
        through,
        verdicts,
    })
}

/// A stored 32-byte value that is not 32 bytes: damage, not input.
fn bytes32(v: Vec<u8>, what: &'static str) -> Result<[u8; 32]> {
    v.try_into().map_err(|_| Error::Store(what))
}

/// Move the device's head past a batch's new events: `$1` the device,
/// then the seq, hash and clock mark, and when it was seen.
const MOVE_HEAD: &str =
    "UPDATE devices SET head_seq = $2, head_hash = $3, clock_mark = $4, last_seen_at = $5
     WHERE device_id = $1";

/// The device's head, its row locked until the transaction ends (see
/// [`Tx::lock_device`]). On PostgreSQL the same statement takes the locks
/// of the batch's `references` (in [`lock_order`], before the device's
/// row, as every batch does) and spends the `request`'s nonce: one round
/// trip, not three. SQLite has one writer: the head alone, the nonce left
/// to the caller.
fn device_head(
    tx: &mut Tx<'_, '_>,
    device_id: &str,
    request: Option<&CheckedRequest>,
    references: &[&str],
) -> Result<DeviceHead> {
    struct Row {
        key: Vec<u8>,
        revoked: bool,
        seq: i64,
        hash: Option<Vec<u8>>,
        clock_mark: Option<i64>,
        simulated: i64,
        fresh: i64,
    }
    macro_rules! head {
        ($fresh:expr, $locks:expr, $tail:expr) => {
            concat!(
                "SELECT public_key, revoked_at IS NOT NULL AS revoked, head_seq, head_hash,
                        clock_mark, simulated, ",
                $fresh,
                " AS fresh, ",
                $locks,
                " AS locked FROM devices WHERE device_id = $1",
                $tail
            )
        };
    }
    const HEAD: &str = head!("CAST(1 AS BIGINT)", "0", "");
    const HEAD_LOCKED: &str = head!("CAST(1 AS BIGINT)", reference_locks!("$2"), " FOR UPDATE");
    const HEAD_SPENDING: &str = concat!(
        spend_nonce_with!(),
        " ",
        head!(
            "(SELECT count(*) FROM spent)",
            reference_locks!("$5"),
            " FOR UPDATE"
        )
    );
    let refs = P::Texts(references);
    let (sql, params) = match (tx.is_pg(), request) {
        (false, _) => (HEAD, vec![P::from(device_id)]),
        (true, None) => (HEAD_LOCKED, vec![P::from(device_id), refs]),
        (true, Some(request)) => {
            let mut p = request.nonce_params().to_vec();
            p.push(refs);
            (HEAD_SPENDING, p)
        }
    };
    let row = tx
        .opt(sql, &params, |r| {
            Ok(Row {
                key: r.get("public_key")?,
                revoked: r.get("revoked")?,
                seq: r.get("head_seq")?,
                hash: r.get("head_hash")?,
                clock_mark: r.get("clock_mark")?,
                simulated: r.get("simulated")?,
                fresh: r.get("fresh")?,
            })
        })?
        .ok_or_else(|| Error::UnknownDevice(device_id.to_owned()))?;
    if row.revoked {
        return Err(Error::DeviceRevoked(device_id.to_owned()));
    }
    let hash = match row.hash {
        None => GENESIS,
        Some(h) => bytes32(h, "a device head hash has the wrong length")?,
    };
    let seq = u64::try_from(row.seq).map_err(|_| Error::Store("a device head seq is negative"))?;
    Ok(DeviceHead {
        nonce: match (tx.is_pg(), request, row.fresh) {
            (_, None, _) => Nonce::Spent,
            (false, Some(_), _) => Nonce::NotSpent,
            (true, Some(_), 0) => Nonce::Replayed,
            (true, Some(_), _) => Nonce::Spent,
        },
        key: PublicKey(bytes32(row.key, "a device key has the wrong length")?),
        cursor: ChainCursor::at(seq, hash),
        clock_mark: row.clock_mark,
        simulated: row.simulated != 0,
    })
}

/// Whether the signed body shows a clock that cannot be trusted, whatever
/// the device's own flag says.
fn clock_suspicion(body: &EventBody, mark: Option<i64>, now: DateTime<Utc>) -> bool {
    let tol = clock_tolerance().num_milliseconds();
    let time = body.time.timestamp_millis();
    let counter_ahead = body.counter.saturating_sub(time) > tol;
    let walked_back = mark.is_some_and(|m| time < m.saturating_sub(tol));
    let counter_stalled = mark.is_some_and(|m| body.counter <= m);
    let in_future = body.time > later(now, clock_tolerance());
    body.clock_suspect || counter_ahead || walked_back || counter_stalled || in_future
}

/// A fork: flag the device (never overwriting an earlier flag) and keep the
/// second signed event as evidence.
fn record_fork(
    tx: &mut Tx<'_, '_>,
    device_id: &str,
    event: &Event,
    now: DateTime<Utc>,
) -> Result<()> {
    tx.exec(
        "UPDATE devices SET flagged = 'fork' WHERE device_id = $1 AND flagged IS NULL",
        ps![device_id],
    )?;
    tx.exec(
        "INSERT INTO fork_evidence (device_id, seq, prev_hash, hash, body, signature, received_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        ps![
            device_id,
            event.seq,
            &event.prev_hash,
            &event.hash,
            &event.body,
            &event.signature,
            ms(now)
        ],
    )?;
    Ok(())
}
