//! The office database schema, for SQLite (versioned by `user_version`,
//! opened through [`handover_core::db`]: integrity check first, WAL,
//! `synchronous=FULL`, one transaction per migration step) and for
//! PostgreSQL (versioned in `handover_schema`, one transaction per step
//! under an advisory lock, so servers starting together migrate once). The
//! two histories have the same versions; a step's data work beyond SQL is
//! written once, over [`Tx`].
//!
//! Events are keyed by `(device_id, seq)`: ingest is idempotent by
//! construction, and the same key carries over to a PostgreSQL store.
//!
//! History:
//! * **1** — devices, manifests, items, events, confirmations.
//! * **2** — `codes`: the policy and key of every code version issued, so a
//!   verifier never changes while its code does not and ingest re-derives
//!   with the policy of the version in force; per-event `code_version`,
//!   `revision`, `amount_paise` and the office's own `clock_suspect`; the
//!   device's clock high-water mark; `fork_evidence`, the second validly
//!   signed event at a held seq that flagged a device.
//! * **3** — the sync service: `enrol_tokens` (single-use, expiring; the
//!   office keeps the token's proof key, never the token) and
//!   `request_nonces` (signed requests seen recently, to refuse replays).
//! * **4** — the SMS outbox (`sms_outbox`): every message owed, with its
//!   status, attempts, segments and the gateway's id, never a code or a
//!   rendered text; `items.language`. Confirmation SMS move from
//!   `confirmations` (which keeps the certificate records) to the outbox.

use handover_core::db::Step;
use handover_core::event::{Event, EventBody, EventKind, PaymentMethod};

use crate::error::Result;
use crate::store::sql::PgStatements;
use crate::store::{ps, Tx};

/// The migration steps: `STEPS[i]` takes a database from version `i` to
/// `i + 1`. Public so tests can build a database as an earlier version left it.
pub const STEPS: &[Step] = &[
    Step::sql(V1),
    Step {
        sql: V2,
        then: Some(backfill_v2_sqlite),
    },
    Step::sql(V3),
    Step::sql(V4),
];

/// Schema version this build writes.
pub const VERSION: i64 = 4;

const V1: &str = "
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value ANY NOT NULL
) STRICT;
CREATE TABLE devices (
    device_id   TEXT PRIMARY KEY,
    public_key  BLOB NOT NULL UNIQUE,
    assignee    TEXT NOT NULL,
    enrolled_at INTEGER NOT NULL,
    revoked_at  INTEGER,
    flagged     TEXT,
    head_seq    INTEGER NOT NULL DEFAULT 0,
    head_hash   BLOB
) STRICT;
CREATE TABLE manifests (
    manifest_id TEXT PRIMARY KEY,
    revision    INTEGER NOT NULL,
    device_id   TEXT NOT NULL REFERENCES devices(device_id),
    programme   TEXT NOT NULL,
    code_key_id TEXT NOT NULL,
    issued_at   INTEGER NOT NULL,
    valid_from  INTEGER NOT NULL,
    valid_until INTEGER NOT NULL,
    policy      TEXT NOT NULL,
    sealed      BLOB NOT NULL
) STRICT;
CREATE TABLE items (
    manifest_id  TEXT NOT NULL REFERENCES manifests(manifest_id),
    reference    TEXT NOT NULL,
    programme    TEXT NOT NULL,
    code_version INTEGER NOT NULL,
    digits       INTEGER NOT NULL,
    mobile       TEXT NOT NULL,
    details      TEXT NOT NULL,
    PRIMARY KEY (manifest_id, reference)
) STRICT;
CREATE INDEX items_by_reference ON items(programme, reference);
CREATE TABLE events (
    device_id   TEXT NOT NULL REFERENCES devices(device_id),
    seq         INTEGER NOT NULL,
    prev_hash   BLOB NOT NULL,
    hash        BLOB NOT NULL,
    body        BLOB NOT NULL,
    signature   BLOB NOT NULL,
    kind        TEXT NOT NULL,
    manifest_id TEXT,
    reference   TEXT,
    detail      TEXT,
    verdict     TEXT NOT NULL,
    device_time INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (device_id, seq)
) STRICT;
CREATE INDEX events_by_reference ON events(reference, kind, verdict);
CREATE TABLE confirmations (
    device_id  TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    channel    TEXT NOT NULL CHECK (channel IN ('sms', 'certificate')),
    reference  TEXT NOT NULL,
    recipient  TEXT NOT NULL,
    message    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (device_id, seq, channel)
) STRICT;
";

