//! The rows ingest reads and writes: the events held already, the new
//! events with their verdicts, and the confirmations of verified handovers.
//! Writes are multi-row statements, a few per batch.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use handover_core::event::{Event, EventBody, EventKind};
use handover_core::manifest::ItemDetails;
use handover_core::sync::Verdict;

use super::bytes32;
use super::judge::Known;
use crate::error::{Error, Result};
use crate::sms::{Purpose, Queued};
use crate::store::schema::Columns;
use crate::store::sql::{Row, P};
use crate::store::{ps, Tx};
use crate::{ms, Office};

const WHAT: &str = "a stored event has a field of the wrong length";

fn event_of(seq: u64, r: &Row<'_, '_>) -> Result<Event> {
    Ok(Event {
        seq,
        prev_hash: bytes32(r.get("prev_hash")?, WHAT)?,
        hash: bytes32(r.get("hash")?, WHAT)?,
        body: r.get("body")?,
        signature: r
            .get::<Vec<u8>>("signature")?
            .try_into()
            .map_err(|_| Error::Store(WHAT))?,
    })
}

/// The device's events held at seqs `lo..=hi`, with their verdicts.
pub(super) fn held_events(
    tx: &mut Tx<'_, '_>,
    device_id: &str,
    lo: u64,
    hi: u64,
) -> Result<BTreeMap<u64, (Event, Verdict)>> {
    let rows = tx.all(
        "SELECT seq, prev_hash, hash, body, signature, verdict FROM events
         WHERE device_id = $1 AND seq >= $2 AND seq <= $3",
        ps![device_id, lo, hi],
        |r| {
            let seq = u64::try_from(r.get::<i64>("seq")?)
                .map_err(|_| Error::Store("a stored seq is negative"))?;
            let verdict = Verdict::parse(&r.get::<String>("verdict")?)?;
            Ok((seq, (event_of(seq, r)?, verdict)))
        },
    )?;
    Ok(rows.into_iter().collect())
}

/// The event held at `seq`, as stored.
pub(super) fn held_event(tx: &mut Tx<'_, '_>, device_id: &str, seq: u64) -> Result<Option<Event>> {
    tx.opt(
        "SELECT prev_hash, hash, body, signature FROM events WHERE device_id = $1 AND seq = $2",
        ps![device_id, seq],
        |r| event_of(seq, r),
    )
}

/// A new event with its verdict.
pub(super) struct Judged<'e> {
    pub event: &'e Event,
    pub body: &'e EventBody,
    pub verdict: Verdict,
    pub clock_suspect: bool,
    /// Where it happened, against the address (doorstep events).
    pub presence: Option<(crate::presence::Finding, Option<i64>)>,
}

