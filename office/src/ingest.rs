//! Ingesting a device's batch: checks, verdicts, confirmations and the ack.
//!
//! In order: the batch's structure; the device is enrolled, not revoked, and
//! the batch's key is the enrolled key; each event either matches the one
//! held at its seq (a replay: nothing changes) or continues the chain from
//! the head held, with a valid signature. A different event at a held seq is
//! a **fork**: the batch is refused and the device flagged; so is a bad
//! signature or a broken chain. All new events are stored in one transaction.
//!
//! Every `handed_over` code is re-derived from the code key and compared:
//!
//! | verdict | when |
//! |---|---|
//! | `code_mismatch` | the code is not the item's code (an insider's brute-forced candidate) |
//! | `outside_validity` | the item was never issued to this device, or the device time is outside the window |
//! | `duplicate` | the item was already confirmed by an earlier event |
//! | `clock_suspect` | recorded after a clock anomaly, before the next ack |
//! | `verified` | none of the above |
//!
//! Other events are `recorded`. Only `verified` handovers produce a
//! confirmation SMS (and, for vaccination, a certificate record).
//!
//! The ack acknowledges through the batch's last seq with that event's hash,
//! and carries the stored verdict of each event of the batch, so ingesting
//! the same batch again returns byte-for-byte the same ack.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use handover_core::codes::{derive_code, Programme};
use handover_core::event::{Event, EventBody, EventKind, GENESIS};
use handover_core::manifest::ItemDetails;
use handover_core::sync::{Ack, Batch, EventVerdict, Verdict, ACK_FORMAT};
use rusqlite::{params, OptionalExtension, Transaction, TransactionBehavior};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::{from_ms, ms, Office};

/// Clock tolerance applied to validity windows at ingest.
pub const TOLERANCE_MINUTES: i64 = 5;

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