const V2: &str = "
CREATE TABLE codes (
    programme    TEXT NOT NULL,
    reference    TEXT NOT NULL,
    code_version INTEGER NOT NULL,
    policy       TEXT NOT NULL,
    code_key_id  TEXT NOT NULL,
    issued_at    INTEGER NOT NULL,
    PRIMARY KEY (programme, reference, code_version)
) STRICT;
INSERT OR IGNORE INTO codes (programme, reference, code_version, policy, code_key_id, issued_at)
    SELECT i.programme, i.reference, i.code_version, m.policy, m.code_key_id, m.issued_at
    FROM items i JOIN manifests m ON m.manifest_id = i.manifest_id;
ALTER TABLE events ADD COLUMN code_version INTEGER;
ALTER TABLE events ADD COLUMN revision INTEGER;
ALTER TABLE events ADD COLUMN amount_paise INTEGER;
ALTER TABLE events ADD COLUMN clock_suspect INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN clock_mark INTEGER;
CREATE TABLE fork_evidence (
    device_id   TEXT NOT NULL REFERENCES devices(device_id),
    seq         INTEGER NOT NULL,
    prev_hash   BLOB NOT NULL,
    hash        BLOB NOT NULL,
    body        BLOB NOT NULL,
    signature   BLOB NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (device_id, seq, hash)
) STRICT;
CREATE INDEX events_by_item ON events(device_id, reference, code_version, kind);
";

const V3: &str = "
CREATE TABLE enrol_tokens (
    token_id    TEXT PRIMARY KEY,
    proof_key   BLOB NOT NULL,
    assignee    TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER,
    device_id   TEXT REFERENCES devices(device_id)
) STRICT;
CREATE TABLE request_nonces (
    device_id TEXT NOT NULL,
    nonce     BLOB NOT NULL,
    seen_at   INTEGER NOT NULL,
    PRIMARY KEY (device_id, nonce)
) STRICT, WITHOUT ROWID;
CREATE INDEX request_nonces_by_time ON request_nonces(seen_at);
";

