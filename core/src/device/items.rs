//! Items: their state machine, how they are stored, looked up and shown.
//!
//! An item's life, one state at a time ([`ItemState`]):
//!
//! ```text
//!            right code                 wrong code, last attempt
//! pending ──────────────▶ handed_over   pending ─────────────────▶ locked
//!    │  ▲                               exception ───────────────▶ locked
//!    │  │ later visit, right code ──▶ handed_over
//!    ▼  │
//! exception (not at home, refused, …)   locked ── new code version ──▶ pending
//!
//! pending / exception ── left out of a newer revision ──▶ withdrawn ── listed again ──▶ pending
//! ```
//!
//! `handed_over` is final: nothing reopens it. A revision's effect on a held
//! item is one table, [`ItemState::revise`]; the doorstep's transitions are
//! [`ItemState::hand_over`], [`ItemState::fail_attempt`] and
//! [`ItemState::record_exception`].

use chrono::{DateTime, Utc};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use crate::codes::{Policy, Programme};
use crate::error::{Error, Result};
use crate::event::ExceptionReason;
use crate::manifest::{Item, ItemDetails};
use crate::verifier::Verifier;

/// Where an item stands on this device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum ItemState {
    /// Not yet handed over; codes are accepted.
    Pending,
    /// Handed over against the right code. Final.
    HandedOver,
    /// Not handed over at the last visit; codes are still accepted later.
    Exception,
    /// Too many wrong codes; only a new code version unlocks it.
    Locked,
    /// Left out of a newer revision: kept, with its attempts, but not offered.
    Withdrawn,
}

/// What a manifest revision does to an item already held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Revision {
    /// Nothing changes (a recorded outcome, or an older code version).
    Keep,
    /// Take the revision's item (code version, verifier, details) in this
    /// state; `reset` clears the attempts (a new code version).
    Take {
        /// The state afterwards.
        state: ItemState,
        /// Whether the attempt count starts again.
        reset: bool,
    },
}

impl ItemState {
    /// The snake_case name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemState::Pending => "pending",
            ItemState::HandedOver => "handed_over",
            ItemState::Exception => "exception",
            ItemState::Locked => "locked",
            ItemState::Withdrawn => "withdrawn",
        }
    }

    fn parse(s: &str) -> Option<ItemState> {
        [
            ItemState::Pending,
            ItemState::HandedOver,
            ItemState::Exception,
            ItemState::Locked,
            ItemState::Withdrawn,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }

    /// Whether a code may be tried: pending, or after an exception.
    pub fn accepts_codes(self) -> bool {
        matches!(self, ItemState::Pending | ItemState::Exception)
    }

    /// After the right code.
    pub(crate) fn hand_over(self) -> Result<ItemState> {
        if self.accepts_codes() {
            Ok(ItemState::HandedOver)
        } else {
            Err(Error::NotAllowed("the item does not take codes now"))
        }
    }

    /// After a wrong code that leaves `attempts_left`.
    pub(crate) fn fail_attempt(self, attempts_left: u32) -> ItemState {
        if attempts_left == 0 {
            ItemState::Locked
        } else {
            self
        }
    }

    /// After an exception was recorded: a locked item stays locked, the
    /// exception is on record either way; a handed-over item takes none.
    pub(crate) fn record_exception(self) -> Result<ItemState> {
        match self {
            ItemState::HandedOver => Err(Error::NotAllowed("item was already handed over")),
            ItemState::Withdrawn => Err(Error::UnknownItem),
            ItemState::Locked => Ok(ItemState::Locked),
            ItemState::Pending | ItemState::Exception => Ok(ItemState::Exception),
        }
    }

    /// The revision rules, one table. `offered` is the revision's code
    /// version of the item, `None` when the revision leaves it out.
    ///
    /// | held \ offered | older version | same version | newer version | left out |
    /// |---|---|---|---|---|
    /// | pending | keep | pending | pending, attempts reset | withdrawn |
    /// | exception | keep | exception | exception, attempts reset | withdrawn |
    /// | locked | keep | keep (still locked) | pending, attempts reset | keep |
    /// | handed_over | keep | keep | keep | keep |
    /// | withdrawn | keep | pending | pending, attempts reset | keep |
    ///
    /// A same version whose verifier or policy differs is refused before
    /// this table is consulted ([`Error::VerifierChanged`]).
    pub(crate) fn revise(self, held_version: u32, offered: Option<u32>) -> Revision {
        use ItemState::*;
        let Some(offered) = offered else {
            return match self {
                Pending | Exception => Revision::Take {
                    state: Withdrawn,
                    reset: false,
                },
                _ => Revision::Keep,
            };
        };
        if offered < held_version {
            return Revision::Keep;
        }
        let newer = offered > held_version;
        match (self, newer) {
            (HandedOver, _) | (Locked, false) => Revision::Keep,
            (Locked | Pending | Withdrawn, _) => Revision::Take {
                state: Pending,
                reset: newer,
            },
            (Exception, _) => Revision::Take {
                state: Exception,
                reset: newer,
            },
        }
    }
}

