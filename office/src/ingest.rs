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
//! | `code_mismatch` | the code is not the code of that version (re-derived with the policy of the version in force), or the version was never issued |
//! | `outside_validity` | the device time is outside the manifest's window |
//! | `superseded` | the right code of a version the office has since replaced |
//! | `after_lock` | the item had locked on this device at that version |
//! | `duplicate` | the item was already confirmed by an earlier event |
//! | `clock_suspect` | the device flagged, or the office derived, clock suspicion |
//! | `verified` | none of the above |
//!
//! Other events: `attempts_exceeded` for a wrong code beyond the version's
//! `max_attempts`; `reimported` for a second import of one manifest
//! revision; `payment_mismatch` for a payment that is not the item's cash
//! on delivery (amount, an item without one, a second payment, a UPI
//! reference that is not 12 digits); `recorded` otherwise. Only `verified`
//! handovers produce a confirmation SMS (and, for vaccination, a certificate
//! record).
//!
//! The ack acknowledges through the batch's last seq with that event's hash,
//! and carries the stored verdict of each event of the batch, so ingesting
//! the same batch again returns byte-for-byte the same ack.

use std::collections::BTreeMap;

use crate::store::{ps, Tx};
use chrono::{DateTime, Utc};
use handover_core::codes::{derive_code, Policy, Programme};
use handover_core::event::{
    ChainCursor, Event, EventBody, EventKind, PaymentMethod, Verified, GENESIS,
};
use handover_core::keys::PublicKey;
use handover_core::manifest::ItemDetails;
use handover_core::rules::{clock_tolerance, constant_time_eq, earlier, later};
use handover_core::sync::{Ack, Batch, EventVerdict, Verdict, ACK_FORMAT};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::schema::Columns;
use crate::{from_ms, ms, Office};

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

/// The device as ingest sees it, read once per batch.
struct DeviceHead {
    key: PublicKey,
    cursor: ChainCursor,
    /// Highest counter (hybrid logical clock) seen from the device.
    clock_mark: Option<i64>,
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
}

impl Office {
    /// Ingest a batch (see the module docs).
    pub fn ingest(&self, batch_bytes: &[u8], now: DateTime<Utc>) -> Result<Ingested> {
        self.ingest_batch(&Batch::from_bytes(batch_bytes)?, now)
    }

    /// Ingest a parsed batch (see the module docs).
    pub fn ingest_batch(&self, batch: &Batch, now: DateTime<Utc>) -> Result<Ingested> {
        let device_id = batch.device_id.clone();
        // Signatures and hashes are checked before the writer is taken, so
        // concurrent batches share the cores; the chain is checked inside.
        let checked: Vec<(&Event, handover_core::Result<Verified<'_>>)> = batch
            .events
            .iter()
            .map(|e| (e, e.verified(&batch.device_key)))
            .collect();
        let stored = self.store.write(|tx| {
            // One batch of a device at a time, across servers.
            tx.lock_device(&device_id)?;
            let head = device_head(tx, &device_id)?;
            if head.key != batch.device_key {
                return Err(Refusal::Other(Error::UnknownDevice(device_id.clone())));
            }
            let new = ingest_events(self, tx, &device_id, head, &checked, now)?;
            Ok((new, ack_for(tx, &device_id, &batch.events)?))
        });
        let (new, (ack, counts)) = match stored {
            Ok(stored) => stored,
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
        let through_seq = ack.through_seq;
        let ack = ack.seal(&self.signing)?;
        let received = batch.events.len() as u64;
        Ok(Ingested {
            ack,
            summary: IngestSummary {
                through_seq,
                device_id,
                received,
                new,
                already_held: received - new,
                verdicts: counts,
            },
        })
    }
}

/// A stored 32-byte value that is not 32 bytes: damage, not input.
fn bytes32(v: Vec<u8>, what: &'static str) -> Result<[u8; 32]> {
    v.try_into().map_err(|_| Error::Store(what))
}

fn device_head(tx: &mut Tx<'_, '_>, device_id: &str) -> Result<DeviceHead> {
    struct Row {
        key: Vec<u8>,
        revoked: bool,
        seq: i64,
        hash: Option<Vec<u8>>,
        clock_mark: Option<i64>,
    }
    let row = tx
        .opt(
            "SELECT public_key, revoked_at IS NOT NULL AS revoked, head_seq, head_hash, clock_mark
             FROM devices WHERE device_id = $1",
            ps![device_id],
            |r| {
                Ok(Row {
                    key: r.get("public_key")?,
                    revoked: r.get("revoked")?,
                    seq: r.get("head_seq")?,
                    hash: r.get("head_hash")?,
                    clock_mark: r.get("clock_mark")?,
                })
            },
        )?
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
        key: PublicKey(bytes32(row.key, "a device key has the wrong length")?),
        cursor: ChainCursor::at(seq, hash),
        clock_mark: row.clock_mark,
    })
}

