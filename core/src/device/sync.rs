//! Sync from the device's side: exporting batches, applying acks, purging.
//!
//! Export is read-only: exporting twice gives the same events until an ack
//! moves the acknowledged mark. An ack is applied only after its signature
//! checks against a pinned office key, it names this device, and its head
//! hash is the hash this device wrote at that seq. An ack ends clock
//! suspicion only if it covers the latest clock anomaly: an ack signed
//! before the anomaly says nothing about it.
//!
//! Purge is itself an event. It removes acknowledged events older than the
//! retention period, and reduces manifests whose window closed before it to
//! **tombstones**: the manifest's revision and the hash of its bytes, each
//! item's code version, verifier, final state and attempts, without the
//! sealed bytes and the personal details. Importing the manifest again, or
//! an older revision of it, is then refused like any stale revision, and a
//! newer revision finds every item as it was left. Purge refuses a clock
//! behind the device's high-water mark.

use chrono::{DateTime, Duration, Utc};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::outbox::{self, ACKED_THROUGH, CLOCK_ANOMALY_SEQ, CLOCK_SUSPECT};
use super::{trusted_keys, Device};
use crate::error::{Error, Result};
use crate::event::EventKind;
use crate::sync::{Ack, Batch, Verdict, BATCH_FORMAT};

/// What applying an ack did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AckSummary {
    /// Acknowledged through this seq now.
    pub through_seq: u64,
    /// Events newly marked acknowledged by this ack.
    pub newly_acked: u64,
    /// Handovers the office verified.
    pub verified: u64,
    /// Events the office flagged (anything but verified or recorded).
    pub flagged: u64,
}

/// What a purge removed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PurgeSummary {
    /// Events removed.
    pub events: u64,
    /// Manifests reduced to tombstones.
    pub manifests: u64,
    /// Seq of the `purged` event, when anything was purged.
    pub seq: Option<u64>,
}

/// Where the device stands: what it holds and what the office has
/// acknowledged (`handover device status --json`; fields are only ever
/// added).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeviceStatus {
    /// This device's id.
    pub device_id: String,
    /// Pinned office signing keys (hex).
    pub office_keys: Vec<String>,
    /// Manifests held, newest window first.
    pub manifests: Vec<HeldManifest>,
    /// Last seq written.
    pub head_seq: u64,
    /// The office holds every event up to this seq.
    pub acknowledged_through: u64,
    /// Events not yet acknowledged.
    pub pending: u64,
    /// When the last ack was applied (the last sync that reached the office
    /// with events), if ever.
    pub last_ack_at: Option<DateTime<Utc>>,
}

/// A manifest the device holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HeldManifest {
    /// Manifest id.
    pub manifest_id: String,
    /// Revision held.
    pub revision: u32,
    /// Programme.
    pub programme: String,
    /// Items in it (withdrawn ones included).
    pub items: u64,
    /// Start of its window.
    pub valid_from: DateTime<Utc>,
    /// End of its window.
    pub valid_until: DateTime<Utc>,
}

impl Device {
    /// The device's acknowledged head: the office holds every event up to it.
    pub fn acknowledged_through(&self) -> Result<u64> {
        Ok(outbox::meta_i64(&self.lock(), ACKED_THROUGH)?.unwrap_or(0) as u64)
    }