impl ToSql for ItemState {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for ItemState {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let s = value.as_str()?;
        ItemState::parse(s).ok_or(FromSqlError::InvalidType)
    }
}

impl ToSql for ExceptionReason {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for ExceptionReason {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        ExceptionReason::parse(value.as_str()?).ok_or(FromSqlError::InvalidType)
    }
}

/// An item as the UI shows it. Its JSON (`device list --json`) carries
/// `reason` only for an item in the `exception` state.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ItemView {
    /// Manifest holding it.
    pub manifest_id: String,
    /// Revision of that manifest.
    pub revision: u32,
    /// Article number or appointment id.
    pub reference: String,
    /// Programme.
    pub programme: Programme,
    /// What the doorstep needs.
    pub details: ItemDetails,
    /// State.
    pub state: ItemState,
    /// Why it was not handed over, when `state` is `exception`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<ExceptionReason>,
    /// Wrong codes still allowed before it locks.
    pub attempts_left: u32,
    /// Digits the code has.
    pub digits: u8,
    /// Code version in force.
    pub code_version: u32,
    /// Whether cash on delivery has been recorded as paid.
    pub paid: bool,
    /// Start of the manifest's window.
    pub valid_from: DateTime<Utc>,
    /// End of the manifest's window.
    pub valid_until: DateTime<Utc>,
}

/// Everything stored about an item, for the store's own use.
#[derive(Clone, Debug)]
pub(crate) struct ItemRow {
    pub manifest_id: String,
    pub revision: u32,
    pub reference: String,
    pub code_version: u32,
    pub policy: Policy,
    pub verifier: Verifier,
    /// `None` once the manifest is purged (a tombstone).
    pub details: Option<ItemDetails>,
    pub state: ItemState,
    pub exception_reason: Option<ExceptionReason>,
    pub attempts: u32,
    pub paid: bool,
    pub upi_requests: u32,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
}

const SELECT: &str = "
SELECT i.manifest_id AS manifest_id, m.revision AS revision, i.reference AS reference,
       i.code_version AS code_version, i.policy AS policy, i.verifier_salt AS verifier_salt,
       i.verifier_tag AS verifier_tag, i.details AS details, i.state AS state,
       i.exception_reason AS exception_reason, i.attempts AS attempts, i.paid AS paid,
       i.upi_requests AS upi_requests, m.valid_from AS valid_from, m.valid_until AS valid_until
FROM items i JOIN manifests m ON m.manifest_id = i.manifest_id";

fn corrupt(_: impl std::any::Any) -> Error {
    Error::DatabaseUnusable("stored item cannot be read".into())
}

fn time(ms: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| corrupt(()))
}

/// The columns of one row, read by name; decoded by [`decode`].
struct RawRow {
    manifest_id: String,
    revision: i64,
    reference: String,
    code_version: i64,
    policy: String,
    salt: Vec<u8>,
    tag: Vec<u8>,
    details: Option<String>,
    state: ItemState,
    exception_reason: Option<ExceptionReason>,
    attempts: i64,
    paid: bool,
    upi_requests: i64,
    valid_from: i64,
    valid_until: i64,
}