/// The event held at `seq`, as stored.
fn held_event(tx: &mut Tx<'_, '_>, device_id: &str, seq: u64) -> Result<Option<Event>> {
    let what = "a stored event has a field of the wrong length";
    tx.opt(
        "SELECT prev_hash, hash, body, signature FROM events WHERE device_id = $1 AND seq = $2",
        ps![device_id, seq],
        |r| {
            Ok(Event {
                seq,
                prev_hash: bytes32(r.get("prev_hash")?, what)?,
                hash: bytes32(r.get("hash")?, what)?,
                body: r.get("body")?,
                signature: r
                    .get::<Vec<u8>>("signature")?
                    .try_into()
                    .map_err(|_| Error::Store(what))?,
            })
        },
    )
}

/// Check and store the batch's events; returns how many were new.
fn ingest_events(
    office: &Office,
    tx: &mut Tx<'_, '_>,
    device_id: &str,
    mut head: DeviceHead,
    checked: &[(&Event, handover_core::Result<Verified<'_>>)],
    now: DateTime<Utc>,
) -> std::result::Result<u64, Refusal> {
    let refuse = |seq: u64, why: String| {
        Refusal::Other(Error::BadEvent {
            device: device_id.to_owned(),
            seq,
            why,
        })
    };
    let mut new = 0;
    for (event, verified) in checked {
        let event = *event;
        if event.seq <= head.cursor.seq() {
            let held = held_event(tx, device_id, event.seq)?
                .ok_or(Error::Store("an event below the head is missing"))?;
            if held == *event {
                continue;
            }
            let mut before = match event.seq {
                1 => ChainCursor::genesis(),
                s => {
                    let prev = held_event(tx, device_id, s - 1)?
                        .ok_or(Error::Store("an event below the head is missing"))?;
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
        let suspect = clock_suspicion(body, head.clock_mark, now);
        head.clock_mark = Some(
            head.clock_mark
                .map_or(body.counter, |m| m.max(body.counter)),
        );
        let verdict = judge(tx, &office.code_key, device_id, body, suspect)?;
        store_event(tx, device_id, event, body, verdict, suspect, now)?;
        if verdict == Verdict::Verified {
            confirm(office, tx, device_id, event.seq, body, now)?;
        }
        new += 1;
    }
    tx.exec(
        "UPDATE devices SET head_seq = $2, head_hash = $3, clock_mark = $4 WHERE device_id = $1",
        ps![
            device_id,
            head.cursor.seq(),
            &head.cursor.hash(),
            head.clock_mark
        ],
    )?;
    Ok(new)
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

/// What the office knows of an item of a manifest issued to this device.
struct Issued {
    programme: Programme,
    valid_from: DateTime<Utc>,
    valid_until: DateTime<Utc>,
    details: ItemDetails,
}

fn issued_item(
    tx: &mut Tx<'_, '_>,
    device_id: &str,
    manifest_id: &str,
    reference: &str,
) -> Result<Option<Issued>> {
    tx.opt(
        "SELECT i.programme AS programme, m.valid_from AS valid_from,
                m.valid_until AS valid_until, i.details AS details
         FROM items i JOIN manifests m ON m.manifest_id = i.manifest_id
         WHERE i.manifest_id = $1 AND i.reference = $2 AND m.device_id = $3",
        ps![manifest_id, reference, device_id],
        |r| {
            Ok(Issued {
                programme: r.get::<String>("programme")?.parse()?,
                valid_from: from_ms(r.get("valid_from")?),
                valid_until: from_ms(r.get("valid_until")?),
                details: serde_json::from_str(&r.get::<String>("details")?)
                    .map_err(|_| Error::Store("stored item details are unreadable"))?,
            })
        },
    )
}

/// The policy and key a code version was issued under.
fn code_version(
    tx: &mut Tx<'_, '_>,
    programme: Programme,
    reference: &str,
    version: u32,
) -> Result<Option<(Policy, String)>> {
    tx.opt(
        "SELECT policy, code_key_id FROM codes
         WHERE programme = $1 AND reference = $2 AND code_version = $3",
        ps![programme.as_str(), reference, version],
        |r| {
            let policy = serde_json::from_str(&r.get::<String>("policy")?)
                .map_err(|_| Error::Store("a stored policy is unreadable"))?;
            Ok((policy, r.get("code_key_id")?))
        },
    )
}

fn judge(
    tx: &mut Tx<'_, '_>,
    code_key: &handover_core::codes::CodeKey,
    device_id: &str,
    body: &EventBody,
    clock_suspect: bool,
) -> Result<Verdict> {
    match &body.kind {
        EventKind::HandedOver {
            manifest_id,
            reference,
            code_version: version,
            code,
            ..
        } => {
            let Some(item) = issued_item(tx, device_id, manifest_id, reference)? else {
                return Ok(Verdict::OutsideValidity);
            };
            let Some((policy, key_id)) = code_version(tx, item.programme, reference, *version)?
            else {
                return Ok(Verdict::CodeMismatch);
            };
            if key_id != code_key.id() {
                return Ok(Verdict::CodeMismatch);
            }
            let right = derive_code(code_key, item.programme, reference, *version, policy.digits)?;
            if !constant_time_eq(right.as_str().as_bytes(), code.as_str().as_bytes()) {
                return Ok(Verdict::CodeMismatch);
            }
            let tolerance = clock_tolerance();
            if body.time < earlier(item.valid_from, tolerance)
                || body.time > later(item.valid_until, tolerance)
            {
                return Ok(Verdict::OutsideValidity);
            }
            let latest: Option<i64> = tx.one(
                "SELECT MAX(code_version) AS latest FROM codes WHERE programme = $1 AND reference = $2",
                ps![item.programme.as_str(), reference],
                |r| r.get("latest"),
            )?;
            if latest.is_some_and(|l| l > i64::from(*version)) {
                return Ok(Verdict::Superseded);
            }
            if tx.exists(
                "SELECT 1 FROM events WHERE device_id = $1 AND reference = $2
                 AND code_version = $3 AND kind = 'locked'",
                ps![device_id, reference, *version],
            )? {
                return Ok(Verdict::AfterLock);
            }
            if tx.exists(
                "SELECT 1 FROM events e JOIN items i
                     ON i.manifest_id = e.manifest_id AND i.reference = e.reference
                 WHERE e.reference = $1 AND i.programme = $2 AND e.kind = 'handed_over'
                 AND e.verdict = 'verified'",
                ps![reference, item.programme.as_str()],
            )? {
                return Ok(Verdict::Duplicate);
            }
            if clock_suspect {
                return Ok(Verdict::ClockSuspect);
            }
            Ok(Verdict::Verified)
        }
        EventKind::AttemptFailed {
            manifest_id,
            reference,
            code_version: version,
            ..
        } => {
            let Some(item) = issued_item(tx, device_id, manifest_id, reference)? else {
                return Ok(Verdict::Recorded);
            };
            let Some((policy, _)) = code_version(tx, item.programme, reference, *version)? else {
                return Ok(Verdict::Recorded);
            };
            let before = tx.int(
                "SELECT COUNT(*) AS n FROM events WHERE device_id = $1 AND reference = $2
                 AND code_version = $3 AND kind = 'attempt_failed'",
                ps![device_id, reference, *version],
            )?;
            Ok(if before >= i64::from(policy.max_attempts) {
                Verdict::AttemptsExceeded
            } else {
                Verdict::Recorded
            })
        }
        EventKind::ManifestImported {
            manifest_id,
            revision,
            ..
        } => Ok(
            if tx.exists(
                "SELECT 1 FROM events WHERE device_id = $1 AND manifest_id = $2
                 AND revision = $3 AND kind = 'manifest_imported'",
                ps![device_id, manifest_id, *revision],
            )? {
                Verdict::Reimported
            } else {
                Verdict::Recorded
            },
        ),
        EventKind::Payment {
            manifest_id,
            reference,
            amount_paise,
            method,
        } => {
            let cod = issued_item(tx, device_id, manifest_id, reference)?
                .and_then(|i| i.details.cod().map(|c| c.amount_paise));
            let utr_ok = match method {
                PaymentMethod::Cash => true,
                PaymentMethod::Upi { txn_ref } => handover_core::upi::validate_utr(txn_ref).is_ok(),
            };
            let paid_before = tx.exists(
                "SELECT 1 FROM events WHERE reference = $1 AND kind = 'payment'
                 AND verdict = 'recorded'",
                ps![reference],
            )?;
            Ok(if cod == Some(*amount_paise) && utr_ok && !paid_before {
                Verdict::Recorded
            } else {
                Verdict::PaymentMismatch
            })
        }
        _ => Ok(Verdict::Recorded),
    }
}

fn store_event(
    tx: &mut Tx<'_, '_>,
    device_id: &str,
    e: &Event,
    body: &EventBody,
    verdict: Verdict,
    clock_suspect: bool,
    now: DateTime<Utc>,
) -> Result<()> {
    let (manifest_id, reference) = body.kind.subject();
    let c = Columns::of(body);
    tx.exec(
        "INSERT INTO events (device_id, seq, prev_hash, hash, body, signature, kind, manifest_id,
             reference, detail, verdict, device_time, received_at, code_version, revision,
             amount_paise, clock_suspect)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        ps![
            device_id,
            e.seq,
            &e.prev_hash,
            &e.hash,
            &e.body,
            &e.signature,
            body.kind.type_name(),
            manifest_id,
            reference,
            &c.detail,
            verdict.as_str(),
            ms(body.time),
            ms(now),
            c.code_version,
            c.revision,
            c.amount_paise,
            clock_suspect
        ],
    )?;
    Ok(())
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

/// The ack of a batch: through its last seq (or the head, for an empty
/// batch), with the stored verdict of each of its events.
fn ack_for(
    tx: &mut Tx<'_, '_>,
    device_id: &str,
    events: &[Event],
) -> Result<(Ack, BTreeMap<String, u64>)> {
    let head = tx.int(
        "SELECT head_seq AS n FROM devices WHERE device_id = $1",
        ps![device_id],
    )?;
    let through = events.last().map_or(head.max(0) as u64, |e| e.seq);
    let through_hash = if through == 0 {
        GENESIS
    } else {
        held_event(tx, device_id, through)?
            .ok_or(Error::Store("the acknowledged event is missing"))?
            .hash
    };
    let mut verdicts = Vec::with_capacity(events.len());
    let mut counts = BTreeMap::new();
    for e in events {
        let v: String = tx.one(
            "SELECT verdict FROM events WHERE device_id = $1 AND seq = $2",
            ps![device_id, e.seq],
            |r| r.get("verdict"),
        )?;
        let verdict = Verdict::parse(&v)?;
        *counts.entry(verdict.as_str().to_owned()).or_insert(0) += 1;
        verdicts.push(EventVerdict {
            seq: e.seq,
            verdict,
        });
    }
    Ok((
        Ack {
            format: ACK_FORMAT.into(),
            device_id: device_id.to_owned(),
            through_seq: through,
            head_hash: through_hash,
            verdicts,
        },
        counts,
    ))
}

/// The confirmation SMS, and for vaccination the certificate record and its
/// notice, of a verified handover: queued, once per event.
fn confirm(
    office: &Office,
    tx: &mut Tx<'_, '_>,
    device_id: &str,
    seq: u64,
    body: &EventBody,
    now: DateTime<Utc>,
) -> Result<()> {
    let EventKind::HandedOver {
        manifest_id,
        reference,
        ..
    } = &body.kind
    else {
        return Ok(());
    };
    let (mobile, details, language): (String, String, String) = tx.one(
        "SELECT mobile, details, language FROM items WHERE manifest_id = $1 AND reference = $2",
        ps![manifest_id, reference],
        |r| Ok((r.get("mobile")?, r.get("details")?, r.get("language")?)),
    )?;
    let details: ItemDetails = serde_json::from_str(&details)
        .map_err(|_| Error::Store("stored item details are unreadable"))?;
    let language: crate::sms::Language = language.parse()?;
    let programme = details.programme();
    let mut purposes = vec![crate::sms::Purpose::Confirmation];
    if let ItemDetails::Vaccination(v) = &details {
        purposes.push(crate::sms::Purpose::Certificate);
        let cert = serde_json::json!({
            "beneficiary_ref": v.beneficiary_ref,
            "name": v.name,
            "year_of_birth": v.year_of_birth,
            "vaccine": v.vaccine,
            "dose": v.dose,
            "appointment": reference,
            "vaccinated_at": body.time,
            "device_id": device_id,
            "event_seq": seq,
        });
        tx.exec(
            "INSERT INTO confirmations (device_id, seq, channel, reference, recipient, message, created_at)
             VALUES ($1, $2, 'certificate', $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            ps![device_id, seq, reference.as_str(), &v.beneficiary_ref, &cert.to_string(), ms(now)],
        )?;
    }
    for purpose in purposes {
        let text = office
            .confirmation_text(programme, purpose, language, reference, body.time, &details)?;
        crate::sms::queue(
            tx,
            &crate::sms::Queued {
                purpose,
                programme,
                reference,
                code_version: None,
                event: Some((device_id, seq)),
                mobile: &mobile,
                language,
                segments: crate::sms::segments::count(&text).1,
            },
            now,
        )?;
    }
    Ok(())
}