/// Store the new events, with `rider` (a write of the caller's: see
/// [`Tx::insert_rows_with`]) in the same round trip on PostgreSQL.
pub(super) fn store_events(
    tx: &mut Tx<'_, '_>,
    device_id: &str,
    events: &[Judged<'_>],
    rider: (&str, &[P<'_>]),
    now: DateTime<Utc>,
) -> Result<()> {
    let columns: Vec<Columns> = events.iter().map(|j| Columns::of(j.body)).collect();
    let received = ms(now);
    let rows: Vec<Vec<P<'_>>> = events
        .iter()
        .zip(&columns)
        .map(|(j, c)| {
            let (manifest_id, reference) = j.body.kind.subject();
            vec![
                P::from(device_id),
                P::from(j.event.seq),
                P::from(&j.event.prev_hash),
                P::from(&j.event.hash),
                P::from(&j.event.body),
                P::from(&j.event.signature),
                P::from(j.body.kind.type_name()),
                P::from(manifest_id),
                P::from(reference),
                P::from(&c.detail),
                P::from(j.verdict.as_str()),
                P::from(ms(j.body.time)),
                P::from(received),
                P::from(c.code_version),
                P::from(c.revision),
                P::from(c.amount_paise),
                P::from(j.clock_suspect),
                P::from(j.presence.map(|(f, _)| f.as_str())),
                P::from(j.presence.and_then(|(_, d)| d)),
            ]
        })
        .collect();
    tx.insert_rows_with(
        rider,
        "INSERT INTO events (device_id, seq, prev_hash, hash, body, signature, kind, manifest_id,
             reference, detail, verdict, device_time, received_at, code_version, revision,
             amount_paise, clock_suspect, presence, distance_m)",
        19,
        "",
        &rows,
    )?;
    Ok(())
}

/// The confirmation SMS of each verified handover, and for vaccination the
/// certificate record and its notice: queued, once per event.
pub(super) fn confirm(
    office: &Office,
    tx: &mut Tx<'_, '_>,
    device_id: &str,
    known: &Known,
    events: &[Judged<'_>],
    now: DateTime<Utc>,
) -> Result<()> {
    struct Message<'a> {
        purpose: Purpose,
        item: &'a super::judge::Item,
        reference: &'a str,
        seq: u64,
        segments: usize,
    }
    let mut messages: Vec<Message<'_>> = Vec::new();
    let mut certificates: Vec<(u64, &str, &str, String)> = Vec::new();
    for j in events.iter().filter(|j| j.verdict == Verdict::Verified) {
        let EventKind::HandedOver {
            manifest_id,
            reference,
            ..
        } = &j.body.kind
        else {
            continue;
        };
        let item = known
            .item(manifest_id, reference)
            .ok_or(Error::Store("a verified item is missing"))?;
        let mut purposes = vec![Purpose::Confirmation];
        if let ItemDetails::Vaccination(v) = &item.details {
            purposes.push(Purpose::Certificate);
            let cert = serde_json::json!({
                "beneficiary_ref": v.beneficiary_ref,
                "name": v.name,
                "year_of_birth": v.year_of_birth,
                "vaccine": v.vaccine,
                "dose": v.dose,
                "appointment": reference,
                "vaccinated_at": j.body.time,
                "device_id": device_id,
                "event_seq": j.event.seq,
            });
            certificates.push((j.event.seq, reference, &v.beneficiary_ref, cert.to_string()));
        }
        for purpose in purposes {
            let text = office.confirmation_text(
                item.programme,
                purpose,
                item.language,
                reference,
                j.body.time,
                &item.details,
            )?;
            messages.push(Message {
                purpose,
                item,
                reference,
                seq: j.event.seq,
                segments: crate::sms::segments::count(&text).1,
            });
        }
    }
    let created = ms(now);
    let certificate_rows: Vec<Vec<P<'_>>> = certificates
        .iter()
        .map(|(seq, reference, beneficiary, cert)| {
            vec![
                P::from(device_id),
                P::from(*seq),
                P::from("certificate"),
                P::from(*reference),
                P::from(*beneficiary),
                P::from(cert.as_str()),
                P::from(created),
            ]
        })
        .collect();
    tx.insert_rows(
        "INSERT INTO confirmations (device_id, seq, channel, reference, recipient, message, created_at)",
        7,
        "ON CONFLICT DO NOTHING",
        &certificate_rows,
    )?;
    let queued: Vec<Queued<'_>> = messages
        .iter()
        .map(|m| Queued {
            purpose: m.purpose,
            programme: m.item.programme,
            reference: m.reference,
            code_version: None,
            event: Some((device_id, m.seq)),
            mobile: &m.item.mobile,
            language: m.item.language,
            segments: m.segments,
        })
        .collect();
    crate::sms::queue_all(tx, &queued, now)?;
    Ok(())
}

/// The confirmation SMS of resent events (`seqs`: events this office had
/// acknowledged before it lost them) were queued the first time, and most
/// likely sent: recorded `cancelled` with the reason, not sent again. An
/// operator who knows otherwise can send them again.
pub(super) fn mark_confirmed_before(
    tx: &mut Tx<'_, '_>,
    device_id: &str,
    seqs: &[u64],
    now: DateTime<Utc>,
) -> Result<()> {
    if seqs.is_empty() {
        return Ok(());
    }
    let keys: Vec<P<'_>> = seqs.iter().map(|s| P::from(*s)).collect();
    tx.all_in(
        "UPDATE sms_outbox SET status = 'cancelled', reason = $2, updated_at = $3
         WHERE event_device = $1 AND status = 'queued' AND event_seq IN ({keys})
         RETURNING id",
        ps![device_id, RESENT_REASON, ms(now)],
        &keys,
        |r| r.get::<i64>("id"),
    )?;
    Ok(())
}

/// Why a resent event's confirmation was not queued again.
pub(crate) const RESENT_REASON: &str =
    "queued when the event first arrived; the office lost it and the device resent it";

/// Record that the office lost `from..=through` of `device_id`'s chain and
/// the device could no longer resend it (a checkpoint took the chain up).
pub(super) fn record_gap(
    tx: &mut Tx<'_, '_>,
    device_id: &str,
    from: u64,
    through: u64,
    now: DateTime<Utc>,
) -> Result<()> {
    tx.exec(
        "INSERT INTO chain_gaps (device_id, from_seq, through_seq, recorded_at)
         VALUES ($1, $2, $3, $4) ON CONFLICT (device_id, from_seq) DO NOTHING",
        ps![device_id, from as i64, through as i64, ms(now)],
    )?;
    Ok(())
}