fn raw(r: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        manifest_id: r.get("manifest_id")?,
        revision: r.get("revision")?,
        reference: r.get("reference")?,
        code_version: r.get("code_version")?,
        policy: r.get("policy")?,
        salt: r.get("verifier_salt")?,
        tag: r.get("verifier_tag")?,
        details: r.get("details")?,
        state: r.get("state")?,
        exception_reason: r.get("exception_reason")?,
        attempts: r.get("attempts")?,
        paid: r.get("paid")?,
        upi_requests: r.get("upi_requests")?,
        valid_from: r.get("valid_from")?,
        valid_until: r.get("valid_until")?,
    })
}

fn decode(row: RawRow) -> Result<ItemRow> {
    Ok(ItemRow {
        manifest_id: row.manifest_id,
        revision: u32::try_from(row.revision).map_err(corrupt)?,
        reference: row.reference,
        code_version: u32::try_from(row.code_version).map_err(corrupt)?,
        policy: serde_json::from_str(&row.policy).map_err(corrupt)?,
        verifier: Verifier {
            salt: row.salt.try_into().map_err(corrupt)?,
            tag: row.tag,
        },
        details: row
            .details
            .map(|d| serde_json::from_str(&d))
            .transpose()
            .map_err(corrupt)?,
        state: row.state,
        exception_reason: row.exception_reason,
        attempts: u32::try_from(row.attempts).map_err(corrupt)?,
        paid: row.paid,
        upi_requests: u32::try_from(row.upi_requests).map_err(corrupt)?,
        valid_from: time(row.valid_from)?,
        valid_until: time(row.valid_until)?,
    })
}

/// The live item with this reference: not withdrawn, not purged, from the
/// manifest that starts latest (an article carried over to a new day's
/// manifest).
pub(crate) fn find(conn: &Connection, reference: &str) -> Result<Option<ItemRow>> {
    let sql = format!(
        "{SELECT} WHERE i.reference = ?1 AND i.state != 'withdrawn' AND m.purged_at IS NULL
         AND i.details IS NOT NULL
         ORDER BY m.valid_from DESC, m.manifest_id DESC LIMIT 1"
    );
    conn.prepare_cached(&sql)?
        .query_row([reference], raw)
        .optional()?
        .map(decode)
        .transpose()
}

/// Every live item, by manifest and reference.
pub(crate) fn all(conn: &Connection) -> Result<Vec<ItemRow>> {
    let sql = format!(
        "{SELECT} WHERE i.state != 'withdrawn' AND m.purged_at IS NULL AND i.details IS NOT NULL
         ORDER BY m.valid_from, i.manifest_id, i.rowid"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], raw)?;
    rows.map(|r| decode(r?)).collect()
}

/// The stored row of `reference` in `manifest_id`, whatever its state,
/// tombstones included.
pub(crate) fn get(
    conn: &Connection,
    manifest_id: &str,
    reference: &str,
) -> Result<Option<ItemRow>> {
    let sql = format!("{SELECT} WHERE i.manifest_id = ?1 AND i.reference = ?2");
    conn.prepare_cached(&sql)?
        .query_row(params![manifest_id, reference], raw)
        .optional()?
        .map(decode)
        .transpose()
}

/// Which of `references` the store holds an item of, under any manifest
/// (tombstones included): a few statements of up to 500 references each.
pub(crate) fn held_references<'r>(
    conn: &Connection,
    references: impl Iterator<Item = &'r str>,
) -> Result<std::collections::HashSet<String>> {
    const CHUNK: usize = 500;
    let references: Vec<&str> = references.collect();
    let mut held = std::collections::HashSet::new();
    for chunk in references.chunks(CHUNK) {
        let marks = vec!["?"; chunk.len()].join(",");
        let sql = format!("SELECT DISTINCT reference FROM items WHERE reference IN ({marks})");
        let mut st = conn.prepare_cached(&sql)?;
        let rows = st.query_map(rusqlite::params_from_iter(chunk), |r| r.get::<_, String>(0))?;
        for r in rows {
            held.insert(r?);
        }
    }
    Ok(held)
}

