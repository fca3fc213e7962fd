//! The device database schema and its migrations.
//!
//! The schema version lives in SQLite's `user_version`. [`migrate`] upgrades
//! one step at a time, each step in its own transaction, so a crash between
//! steps leaves a database at a known version. A database newer than this
//! build is refused, never downgraded.
//!
//! History:
//! * **1** — identity and pinned office keys (`meta`, `office_keys`),
//!   manifests and items, and the event outbox.
//! * **2** — sync bookkeeping: the office's verdict per event, the applied
//!   acks, and a per-item count of UPI requests (so every QR shown carries a
//!   fresh transaction reference).

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Error, Result};

/// Schema version this build writes.
pub const VERSION: i64 = 2;

/// The migration steps: `STEPS[i]` takes a database from version `i` to
/// `i + 1`. Public so tests can build a database exactly as an earlier
/// version left it.
pub const STEPS: &[&str] = &[V1, V2];

const V1: &str = "
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value ANY NOT NULL
) STRICT;
CREATE TABLE office_keys (
    key_id     TEXT PRIMARY KEY,
    public_key BLOB NOT NULL,
    added_at   INTEGER NOT NULL
) STRICT;
CREATE TABLE manifests (
    manifest_id TEXT PRIMARY KEY,
    revision    INTEGER NOT NULL,
    programme   TEXT NOT NULL,
    valid_from  INTEGER NOT NULL,
    valid_until INTEGER NOT NULL,
    sealed      BLOB NOT NULL,
    imported_at INTEGER NOT NULL
) STRICT;
CREATE TABLE items (
    manifest_id      TEXT NOT NULL REFERENCES manifests(manifest_id) ON DELETE CASCADE,
    reference        TEXT NOT NULL,
    code_version     INTEGER NOT NULL,
    policy           TEXT NOT NULL,
    verifier_salt    BLOB NOT NULL,
    verifier_tag     BLOB NOT NULL,
    details          TEXT NOT NULL,
    state            TEXT NOT NULL
        CHECK (state IN ('pending', 'handed_over', 'exception', 'locked', 'withdrawn')),
    exception_reason TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    outcome_seq      INTEGER,
    paid             INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (manifest_id, reference)
) STRICT;
CREATE INDEX items_by_reference ON items(reference);
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY,
    prev_hash   BLOB NOT NULL,
    body        BLOB NOT NULL,
    hash        BLOB NOT NULL,
    signature   BLOB NOT NULL,
    kind        TEXT NOT NULL,
    manifest_id TEXT,
    reference   TEXT,
    created_at  INTEGER NOT NULL,
    acked       INTEGER NOT NULL DEFAULT 0
) STRICT;
";

const V2: &str = "
ALTER TABLE events ADD COLUMN verdict TEXT;
ALTER TABLE items ADD COLUMN upi_requests INTEGER NOT NULL DEFAULT 0;
CREATE TABLE acks (
    through_seq INTEGER PRIMARY KEY,
    head_hash   BLOB NOT NULL,
    applied_at  INTEGER NOT NULL,
    sealed      BLOB NOT NULL
) STRICT;
";

/// The database's schema version.
pub fn version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// Bring the database up to [`VERSION`], one step per transaction.
pub fn migrate(conn: &mut Connection) -> Result<()> {
    migrate_to(conn, VERSION)
}

/// Bring the database up to `target`, which must not exceed [`VERSION`].
pub fn migrate_to(conn: &mut Connection, target: i64) -> Result<()> {
    apply_steps(conn, STEPS, target)
}

/// Apply `steps[i]` (version `i` to `i + 1`) for every version the database
/// lacks, up to `target`, one transaction per step; refuse a database newer
/// than `steps` knows. Shared with the office store.
pub fn apply_steps(conn: &mut Connection, steps: &[&str], target: i64) -> Result<()> {
    let known = steps.len() as i64;
    let found = version(conn)?;
    if found > known {
        return Err(Error::SchemaTooNew {
            found,
            supported: known,
        });
    }
    for (i, step) in steps.iter().enumerate() {
        let to = i as i64 + 1;
        if to <= found || to > target {
            continue;
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(step)?;
        tx.pragma_update(None, "user_version", to)?;
        tx.commit()?;
    }
    Ok(())
}
