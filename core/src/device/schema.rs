//! The device database schema and its migrations.
//!
//! The schema version lives in SQLite's `user_version`. [`migrate`] upgrades
//! one step at a time, each step in its own transaction, so a crash between
//! steps leaves a database at a known version ([`crate::db`]). A database
//! newer than this build is refused, never downgraded.
//!
//! History:
//! * **1** — identity and pinned office keys (`meta`, `office_keys`),
//!   manifests and items, and the event outbox.
//! * **2** — sync bookkeeping: the office's verdict per event, the applied
//!   acks, and a per-item count of UPI requests (so every QR shown carries a
//!   fresh transaction reference).
//! * **3** — tombstones: a purged manifest keeps its row (revision, hash of
//!   its sealed bytes) and its items keep theirs (code version, verifier,
//!   state, attempts), without the sealed bytes and the personal details.
//!   Nothing the device does to itself resets an attempt count or reopens a
//!   handed-over item.
//! * **4** — office key rotation: a pinned key's end (`retire_at`, from the
//!   office's key statement) and the key that succeeded it (`successor`).

use rusqlite::{Connection, Transaction};

use crate::db::{self, Step};
use crate::error::Result;
use crate::keys::sha256;

/// Schema version this build writes.
pub const VERSION: i64 = 4;

/// The migration steps: `STEPS[i]` takes a database from version `i` to
/// `i + 1`. Public so tests can build a database exactly as an earlier
/// version left it.
pub const STEPS: &[Step] = &[
    Step::sql(V1),
    Step::sql(V2),
    Step {
        sql: V3,
        then: Some(hash_sealed_manifests),
    },
    Step::sql(V4),
];

const V4: &str = "
ALTER TABLE office_keys ADD COLUMN retire_at INTEGER;
ALTER TABLE office_keys ADD COLUMN successor TEXT;
";

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

// The 12-step rebuild of SQLite's ALTER TABLE documentation: foreign keys
// are off while steps run (crate::db), and checked before the commit.
const V3: &str = "
CREATE TABLE manifests_v3 (
    manifest_id TEXT PRIMARY KEY,
    revision    INTEGER NOT NULL,
    programme   TEXT NOT NULL,
    valid_from  INTEGER NOT NULL,
    valid_until INTEGER NOT NULL,
    sealed      BLOB,
    sealed_hash BLOB NOT NULL,
    imported_at INTEGER NOT NULL,
    purged_at   INTEGER
) STRICT;
INSERT INTO manifests_v3 (manifest_id, revision, programme, valid_from, valid_until, sealed,
                          sealed_hash, imported_at)
    SELECT manifest_id, revision, programme, valid_from, valid_until, sealed, X'', imported_at
    FROM manifests;
CREATE TABLE items_v3 (
    manifest_id      TEXT NOT NULL REFERENCES manifests(manifest_id),
    reference        TEXT NOT NULL,
    code_version     INTEGER NOT NULL,
    policy           TEXT NOT NULL,
    verifier_salt    BLOB NOT NULL,
    verifier_tag     BLOB NOT NULL,
    details          TEXT,
    state            TEXT NOT NULL
        CHECK (state IN ('pending', 'handed_over', 'exception', 'locked', 'withdrawn')),
    exception_reason TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    outcome_seq      INTEGER,
    paid             INTEGER NOT NULL DEFAULT 0,
    upi_requests     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (manifest_id, reference)
) STRICT;
INSERT INTO items_v3 SELECT manifest_id, reference, code_version, policy, verifier_salt,
    verifier_tag, details, state, exception_reason, attempts, outcome_seq, paid, upi_requests
    FROM items;
DROP TABLE items;
DROP TABLE manifests;
ALTER TABLE manifests_v3 RENAME TO manifests;
ALTER TABLE items_v3 RENAME TO items;
CREATE INDEX items_by_reference ON items(reference, code_version);
";

/// Version 3's `sealed_hash` of every manifest held, which SQL cannot compute.
fn hash_sealed_manifests(tx: &Transaction<'_>) -> Result<()> {
    let rows: Vec<(String, Vec<u8>)> = {
        let mut stmt =
            tx.prepare("SELECT manifest_id, sealed FROM manifests WHERE sealed IS NOT NULL")?;
        let rows = stmt.query_map([], |r| Ok((r.get("manifest_id")?, r.get("sealed")?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (id, sealed) in rows {
        tx.execute(
            "UPDATE manifests SET sealed_hash = ?2 WHERE manifest_id = ?1",
            rusqlite::params![id, &sealed_hash(&sealed)[..]],
        )?;
    }
    Ok(())
}

/// The hash a tombstone keeps of a manifest's sealed bytes.
pub(crate) fn sealed_hash(sealed: &[u8]) -> [u8; 32] {
    sha256(&[b"handover/sealed-manifest/v1", sealed])
}

/// The database's schema version.
pub fn version(conn: &Connection) -> Result<i64> {
    db::version(conn)
}

/// Bring the database up to `target`, which must not exceed [`VERSION`].
pub fn migrate_to(conn: &mut Connection, target: i64) -> Result<()> {
    db::apply_steps(conn, STEPS, target)
}