/// Whether any manifest held (tombstones included) gives `reference` of
/// `programme` at `code_version` another verifier or policy than `item`'s.
pub(crate) fn verifier_conflicts(
    conn: &Connection,
    programme: Programme,
    item: &Item,
    policy_json: &str,
) -> Result<bool> {
    // Prepared once per connection: an import asks this of every item.
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM items i JOIN manifests m ON m.manifest_id = i.manifest_id
             WHERE i.reference = ?1 AND i.code_version = ?2 AND m.programme = ?3
             AND (i.verifier_salt != ?4 OR i.verifier_tag != ?5 OR i.policy != ?6))",
        )?
        .query_row(
            params![
                item.reference,
                item.code_version,
                programme.as_str(),
                &item.verifier.salt[..],
                item.verifier.tag,
                policy_json
            ],
            |r| r.get(0),
        )?)
}

impl ItemRow {
    pub(crate) fn attempts_left(&self) -> u32 {
        self.policy.max_attempts.saturating_sub(self.attempts)
    }

    /// The item's details; a tombstone has none.
    pub(crate) fn details(&self) -> Result<&ItemDetails> {
        self.details.as_ref().ok_or(Error::UnknownItem)
    }

    pub(crate) fn view(&self) -> Result<ItemView> {
        let details = self.details()?.clone();
        Ok(ItemView {
            manifest_id: self.manifest_id.clone(),
            revision: self.revision,
            reference: self.reference.clone(),
            programme: details.programme(),
            details,
            state: self.state,
            reason: match self.state {
                ItemState::Exception => self.exception_reason,
                _ => None,
            },
            attempts_left: self.attempts_left(),
            digits: self.policy.digits,
            code_version: self.code_version,
            paid: self.paid,
            valid_from: self.valid_from,
            valid_until: self.valid_until,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ItemState::*;

    #[test]
    fn the_revision_table() {
        let take = |state, reset| Revision::Take { state, reset };
        // (held, held version, offered) -> outcome
        let cases = [
            (Pending, 2, Some(1), Revision::Keep),
            (Pending, 2, Some(2), take(Pending, false)),
            (Pending, 2, Some(3), take(Pending, true)),
            (Pending, 2, None, take(Withdrawn, false)),
            (Exception, 2, Some(2), take(Exception, false)),
            (Exception, 2, Some(3), take(Exception, true)),
            (Exception, 2, None, take(Withdrawn, false)),
            (Locked, 2, Some(2), Revision::Keep),
            (Locked, 2, Some(3), take(Pending, true)),
            (Locked, 2, None, Revision::Keep),
            (HandedOver, 2, Some(3), Revision::Keep),
            (HandedOver, 2, None, Revision::Keep),
            (Withdrawn, 2, Some(2), take(Pending, false)),
            (Withdrawn, 2, Some(3), take(Pending, true)),
            (Withdrawn, 2, Some(1), Revision::Keep),
            (Withdrawn, 2, None, Revision::Keep),
        ];
        for (held, v, offered, want) in cases {
            assert_eq!(
                held.revise(v, offered),
                want,
                "{held:?} v{v} offered {offered:?}"
            );
        }
    }

    #[test]
    fn doorstep_transitions() {
        assert_eq!(Pending.hand_over().unwrap(), HandedOver);
        assert_eq!(Exception.hand_over().unwrap(), HandedOver);
        for s in [HandedOver, Locked, Withdrawn] {
            assert!(s.hand_over().is_err());
        }
        assert_eq!(Pending.fail_attempt(1), Pending);
        assert_eq!(Exception.fail_attempt(0), Locked);
        assert_eq!(Locked.record_exception().unwrap(), Locked);
        assert_eq!(Pending.record_exception().unwrap(), Exception);
        assert!(HandedOver.record_exception().is_err());
        for s in [Pending, HandedOver, Exception, Locked, Withdrawn] {
            assert_eq!(ItemState::parse(s.as_str()), Some(s));
        }
    }
}