const V4: &str = "
CREATE TABLE sms_outbox (
    id           INTEGER PRIMARY KEY,
    purpose      TEXT NOT NULL CHECK (purpose IN ('code', 'confirmation', 'certificate')),
    programme    TEXT NOT NULL,
    reference    TEXT NOT NULL,
    code_version INTEGER,
    event_device TEXT,
    event_seq    INTEGER,
    mobile       TEXT NOT NULL,
    language     TEXT NOT NULL CHECK (language IN ('en', 'hi', 'hi+en')),
    status       TEXT NOT NULL
        CHECK (status IN ('queued', 'sending', 'sent', 'delivered', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    segments     INTEGER NOT NULL DEFAULT 0,
    reason       TEXT,
    gateway_id   TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    claimed_at   INTEGER
) STRICT;
CREATE INDEX sms_by_status ON sms_outbox(status, id);
CREATE INDEX sms_by_gateway_id ON sms_outbox(gateway_id) WHERE gateway_id IS NOT NULL;
CREATE UNIQUE INDEX sms_once_per_event ON sms_outbox(purpose, event_device, event_seq)
    WHERE event_device IS NOT NULL;
ALTER TABLE items ADD COLUMN language TEXT NOT NULL DEFAULT 'en';
INSERT INTO sms_outbox (purpose, programme, reference, event_device, event_seq, mobile, language,
                        status, segments, created_at, updated_at)
    SELECT 'confirmation', i.programme, c.reference, c.device_id, c.seq, c.recipient, 'en',
           'queued', 1, c.created_at, c.created_at
    FROM confirmations c
    JOIN events e ON e.device_id = c.device_id AND e.seq = c.seq
    JOIN items i ON i.manifest_id = e.manifest_id AND i.reference = e.reference
    WHERE c.channel = 'sms';
DELETE FROM confirmations WHERE channel = 'sms';
";

fn backfill_v2_sqlite(tx: &rusqlite::Transaction<'_>) -> handover_core::Result<()> {
    backfill_v2(&mut Tx::Lite(tx))
        .map_err(|e| handover_core::Error::DatabaseUnusable(e.to_string()))
}

/// Version 2's per-event columns for events stored by version 1, read from
/// the signed bodies (SQL cannot parse them).
fn backfill_v2(tx: &mut Tx<'_, '_>) -> Result<()> {
    let rows: Vec<(String, i64, Vec<u8>)> =
        tx.all("SELECT device_id, seq, body FROM events", ps![], |r| {
            Ok((r.get("device_id")?, r.get("seq")?, r.get("body")?))
        })?;
    for (device_id, seq, body) in rows {
        let body = Event {
            seq: u64::try_from(seq).unwrap_or(0),
            prev_hash: [0; 32],
            body,
            hash: [0; 32],
            signature: [0; 64],
        }
        .parse_body()?;
        let c = Columns::of(&body);
        tx.exec(
            "UPDATE events SET code_version = $3, revision = $4, amount_paise = $5,
                 detail = $6, clock_suspect = $7 WHERE device_id = $1 AND seq = $2",
            ps![
                &device_id,
                seq,
                c.code_version,
                c.revision,
                c.amount_paise,
                &c.detail,
                body.clock_suspect
            ],
        )?;
    }
    Ok(())
}

/// One PostgreSQL migration step: version `i` to `i + 1`.
pub(crate) struct PgStep {
    /// DDL and data changes.
    pub sql: &'static str,
    /// Work SQL cannot do, in the same transaction.
    pub then: Option<fn(&mut Tx<'_, '_>) -> Result<()>>,
}

/// The PostgreSQL history: the same versions as [`STEPS`].
pub(crate) const PG_STEPS: &[PgStep] = &[
    PgStep {
        sql: PG_V1,
        then: None,
    },
    PgStep {
        sql: PG_V2,
        then: Some(backfill_v2),
    },
    PgStep {
        sql: PG_V3,
        then: None,
    },
    PgStep {
        sql: PG_V4,
        then: None,
    },
];

/// The lock every migrating process takes, so one migrates at a time.
const PG_MIGRATION_LOCK: i64 = 0x68616e646f766572; // "handover"

/// Bring a PostgreSQL store to [`VERSION`], one transaction per step.
pub(crate) fn migrate_postgres(
    client: &mut postgres::Client,
    statements: &mut PgStatements,
) -> Result<()> {
    let known = PG_STEPS.len() as i64;
    for (i, step) in PG_STEPS.iter().enumerate() {
        let to = i as i64 + 1;
        let mut tx = client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PG_MIGRATION_LOCK])?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS handover_schema (version BIGINT NOT NULL)")?;
        let found: i64 = tx
            .query_opt("SELECT version FROM handover_schema", &[])?
            .map(|r| r.try_get(0))
            .transpose()?
            .unwrap_or(0);
        if found > known {
            return Err(handover_core::Error::SchemaTooNew {
                found,
                supported: known,
            }
            .into());
        }
        if found >= to {
            tx.commit()?;
            continue;
        }
        tx.batch_execute(step.sql)?;
        if let Some(then) = step.then {
            then(&mut Tx::Pg(&mut tx, statements))?;
        }
        tx.execute("DELETE FROM handover_schema", &[])?;
        tx.execute("INSERT INTO handover_schema (version) VALUES ($1)", &[&to])?;
        tx.commit()?;
        // A statement prepared before a schema change may no longer fit it.
        statements.clear();
    }
    Ok(())
}