    /// Where the device stands (see [`DeviceStatus`]).
    pub fn status(&self) -> Result<DeviceStatus> {
        let office_keys = self.office_keys()?.iter().map(|k| k.to_string()).collect();
        let pending = self.pending_count()?;
        let acknowledged_through = self.acknowledged_through()?;
        let conn = self.lock();
        let time = |ms: i64| DateTime::from_timestamp_millis(ms).unwrap_or_default();
        let mut stmt = conn.prepare(
            "SELECT m.manifest_id, m.revision, m.programme, m.valid_from, m.valid_until,
                    (SELECT COUNT(*) FROM items i WHERE i.manifest_id = m.manifest_id) AS items
             FROM manifests m ORDER BY m.valid_until DESC, m.manifest_id",
        )?;
        let manifests = stmt
            .query_map([], |r| {
                Ok(HeldManifest {
                    manifest_id: r.get("manifest_id")?,
                    revision: r.get("revision")?,
                    programme: r.get("programme")?,
                    items: r.get::<_, i64>("items")? as u64,
                    valid_from: time(r.get("valid_from")?),
                    valid_until: time(r.get("valid_until")?),
                })
            })?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let last_ack: Option<i64> =
            conn.query_row("SELECT MAX(applied_at) FROM acks", [], |r| r.get(0))?;
        Ok(DeviceStatus {
            device_id: self.device_id.clone(),
            office_keys,
            manifests,
            head_seq: outbox::head(&conn)?.seq(),
            acknowledged_through,
            pending,
            last_ack_at: last_ack.map(time),
        })
    }

    /// The next batch: up to `max` unacknowledged events, oldest first.
    pub fn export_batch(&self, max: u64) -> Result<Batch> {
        batch(&self.lock(), &self.device_id, self.key.public_key(), max)
    }

    /// A **resend** for an office that lost events it had acknowledged
    /// (it answered `gap` with `need_seq` = `from`): up to `max` events from
    /// `from`, acknowledged or not, with the acks the office sealed for them
    /// ([`Batch::acks`]). The batch ends at the last ack it carries when it
    /// can, so that every acknowledged event in it is covered by its ack.
    ///
    /// When the device no longer holds the event at `from` (purged after
    /// its retention), the batch starts after the first ack boundary at or
    /// after the purge and carries that ack first, as a **checkpoint**: the
    /// office, which sealed it, takes the chain up from there and records
    /// the events between as lost. Refused (`NotAllowed`) when the device
    /// holds no event after such a boundary.
    pub fn export_resend(&self, from: u64, max: u64) -> Result<Batch> {
        resend(
            &self.lock(),
            &self.device_id,
            self.key.public_key(),
            from,
            max,
        )
    }

    /// Apply a sealed ack from the office.
    pub fn apply_ack(&self, sealed: &[u8], now: DateTime<Utc>) -> Result<AckSummary> {
        apply_ack(&mut self.lock(), &self.device_id, sealed, now)
    }

    /// The office's verdict on event `seq`, once an ack has brought it.
    pub fn verdict(&self, seq: u64) -> Result<Option<Verdict>> {
        let v: Option<Option<String>> = self
            .lock()
            .query_row(
                "SELECT verdict FROM events WHERE seq = ?1",
                [seq as i64],
                |r| r.get(0),
            )
            .optional()?;
        v.flatten().map(|s| Verdict::parse(&s)).transpose()
    }

