//! The outbox: appending events to the hash chain, inside the caller's
//! transaction, and the bookkeeping (`meta`) it keeps.
//!
//! Every state change of an item and the event that records it are written in
//! one SQLite transaction: either both are on disk or neither is. The chain
//! head (`head_seq`, `head_hash`) lives in `meta`, so acknowledged events can
//! be purged without breaking the chain for the events after them.
//!
//! The clock: `hlc` in `meta` is the hybrid logical clock,
//! `max(previous + 1, now)` in milliseconds, carried in every event as its
//! `counter`. It is the device's **high-water mark** of time. A reading
//! behind it by more than the tolerance, however small each step back was,
//! records one `clock_anomaly` event and marks later events clock-suspect
//! until an ack that covers the anomaly (`clock_anomaly_seq`) is applied.

use chrono::{DateTime, Duration, Utc};
use rusqlite::{params, OptionalExtension, Transaction};

use crate::error::{Error, Result};
use crate::event::{ChainCursor, Event, EventBody, EventKind, Fix};
use crate::keys::SigningKey;

pub(crate) const HEAD_SEQ: &str = "head_seq";
pub(crate) const HEAD_HASH: &str = "head_hash";
pub(crate) const HLC: &str = "hlc";
pub(crate) const LAST_TIME: &str = "last_time";
pub(crate) const CLOCK_SUSPECT: &str = "clock_suspect";
pub(crate) const CLOCK_ANOMALY_SEQ: &str = "clock_anomaly_seq";
pub(crate) const ACKED_THROUGH: &str = "acked_through";