/// Bring a PostgreSQL store to `target` only (tests of earlier versions).
pub fn migrate_postgres_to(url: &str, target: i64) -> Result<()> {
    let mut client = postgres::Client::connect(url, postgres::NoTls)?;
    let mut statements = PgStatements::default();
    for (i, step) in PG_STEPS
        .iter()
        .enumerate()
        .take(usize::try_from(target).unwrap_or(0))
    {
        let mut tx = client.transaction()?;
        if i == 0 {
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS handover_schema (version BIGINT NOT NULL)",
            )?;
        }
        tx.batch_execute(step.sql)?;
        if let Some(then) = step.then {
            then(&mut Tx::Pg(&mut tx, &mut statements))?;
        }
        tx.execute("DELETE FROM handover_schema", &[])?;
        tx.execute(
            "INSERT INTO handover_schema (version) VALUES ($1)",
            &[&(i as i64 + 1)],
        )?;
        tx.commit()?;
    }
    Ok(())
}

const PG_V1: &str = "
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE devices (
    device_id   TEXT PRIMARY KEY,
    public_key  BYTEA NOT NULL UNIQUE,
    assignee    TEXT NOT NULL,
    enrolled_at BIGINT NOT NULL,
    revoked_at  BIGINT,
    flagged     TEXT,
    head_seq    BIGINT NOT NULL DEFAULT 0,
    head_hash   BYTEA
);
CREATE TABLE manifests (
    manifest_id TEXT PRIMARY KEY,
    revision    BIGINT NOT NULL,
    device_id   TEXT NOT NULL REFERENCES devices(device_id),
    programme   TEXT NOT NULL,
    code_key_id TEXT NOT NULL,
    issued_at   BIGINT NOT NULL,
    valid_from  BIGINT NOT NULL,
    valid_until BIGINT NOT NULL,
    policy      TEXT NOT NULL,
    sealed      BYTEA NOT NULL
);
CREATE INDEX manifests_by_device ON manifests(device_id, valid_until);
CREATE TABLE items (
    manifest_id  TEXT NOT NULL REFERENCES manifests(manifest_id),
    reference    TEXT NOT NULL,
    programme    TEXT NOT NULL,
    code_version BIGINT NOT NULL,
    digits       BIGINT NOT NULL,
    mobile       TEXT NOT NULL,
    details      TEXT NOT NULL,
    PRIMARY KEY (manifest_id, reference)
);
CREATE INDEX items_by_reference ON items(programme, reference);
CREATE TABLE events (
    device_id   TEXT NOT NULL REFERENCES devices(device_id),
    seq         BIGINT NOT NULL,
    prev_hash   BYTEA NOT NULL,
    hash        BYTEA NOT NULL,
    body        BYTEA NOT NULL,
    signature   BYTEA NOT NULL,
    kind        TEXT NOT NULL,
    manifest_id TEXT,
    reference   TEXT,
    detail      TEXT,
    verdict     TEXT NOT NULL,
    device_time BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, seq)
);
CREATE INDEX events_by_reference ON events(reference, kind, verdict);
CREATE TABLE confirmations (
    device_id  TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    channel    TEXT NOT NULL CHECK (channel IN ('sms', 'certificate')),
    reference  TEXT NOT NULL,
    recipient  TEXT NOT NULL,
    message    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, seq, channel)
);
";

const PG_V2: &str = "
CREATE TABLE codes (
    programme    TEXT NOT NULL,
    reference    TEXT NOT NULL,
    code_version BIGINT NOT NULL,
    policy       TEXT NOT NULL,
    code_key_id  TEXT NOT NULL,
    issued_at    BIGINT NOT NULL,
    PRIMARY KEY (programme, reference, code_version)
);
INSERT INTO codes (programme, reference, code_version, policy, code_key_id, issued_at)
    SELECT i.programme, i.reference, i.code_version, m.policy, m.code_key_id, m.issued_at
    FROM items i JOIN manifests m ON m.manifest_id = i.manifest_id
    ON CONFLICT DO NOTHING;
ALTER TABLE events ADD COLUMN code_version BIGINT;
ALTER TABLE events ADD COLUMN revision BIGINT;
ALTER TABLE events ADD COLUMN amount_paise BIGINT;
ALTER TABLE events ADD COLUMN clock_suspect BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE devices ADD COLUMN clock_mark BIGINT;
CREATE TABLE fork_evidence (
    device_id   TEXT NOT NULL REFERENCES devices(device_id),
    seq         BIGINT NOT NULL,
    prev_hash   BYTEA NOT NULL,
    hash        BYTEA NOT NULL,
    body        BYTEA NOT NULL,
    signature   BYTEA NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, seq, hash)
);
CREATE INDEX events_by_item ON events(device_id, reference, code_version, kind);
";