    /// Remove acknowledged events older than `retention`, and reduce
    /// manifests whose window closed more than `retention` ago, and that no
    /// unacknowledged event refers to, to tombstones (see the module docs).
    /// Records a `purged` event when anything went. Refuses a negative or
    /// unrepresentable retention, and a clock behind the high-water mark.
    pub fn purge(&self, retention: Duration, now: DateTime<Utc>) -> Result<PurgeSummary> {
        if retention < Duration::zero() {
            return Err(Error::invalid("retention", "must not be negative"));
        }
        let cutoff = now.checked_sub_signed(retention).ok_or(Error::invalid(
            "retention",
            "reaches before the earliest time",
        ))?;
        let cutoff_ms = cutoff.timestamp_millis();
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if outbox::behind_mark(&tx, now, self.options.clock_tolerance)?.is_some() {
            return Err(Error::ClockBehind);
        }
        let events = tx.execute(
            "DELETE FROM events WHERE acked = 1 AND created_at < ?1",
            [cutoff_ms],
        )? as u64;
        let purged: Vec<String> = {
            let mut stmt = tx.prepare(
                "SELECT manifest_id FROM manifests WHERE purged_at IS NULL AND valid_until < ?1
                 AND NOT EXISTS (SELECT 1 FROM events e
                     WHERE e.manifest_id = manifests.manifest_id AND e.acked = 0)",
            )?;
            let rows = stmt.query_map([cutoff_ms], |r| r.get("manifest_id"))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for id in &purged {
            tx.execute(
                "UPDATE manifests SET sealed = NULL, purged_at = ?2 WHERE manifest_id = ?1",
                params![id, now.timestamp_millis()],
            )?;
            tx.execute(
                "UPDATE items SET details = NULL WHERE manifest_id = ?1",
                [id],
            )?;
        }
        let manifests = purged.len() as u64;
        let seq = if events > 0 || manifests > 0 {
            let event = outbox::append(
                &tx,
                &self.key,
                &self.device_id,
                now,
                EventKind::Purged {
                    cutoff,
                    events,
                    manifests,
                },
                None,
            )?;
            Some(event.seq)
        } else {
            None
        };
        tx.commit()?;
        if seq.is_some() {
            crate::db::checkpoint(&conn)?;
        }
        Ok(PurgeSummary {
            events,
            manifests,
            seq,
        })
    }
}

/// Up to `max` unacknowledged events of the store on `conn`, oldest first.
pub(super) fn batch(
    conn: &rusqlite::Connection,
    device_id: &str,
    device_key: crate::keys::PublicKey,
    max: u64,
) -> Result<Batch> {
    Ok(Batch {
        format: BATCH_FORMAT.to_owned(),
        device_id: device_id.to_owned(),
        device_key,
        events: outbox::read_events(conn, true, max.max(1))?,
        acks: Vec::new(),
    })
}

/// A resend from `from` (see [`Device::export_resend`]).
pub(super) fn resend(
    conn: &rusqlite::Connection,
    device_id: &str,
    device_key: crate::keys::PublicKey,
    from: u64,
    max: u64,
) -> Result<Batch> {
    let acked_through = outbox::meta_i64(conn, ACKED_THROUGH)?.unwrap_or(0) as u64;
    if from == 0 || from > acked_through {
        return Err(Error::invalid(
            "resend",
            "starts outside the acknowledged events",
        ));
    }
    let purged = || {
        Error::NotAllowed(
            "the office lost events this device has since purged, and it holds none after them yet",
        )
    };
    let mut events = outbox::read_events_from(conn, from, max.max(1))?;
    let mut from = from;
    let mut checkpoint = None;
    if events.first().map(|e| e.seq) != Some(from) {
        let first = events.first().map(|e| e.seq).ok_or_else(purged)?;
        let (at, sealed): (u64, Vec<u8>) = conn
            .query_row(
                "SELECT through_seq, sealed FROM acks WHERE through_seq >= ?1
                 ORDER BY through_seq LIMIT 1",
                [first as i64 - 1],
                |r| Ok((r.get::<_, i64>("through_seq")? as u64, r.get("sealed")?)),
            )
            .optional()?
            .ok_or_else(purged)?;
        from = at + 1;
        events = outbox::read_events_from(conn, from, max.max(1))?;
        if events.first().map(|e| e.seq) != Some(from) {
            return Err(purged());
        }
        checkpoint = Some(sealed);
        if at >= acked_through {
            // Nothing acknowledged after the checkpoint: the events to
            // send are the waiting ones.
            return Ok(Batch {
                format: BATCH_FORMAT.to_owned(),
                device_id: device_id.to_owned(),
                device_key,
                events,
                acks: checkpoint
                    .iter()
                    .map(|s| crate::api::to_base64(s))
                    .collect(),
            });
        }
    }
    let last = events.last().map_or(from, |e| e.seq);
    let mut acks: Vec<(u64, Vec<u8>)> = {
        let mut stmt = conn.prepare(
            "SELECT through_seq, sealed FROM acks WHERE through_seq >= ?1 AND through_seq <= ?2
             ORDER BY through_seq",
        )?;
        let rows = stmt.query_map(params![from as i64, last as i64], |r| {
            Ok((r.get::<_, i64>("through_seq")? as u64, r.get("sealed")?))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    // End at the last ack carried, unless that would leave acknowledged
    // events out for no reason (no ack ends inside the batch).
    if let Some(&(end, _)) = acks.last() {
        events.retain(|e| e.seq <= end);
    } else {
        events.retain(|e| e.seq <= acked_through);
    }
    acks.retain(|(t, _)| events.last().is_some_and(|e| *t <= e.seq));
    Ok(Batch {
        format: BATCH_FORMAT.to_owned(),
        device_id: device_id.to_owned(),
        device_key,
        events,
        acks: checkpoint
            .iter()
            .chain(acks.iter().map(|(_, sealed)| sealed))
            .map(|sealed| crate::api::to_base64(sealed))
            .collect(),
    })
}

/// Apply a sealed ack to the store on `conn` (see the module docs): no
/// device key is needed, only the pinned office keys.
pub(super) fn apply_ack(
    conn: &mut rusqlite::Connection,
    device_id: &str,
    sealed: &[u8],
    now: DateTime<Utc>,
) -> Result<AckSummary> {
    let trusted = trusted_keys(conn, Some(now))?;
    let ack = Ack::open(sealed, &trusted)?;
    if ack.device_id != device_id {
        return Err(Error::WrongDevice);
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let head_seq = outbox::head(&tx)?.seq();
    if ack.through_seq > head_seq {
        return Err(Error::AckMismatch(
            "acknowledges events this device never wrote",
        ));
    }
    let held: Option<Vec<u8>> = tx
        .query_row(
            "SELECT hash FROM events WHERE seq = ?1",
            [ack.through_seq as i64],
            |r| r.get(0),
        )
        .optional()?;
    let acked_through = outbox::meta_i64(&tx, ACKED_THROUGH)?.unwrap_or(0) as u64;
    match held {
        Some(hash) if hash == ack.head_hash => {}
        Some(_) => {
            return Err(Error::AckMismatch(
                "head hash differs from this device's chain",
            ))
        }
        // Purged: only possible for a seq acknowledged long ago.
        None if ack.through_seq <= acked_through => {}
        None => return Err(Error::AckMismatch("acknowledged event is missing")),
    }
    let mut summary = AckSummary {
        through_seq: acked_through.max(ack.through_seq),
        newly_acked: 0,
        verified: 0,
        flagged: 0,
    };
    if ack.through_seq > acked_through {
        summary.newly_acked = tx.execute(
            "UPDATE events SET acked = 1 WHERE seq <= ?1 AND acked = 0",
            [ack.through_seq as i64],
        )? as u64;
        outbox::set_meta(&tx, ACKED_THROUGH, ack.through_seq as i64)?;
    }
    // Clock suspicion ends once the office has seen the latest anomaly.
    let anomaly = outbox::meta_i64(&tx, CLOCK_ANOMALY_SEQ)?.unwrap_or(0);
    if i64::try_from(ack.through_seq).is_ok_and(|t| t >= anomaly) {
        outbox::set_meta(&tx, CLOCK_SUSPECT, 0)?;
    }
    for v in &ack.verdicts {
        tx.execute(
            "UPDATE events SET verdict = ?2 WHERE seq = ?1",
            params![v.seq as i64, v.verdict.as_str()],
        )?;
        match v.verdict {
            Verdict::Verified => summary.verified += 1,
            Verdict::Recorded => {}
            _ => summary.flagged += 1,
        }
    }
    tx.execute(
        "INSERT INTO acks (through_seq, head_hash, applied_at, sealed) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(through_seq) DO NOTHING",
        params![
            ack.through_seq as i64,
            &ack.head_hash[..],
            now.timestamp_millis(),
            sealed
        ],
    )?;
    tx.commit()?;
    Ok(summary)
}
