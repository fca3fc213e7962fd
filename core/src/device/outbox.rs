//! The outbox: appending events to the hash chain, inside the caller's
//! transaction, and the bookkeeping (`meta`) it keeps.
//!
//! Every state change of an item and the event that records it are written in
//! one SQLite transaction: either both are on disk or neither is. The chain
//! head (`head_seq`, `head_hash`) lives in `meta`, so acknowledged events can
//! be purged without breaking the chain for the events after them.

use chrono::{DateTime, Duration, Utc};
use rusqlite::{params, OptionalExtension, Transaction};

use crate::error::{Error, Result};
use crate::event::{Event, EventBody, EventKind, GENESIS};
use crate::keys::SigningKey;

pub(crate) const HEAD_SEQ: &str = "head_seq";
pub(crate) const HEAD_HASH: &str = "head_hash";
pub(crate) const HLC: &str = "hlc";
pub(crate) const LAST_TIME: &str = "last_time";
pub(crate) const CLOCK_SUSPECT: &str = "clock_suspect";
pub(crate) const ACKED_THROUGH: &str = "acked_through";

pub(crate) fn meta_i64(tx: &rusqlite::Connection, key: &str) -> Result<Option<i64>> {
    Ok(tx
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

pub(crate) fn meta_blob(tx: &rusqlite::Connection, key: &str) -> Result<Option<Vec<u8>>> {
    Ok(tx
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

pub(crate) fn set_meta<V: rusqlite::ToSql>(
    tx: &rusqlite::Connection,
    key: &str,
    v: V,
) -> Result<()> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![key, v],
    )?;
    Ok(())
}

/// The chain head: last seq written and its hash (0 and [`GENESIS`] at first).
pub(crate) fn head(tx: &rusqlite::Connection) -> Result<(u64, [u8; 32])> {
    let seq = meta_i64(tx, HEAD_SEQ)?.unwrap_or(0);
    let hash = match meta_blob(tx, HEAD_HASH)? {
        None => GENESIS,
        Some(b) => b
            .try_into()
            .map_err(|_| Error::DatabaseUnusable("chain head hash has the wrong length".into()))?,
    };
    Ok((u64::try_from(seq).unwrap_or(0), hash))
}

/// Append `kind` as the next event of the chain, within `tx`.
pub(crate) fn append(
    tx: &Transaction<'_>,
    key: &SigningKey,
    device_id: &str,
    now: DateTime<Utc>,
    kind: EventKind,
) -> Result<Event> {
    let (head_seq, head_hash) = head(tx)?;
    let seq = head_seq + 1;
    let now_ms = now.timestamp_millis();
    let counter = meta_i64(tx, HLC)?.map_or(now_ms, |prev| prev.saturating_add(1).max(now_ms));
    let clock_suspect = meta_i64(tx, CLOCK_SUSPECT)?.unwrap_or(0) != 0;
    let (manifest_id, reference) = kind.subject();
    let (manifest_id, reference) = (manifest_id.map(str::to_owned), reference.map(str::to_owned));
    let type_name = kind.type_name();
    let body = EventBody {
        device_id: device_id.to_owned(),
        seq,
        time: now,
        counter,
        clock_suspect,
        kind,
    };
    let event = Event::create(head_hash, &body, key)?;
    tx.execute(
        "INSERT INTO events (seq, prev_hash, body, hash, signature, kind, manifest_id, reference, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            seq as i64,
            &event.prev_hash[..],
            &event.body,
            &event.hash[..],
            &event.signature[..],
            type_name,
            manifest_id,
            reference,
            now_ms
        ],
    )?;
    set_meta(tx, HEAD_SEQ, seq as i64)?;
    set_meta(tx, HEAD_HASH, &event.hash[..])?;
    set_meta(tx, HLC, counter)?;
    set_meta(tx, LAST_TIME, now_ms)?;
    Ok(event)
}

/// If the clock went back past the last event by more than `tolerance`,
/// record a clock anomaly and mark events clock-suspect until the next ack.
pub(crate) fn check_clock(
    tx: &Transaction<'_>,
    key: &SigningKey,
    device_id: &str,
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<bool> {
    let Some(last_ms) = meta_i64(tx, LAST_TIME)? else {
        return Ok(false);
    };
    let last = DateTime::from_timestamp_millis(last_ms).unwrap_or(now);
    if now >= last - tolerance {
        return Ok(false);
    }
    set_meta(tx, CLOCK_SUSPECT, 1)?;
    append(
        tx,
        key,
        device_id,
        now,
        EventKind::ClockAnomaly {
            last_time: last,
            now,
        },
    )?;
    Ok(true)
}

/// Read stored events (only unacknowledged ones if `unacked_only`), oldest
/// first, at most `limit`.
pub(crate) fn read_events(
    conn: &rusqlite::Connection,
    unacked_only: bool,
    limit: u64,
) -> Result<Vec<Event>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, prev_hash, body, hash, signature FROM events
         WHERE (?1 = 0 OR acked = 0) ORDER BY seq LIMIT ?2",
    )?;
    let rows = stmt.query_map(
        params![unacked_only as i64, limit.min(i64::MAX as u64) as i64],
        |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, Vec<u8>>(3)?,
                r.get::<_, Vec<u8>>(4)?,
            ))
        },
    )?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, prev, body, hash, sig) = row?;
        let bad = || Error::DatabaseUnusable("stored event has a field of the wrong length".into());
        out.push(Event {
            seq: seq as u64,
            prev_hash: prev.try_into().map_err(|_| bad())?,
            body,
            hash: hash.try_into().map_err(|_| bad())?,
            signature: sig.try_into().map_err(|_| bad())?,
        });
    }
    Ok(out)
}