impl Office {
    /// Ingest a batch (see the module docs).
    pub fn ingest(&mut self, batch_bytes: &[u8], now: DateTime<Utc>) -> Result<Ingested> {
        let batch = Batch::from_bytes(batch_bytes)?;
        let device_id = batch.device_id.clone();
        let (key, revoked, head_seq, head_hash): (Vec<u8>, bool, i64, Option<Vec<u8>>) = self
            .conn
            .query_row(
                "SELECT public_key, revoked_at IS NOT NULL, head_seq, head_hash FROM devices WHERE device_id = ?1",
                [&device_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?
            .ok_or_else(|| Error::UnknownDevice(device_id.clone()))?;
        if revoked {
            return Err(Error::DeviceRevoked(device_id));
        }
        if key != batch.device_key.0 {
            return Err(Error::UnknownDevice(device_id));
        }
        let mut head_seq = head_seq as u64;
        let mut head_hash: [u8; 32] = head_hash.and_then(|h| h.try_into().ok()).unwrap_or(GENESIS);

        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut new = 0;
        let mut failure = None;
        for event in &batch.events {
            if event.seq <= head_seq {
                let held: Option<Vec<u8>> = tx
                    .query_row(
                        "SELECT hash FROM events WHERE device_id = ?1 AND seq = ?2",
                        params![device_id, event.seq as i64],
                        |r| r.get(0),
                    )
                    .optional()?;
                if held.as_deref() != Some(&event.hash[..]) {
                    failure = Some((
                        "fork",
                        Error::Fork {
                            device: device_id.clone(),
                            seq: event.seq,
                        },
                    ));
                    break;
                }
                continue;
            }
            if event.seq != head_seq + 1 {
                return Err(Error::Gap {
                    device: device_id,
                    first: event.seq,
                    head: head_seq,
                });
            }
            let checked = if event.prev_hash != head_hash {
                Err(handover_core::Error::ChainBroken(
                    "does not continue the chain held",
                ))
            } else {
                event.verify(&batch.device_key)
            };
            let body = match checked {
                Ok(b) => b,
                Err(e) => {
                    let err = Error::Tampered {
                        device: device_id.clone(),
                        seq: event.seq,
                        why: e.to_string(),
                    };
                    failure = Some(("tampered", err));
                    break;
                }
            };
            let verdict = verdict_for(&tx, &self.code_key, &device_id, &body)?;
            store_event(&tx, &device_id, event, &body, verdict, now)?;
            if verdict == Verdict::Verified {
                confirm(&tx, &device_id, event.seq, &body, now)?;
            }
            head_seq = event.seq;
            head_hash = event.hash;
            new += 1;
        }
        if let Some((reason, err)) = failure {
            drop(tx);
            self.conn.execute(
                "UPDATE devices SET flagged = ?2 WHERE device_id = ?1",
                params![device_id, reason],
            )?;
            return Err(err);
        }
        tx.execute(
            "UPDATE devices SET head_seq = ?2, head_hash = ?3 WHERE device_id = ?1",
            params![device_id, head_seq as i64, &head_hash[..]],
        )?;

        // The ack: through the batch's last seq (or the head for an empty batch).
        let through = batch.events.last().map_or(head_seq, |e| e.seq);
        let through_hash: [u8; 32] = if through == 0 {
            GENESIS
        } else {
            let h: Vec<u8> = tx.query_row(
                "SELECT hash FROM events WHERE device_id = ?1 AND seq = ?2",
                params![device_id, through as i64],
                |r| r.get(0),
            )?;
            h.try_into().unwrap_or(GENESIS)
        };
        let mut verdicts = Vec::with_capacity(batch.events.len());
        let mut counts = BTreeMap::new();
        for e in &batch.events {
            let v: String = tx.query_row(
                "SELECT verdict FROM events WHERE device_id = ?1 AND seq = ?2",
                params![device_id, e.seq as i64],
                |r| r.get(0),
            )?;
            let verdict = Verdict::parse(&v)?;
            *counts.entry(verdict.as_str().to_owned()).or_insert(0) += 1;
            verdicts.push(EventVerdict {
                seq: e.seq,
                verdict,
            });
        }
        tx.commit()?;
        let ack = Ack {
            format: ACK_FORMAT.into(),
            device_id: device_id.clone(),
            through_seq: through,
            head_hash: through_hash,
            verdicts,
        }
        .seal(&self.signing)?;
        let received = batch.events.len() as u64;
        Ok(Ingested {
            ack,
            summary: IngestSummary {
                device_id,
                received,
                new,
                already_held: received - new,
                through_seq: through,
                verdicts: counts,
            },
        })
    }
}

fn verdict_for(
    tx: &Transaction<'_>,
    code_key: &handover_core::codes::CodeKey,
    device_id: &str,
    body: &EventBody,
) -> Result<Verdict> {
    let EventKind::HandedOver {
        manifest_id,
        reference,
        code_version,
        code,
        ..
    } = &body.kind
    else {
        return Ok(Verdict::Recorded);
    };
    let issued: Option<(String, i64, i64, i64, i64, String)> = tx
        .query_row(
            "SELECT i.programme, i.code_version, i.digits, m.valid_from, m.valid_until, m.code_key_id
             FROM items i JOIN manifests m ON m.manifest_id = i.manifest_id
             WHERE i.manifest_id = ?1 AND i.reference = ?2 AND m.device_id = ?3",
            params![manifest_id, reference, device_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .optional()?;
    let Some((programme, issued_version, digits, from, until, key_id)) = issued else {
        return Ok(Verdict::OutsideValidity);
    };
    if key_id != code_key.id() {
        return Ok(Verdict::CodeMismatch);
    }
    let programme: Programme = programme.parse()?;
    let right = if i64::from(*code_version) <= issued_version {
        derive_code(code_key, programme, reference, *code_version, digits as u8).ok()
    } else {
        None
    };
    let matches = right.is_some_and(|r| {
        let (a, b) = (r.as_str().as_bytes(), code.as_str().as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    });
    if !matches {
        return Ok(Verdict::CodeMismatch);
    }
    let tolerance = Duration::minutes(TOLERANCE_MINUTES);
    if body.time < from_ms(from) - tolerance || body.time > from_ms(until) + tolerance {
        return Ok(Verdict::OutsideValidity);
    }
    let confirmed: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM events e JOIN items i
             ON i.manifest_id = e.manifest_id AND i.reference = e.reference
             WHERE e.reference = ?1 AND i.programme = ?2 AND e.kind = 'handed_over' AND e.verdict = 'verified')",
        params![reference, programme.as_str()],
        |r| r.get(0),
    )?;
    if confirmed {
        return Ok(Verdict::Duplicate);
    }
    if body.clock_suspect {
        return Ok(Verdict::ClockSuspect);
    }
    Ok(Verdict::Verified)
}

fn store_event(
    tx: &Transaction<'_>,
    device_id: &str,
    e: &Event,
    body: &EventBody,
    verdict: Verdict,
    now: DateTime<Utc>,
) -> Result<()> {
    let (manifest_id, reference) = body.kind.subject();
    let detail = match &body.kind {
        EventKind::Exception { reason, .. } => Some(reason.as_str().to_owned()),
        EventKind::Payment {
            amount_paise,
            method,
            ..
        } => {
            let how = match method {
                handover_core::event::PaymentMethod::Cash => "cash",
                handover_core::event::PaymentMethod::Upi { .. } => "upi",
            };
            Some(format!("{how}:{amount_paise}"))
        }
        _ => None,
    };
    tx.execute(
        "INSERT INTO events (device_id, seq, prev_hash, hash, body, signature, kind, manifest_id,
             reference, detail, verdict, device_time, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            device_id,
            e.seq as i64,
            &e.prev_hash[..],
            &e.hash[..],
            e.body,
            &e.signature[..],
            body.kind.type_name(),
            manifest_id,
            reference,
            detail,
            verdict.as_str(),
            ms(body.time),
            ms(now)
        ],
    )?;
    Ok(())
}

/// The confirmation SMS, and for vaccination the certificate record, of a
/// verified handover.
fn confirm(
    tx: &Transaction<'_>,
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
    let (mobile, details): (String, String) = tx.query_row(
        "SELECT mobile, details FROM items WHERE manifest_id = ?1 AND reference = ?2",
        params![manifest_id, reference],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let details: ItemDetails =
        serde_json::from_str(&details).map_err(|_| handover_core::Error::Malformed {
            what: "item details",
            why: "stored details unreadable",
        })?;
    // India Standard Time is UTC+05:30 all year.
    let when = (body.time + Duration::minutes(330)).format("%d-%m-%Y %H:%M IST");
    let mut rows = vec![];
    match &details {
        ItemDetails::Post(_) => rows.push((
            "sms",
            mobile,
            format!("India Post: article {reference} was delivered to you on {when}. If you did not receive it, call 1800 266 6868."),
        )),
        ItemDetails::Vaccination(v) => {
            rows.push((
                "sms",
                mobile,
                format!("Vaccination: dose {} of {} for appointment {reference} was recorded on {when}. Your certificate is ready.", v.dose, v.vaccine),
            ));
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
            rows.push(("certificate", v.beneficiary_ref.clone(), cert.to_string()));
        }
    }
    for (channel, recipient, message) in rows {
        tx.execute(
            "INSERT INTO confirmations (device_id, seq, channel, reference, recipient, message, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
            params![device_id, seq as i64, channel, reference, recipient, message, ms(now)],
        )?;
    }
    Ok(())
}