const PG_V3: &str = "
CREATE TABLE enrol_tokens (
    token_id    TEXT PRIMARY KEY,
    proof_key   BYTEA NOT NULL,
    assignee    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    device_id   TEXT REFERENCES devices(device_id)
);
CREATE TABLE request_nonces (
    device_id TEXT NOT NULL,
    nonce     BYTEA NOT NULL,
    seen_at   BIGINT NOT NULL,
    PRIMARY KEY (device_id, nonce)
);
CREATE INDEX request_nonces_by_time ON request_nonces(seen_at);
";

const PG_V4: &str = "
CREATE TABLE sms_outbox (
    id           BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    purpose      TEXT NOT NULL CHECK (purpose IN ('code', 'confirmation', 'certificate')),
    programme    TEXT NOT NULL,
    reference    TEXT NOT NULL,
    code_version BIGINT,
    event_device TEXT,
    event_seq    BIGINT,
    mobile       TEXT NOT NULL,
    language     TEXT NOT NULL CHECK (language IN ('en', 'hi', 'hi+en')),
    status       TEXT NOT NULL
        CHECK (status IN ('queued', 'sending', 'sent', 'delivered', 'failed')),
    attempts     BIGINT NOT NULL DEFAULT 0,
    segments     BIGINT NOT NULL DEFAULT 0,
    reason       TEXT,
    gateway_id   TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    claimed_at   BIGINT
);
CREATE INDEX sms_by_status ON sms_outbox(status, id);
CREATE INDEX sms_by_gateway_id ON sms_outbox(gateway_id) WHERE gateway_id IS NOT NULL;
CREATE UNIQUE INDEX sms_once_per_event ON sms_outbox(purpose, event_device, event_seq)
    WHERE event_device IS NOT NULL;
ALTER TABLE items ADD COLUMN language TEXT NOT NULL DEFAULT 'en';
INSERT INTO sms_outbox (purpose, programme, reference, event_device, event_seq, mobile, language,
                        status, segments, created_at, updated_at)
    SELECT 'confirmation', i.programme, c.reference, c.device_id, c.seq, c.recipient, 'en',
           'queued', 1, c.created_at, c.created_at
    FROM confirmations c
    JOIN events e ON e.device_id = c.device_id AND e.seq = c.seq
    JOIN items i ON i.manifest_id = e.manifest_id AND i.reference = e.reference
    WHERE c.channel = 'sms';
DELETE FROM confirmations WHERE channel = 'sms';
";

/// The columns the office keeps beside an event's body, for queries.
pub(crate) struct Columns {
    pub code_version: Option<i64>,
    pub revision: Option<i64>,
    pub amount_paise: Option<i64>,
    pub detail: Option<String>,
}

impl Columns {
    pub(crate) fn of(body: &EventBody) -> Columns {
        let mut c = Columns {
            code_version: None,
            revision: None,
            amount_paise: None,
            detail: None,
        };
        match &body.kind {
            EventKind::HandedOver {
                revision,
                code_version,
                ..
            } => {
                c.revision = Some(i64::from(*revision));
                c.code_version = Some(i64::from(*code_version));
            }
            EventKind::AttemptFailed { code_version, .. }
            | EventKind::Locked { code_version, .. } => {
                c.code_version = Some(i64::from(*code_version))
            }
            EventKind::ManifestImported { revision, .. } => c.revision = Some(i64::from(*revision)),
            EventKind::Exception { reason, .. } => c.detail = Some(reason.as_str().to_owned()),
            EventKind::Payment {
                amount_paise,
                method,
                ..
            } => {
                c.amount_paise = i64::try_from(*amount_paise).ok();
                c.detail = Some(
                    match method {
                        PaymentMethod::Cash => "cash",
                        PaymentMethod::Upi { .. } => "upi",
                    }
                    .to_owned(),
                );
            }
            _ => {}
        }
        c
    }
}