pub(crate) fn meta_i64(tx: &rusqlite::Connection, key: &str) -> Result<Option<i64>> {
    Ok(tx
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

/// Events not yet acknowledged by the office.
pub(crate) fn pending_count(conn: &rusqlite::Connection) -> Result<u64> {
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM events WHERE acked = 0", [], |r| {
        r.get(0)
    })?;
    Ok(n as u64)
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

/// The chain head: the last event written (genesis at first).
pub(crate) fn head(tx: &rusqlite::Connection) -> Result<ChainCursor> {
    let seq = meta_i64(tx, HEAD_SEQ)?.unwrap_or(0);
    let Some(hash) = meta_blob(tx, HEAD_HASH)? else {
        return Ok(ChainCursor::genesis());
    };
    let hash: [u8; 32] = hash
        .try_into()
        .map_err(|_| Error::DatabaseUnusable("chain head hash has the wrong length".into()))?;
    let seq = u64::try_from(seq)
        .map_err(|_| Error::DatabaseUnusable("chain head seq is negative".into()))?;
    Ok(ChainCursor::at(seq, hash))
}

/// The high-water mark of time, if any event was ever written.
pub(crate) fn high_water_mark(tx: &rusqlite::Connection) -> Result<Option<i64>> {
    meta_i64(tx, HLC)
}

/// Whether `now` is behind the high-water mark by more than `tolerance`.
pub(crate) fn behind_mark(
    tx: &rusqlite::Connection,
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<Option<i64>> {
    let Some(mark) = high_water_mark(tx)? else {
        return Ok(None);
    };
    let slack = tolerance.num_milliseconds().max(0);
    Ok((now.timestamp_millis() < mark.saturating_sub(slack)).then_some(mark))
}

/// Append `kind` as the next event of the chain, within `tx`.
pub(crate) fn append(
    tx: &Transaction<'_>,
    key: &SigningKey,
    device_id: &str,
    now: DateTime<Utc>,
    kind: EventKind,
    at: Option<Fix>,
) -> Result<Event> {
    if let Some(fix) = &at {
        fix.validate()?;
    }
    let mut cursor = head(tx)?;
    let now_ms = now.timestamp_millis();
    let counter = meta_i64(tx, HLC)?.map_or(now_ms, |prev| prev.saturating_add(1).max(now_ms));
    let clock_suspect = meta_i64(tx, CLOCK_SUSPECT)?.unwrap_or(0) != 0;
    let (manifest_id, reference) = kind.subject();
    let (manifest_id, reference) = (manifest_id.map(str::to_owned), reference.map(str::to_owned));
    let type_name = kind.type_name();
    let body = EventBody {
        device_id: device_id.to_owned(),
        seq: cursor.next_seq(),
        time: now,
        counter,
        clock_suspect,
        kind,
        at,
    };
    let event = cursor.append(&body, key)?;
    let seq = i64::try_from(event.seq)
        .map_err(|_| Error::DatabaseUnusable("the outbox is full".into()))?;
    tx.execute(
        "INSERT INTO events (seq, prev_hash, body, hash, signature, kind, manifest_id, reference, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            seq,
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
    set_meta(tx, HEAD_SEQ, seq)?;
    set_meta(tx, HEAD_HASH, &event.hash[..])?;
    set_meta(tx, HLC, counter)?;
    set_meta(tx, LAST_TIME, now_ms)?;
    Ok(event)
}

/// If the clock reads behind the high-water mark by more than `tolerance`
/// and the device is not suspect already, record a clock anomaly and mark
/// events clock-suspect until an ack covering it is applied.
pub(crate) fn check_clock(
    tx: &Transaction<'_>,
    key: &SigningKey,
    device_id: &str,
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<bool> {
    let Some(mark) = behind_mark(tx, now, tolerance)? else {
        return Ok(false);
    };
    if meta_i64(tx, CLOCK_SUSPECT)?.unwrap_or(0) != 0 {
        return Ok(false);
    }
    set_meta(tx, CLOCK_SUSPECT, 1)?;
    let event = append(
        tx,
        key,
        device_id,
        now,
        EventKind::ClockAnomaly {
            mark: DateTime::from_timestamp_millis(mark).unwrap_or(now),
            now,
        },
        None,
    )?;
    set_meta(tx, CLOCK_ANOMALY_SEQ, event.seq as i64)?;
    Ok(true)
}

/// The stored event at `seq`, if held.
pub(crate) fn read_event(conn: &rusqlite::Connection, seq: i64) -> Result<Option<Event>> {
    let row = conn
        .query_row(
            "SELECT seq, prev_hash, body, hash, signature FROM events WHERE seq = ?1",
            [seq],
            |r| {
                Ok((
                    r.get::<_, i64>("seq")?,
                    r.get::<_, Vec<u8>>("prev_hash")?,
                    r.get::<_, Vec<u8>>("body")?,
                    r.get::<_, Vec<u8>>("hash")?,
                    r.get::<_, Vec<u8>>("signature")?,
                ))
            },
        )
        .optional()?;
    row.map(event_of).transpose()
}

fn event_of(
    (seq, prev, body, hash, sig): (i64, Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>),
) -> Result<Event> {
    let bad = || Error::DatabaseUnusable("stored event has a field of the wrong length".into());
    Ok(Event {
        seq: seq as u64,
        prev_hash: prev.try_into().map_err(|_| bad())?,
        body,
        hash: hash.try_into().map_err(|_| bad())?,
        signature: sig.try_into().map_err(|_| bad())?,
    })
}

/// Read stored events from seq `from`, acknowledged or not, oldest first,
/// at most `limit` (a resend).
pub(crate) fn read_events_from(
    conn: &rusqlite::Connection,
    from: u64,
    limit: u64,
) -> Result<Vec<Event>> {
    read(
        conn,
        "SELECT seq, prev_hash, body, hash, signature FROM events
         WHERE seq >= ?1 ORDER BY seq LIMIT ?2",
        from.min(i64::MAX as u64) as i64,
        limit,
    )
}

/// Read stored events (only unacknowledged ones if `unacked_only`), oldest
/// first, at most `limit`.
pub(crate) fn read_events(
    conn: &rusqlite::Connection,
    unacked_only: bool,
    limit: u64,
) -> Result<Vec<Event>> {
    read(
        conn,
        "SELECT seq, prev_hash, body, hash, signature FROM events
         WHERE (?1 = 0 OR acked = 0) ORDER BY seq LIMIT ?2",
        unacked_only as i64,
        limit,
    )
}

/// The events `sql` selects with its one parameter and `limit`.
fn read(conn: &rusqlite::Connection, sql: &str, param: i64, limit: u64) -> Result<Vec<Event>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params![param, limit.min(i64::MAX as u64) as i64], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, Vec<u8>>(1)?,
            r.get::<_, Vec<u8>>(2)?,
            r.get::<_, Vec<u8>>(3)?,
            r.get::<_, Vec<u8>>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        out.push(event_of(row?)?);
    }
    Ok(out)
}
