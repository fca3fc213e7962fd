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
//! * **5** — `manifests_by_device` on SQLite too (PostgreSQL had it from 1):
//!   the two stores now have the same tables, columns, keys and indexes,
//!   and a test keeps them so.
//! * **6** — simulated (load) devices, last contact, withdrawn items,
//!   cancelled SMS, report views.
//! * **7** — presence evidence: the address's DIGIPIN, each event's
//!   finding and distance.
//! * **8** — `signing_keys`: the office's signing keys over time, each
//!   with the statement that introduced it and when what it signed stops
//!   being accepted (key rotation); `chain_gaps`: ranges of a device's
//!   chain the office lost and the device could no longer resend.
//! * **9** — `staff` (console accounts: role, Argon2id hash, disabled),
//!   `staff_sessions` (by the hash of their token), `sign_in_failures`,
//!   `sms_by_reference` (an item's messages, for its timeline)
//!   and `audit_log` (who did what, when).

use std::sync::LazyLock;

use handover_core::db::Step;
use handover_core::event::{Event, EventBody, EventKind, PaymentMethod};

use super::sql::PgStatements;
use super::{ps, Tx};
use crate::error::Result;

/// The SQLite history, one `-- version N` section per step.
const SQLITE: &str = include_str!("sqlite.sql");
/// The PostgreSQL history, the same versions.
const POSTGRES: &str = include_str!("postgres.sql");

/// The sections of a dialect's file: from each `-- version N` line to the
/// next, in order (the comments before the first are left out).
fn versions(text: &'static str) -> Vec<&'static str> {
    let starts: Vec<usize> = text
        .match_indices("-- version ")
        .map(|(i, _)| i)
        .filter(|&i| i == 0 || text.as_bytes()[i - 1] == b'\n')
        .collect();
    starts
        .iter()
        .enumerate()
        .map(|(k, &start)| &text[start..starts.get(k + 1).copied().unwrap_or(text.len())])
        .collect()
}

/// The migration steps: `STEPS[i]` takes a database from version `i` to
/// `i + 1`. Public so tests can build a database as an earlier version left it.
pub static STEPS: LazyLock<Vec<Step>> = LazyLock::new(|| {
    versions(SQLITE)
        .into_iter()
        .enumerate()
        .map(|(i, sql)| Step {
            sql,
            then: (i == 1).then_some(backfill_v2_sqlite as SqliteThen),
        })
        .collect()
});

type SqliteThen = fn(&rusqlite::Transaction<'_>) -> handover_core::Result<()>;

/// Schema version this build writes.
pub const VERSION: i64 = 9;

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
static PG_STEPS: LazyLock<Vec<PgStep>> = LazyLock::new(|| {
    versions(POSTGRES)
        .into_iter()
        .enumerate()
        .map(|(i, sql)| PgStep {
            sql,
            then: (i == 1).then_some(backfill_v2 as fn(&mut Tx<'_, '_>) -> Result<()>),
        })
        .collect()
});

/// The lock every migrating process takes, so one migrates at a time.
const PG_MIGRATION_LOCK: i64 = 0x68616e646f766572; // "handover"

/// Bring a PostgreSQL store to [`VERSION`], one transaction per step.
pub(crate) fn migrate_postgres(
    client: &mut postgres::Client,
    statements: &mut PgStatements,
) -> Result<()> {
    migrate_postgres_up_to(client, statements, PG_STEPS.len())
}

/// Bring a PostgreSQL store to version `target`, one transaction per step,
/// each under an advisory lock and re-reading the version inside it, so
/// servers starting together migrate once. A store newer than this build
/// is refused.
fn migrate_postgres_up_to(
    client: &mut postgres::Client,
    statements: &mut PgStatements,
    target: usize,
) -> Result<()> {
    let known = PG_STEPS.len() as i64;
    for (i, step) in PG_STEPS.iter().enumerate().take(target) {
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
    let mut client = super::connect(url)?;
    let mut statements = PgStatements::default();
    migrate_postgres_up_to(
        &mut client,
        &mut statements,
        usize::try_from(target).unwrap_or(0),
    )
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_dialect_has_every_version_in_order() {
        for text in [SQLITE, POSTGRES] {
            let sections = versions(text);
            assert_eq!(sections.len() as i64, VERSION);
            for (i, section) in sections.iter().enumerate() {
                assert!(
                    section.starts_with(&format!("-- version {}:", i + 1)),
                    "{section}"
                );
            }
        }
    }
}
