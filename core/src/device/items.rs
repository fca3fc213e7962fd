//! Item rows: how items are stored, looked up and shown.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use crate::codes::{Policy, Programme};
use crate::error::{Error, Result};
use crate::event::ExceptionReason;
use crate::manifest::ItemDetails;
use crate::verifier::Verifier;

/// Where an item stands on this device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ItemState {
    /// Not yet handed over; codes are accepted.
    Pending,
    /// Handed over against the right code.
    HandedOver,
    /// Not handed over at the last visit (codes are still accepted later).
    Exception {
        /// Why.
        reason: ExceptionReason,
    },
    /// Too many wrong codes; only a re-issued code version unlocks it.
    Locked,
}

impl ItemState {
    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            ItemState::Pending => "pending",
            ItemState::HandedOver => "handed_over",
            ItemState::Exception { .. } => "exception",
            ItemState::Locked => "locked",
        }
    }
}

/// An item as the UI shows it.
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
    #[serde(flatten)]
    pub state: ItemState,
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
    pub details: ItemDetails,
    pub state: String,
    pub exception_reason: Option<String>,
    pub attempts: u32,
    pub paid: bool,
    pub upi_requests: u32,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
}

const SELECT: &str = "
SELECT i.manifest_id, m.revision, i.reference, i.code_version, i.policy, i.verifier_salt,
       i.verifier_tag, i.details, i.state, i.exception_reason, i.attempts, i.paid,
       i.upi_requests, m.valid_from, m.valid_until
FROM items i JOIN manifests m ON m.manifest_id = i.manifest_id";

fn corrupt(_: impl std::any::Any) -> Error {
    Error::DatabaseUnusable("stored item cannot be read".into())
}

fn time(ms: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| corrupt(()))
}

type RawRow = (
    (String, i64, String, i64, String, Vec<u8>, Vec<u8>, String),
    (String, Option<String>, i64, i64, i64, i64, i64),
);

fn raw(r: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((
        (
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
            r.get(7)?,
        ),
        (
            r.get(8)?,
            r.get(9)?,
            r.get(10)?,
            r.get(11)?,
            r.get(12)?,
            r.get(13)?,
            r.get(14)?,
        ),
    ))
}

fn decode(row: RawRow) -> Result<ItemRow> {
    let ((manifest_id, revision, reference, code_version, policy, salt, tag, details), rest) = row;
    let (state, exception_reason, attempts, paid, upi_requests, from, until) = rest;
    Ok(ItemRow {
        manifest_id,
        revision: u32::try_from(revision).map_err(corrupt)?,
        reference,
        code_version: u32::try_from(code_version).map_err(corrupt)?,
        policy: serde_json::from_str(&policy).map_err(corrupt)?,
        verifier: Verifier {
            salt: salt.try_into().map_err(corrupt)?,
            tag,
        },
        details: serde_json::from_str(&details).map_err(corrupt)?,
        state,
        exception_reason,
        attempts: u32::try_from(attempts).map_err(corrupt)?,
        paid: paid != 0,
        upi_requests: u32::try_from(upi_requests).map_err(corrupt)?,
        valid_from: time(from)?,
        valid_until: time(until)?,
    })
}

/// The live item with this reference: not withdrawn, from the manifest that
/// starts latest (an article carried over to a new day's manifest).
pub(crate) fn find(conn: &Connection, reference: &str) -> Result<Option<ItemRow>> {
    let sql = format!(
        "{SELECT} WHERE i.reference = ?1 AND i.state != 'withdrawn'
         ORDER BY m.valid_from DESC, m.manifest_id DESC LIMIT 1"
    );
    conn.query_row(&sql, [reference], raw)
        .optional()?
        .map(decode)
        .transpose()
}

/// Every live item, by manifest and reference.
pub(crate) fn all(conn: &Connection) -> Result<Vec<ItemRow>> {
    let sql = format!(
        "{SELECT} WHERE i.state != 'withdrawn' ORDER BY m.valid_from, i.manifest_id, i.rowid"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], raw)?;
    rows.map(|r| decode(r?)).collect()
}

/// The stored row of `reference` in `manifest_id`, whatever its state.
pub(crate) fn get(
    conn: &Connection,
    manifest_id: &str,
    reference: &str,
) -> Result<Option<ItemRow>> {
    let sql = format!("{SELECT} WHERE i.manifest_id = ?1 AND i.reference = ?2");
    conn.query_row(&sql, params![manifest_id, reference], raw)
        .optional()?
        .map(decode)
        .transpose()
}

impl ItemRow {
    pub(crate) fn state(&self) -> Result<ItemState> {
        Ok(match self.state.as_str() {
            "pending" | "withdrawn" => ItemState::Pending,
            "handed_over" => ItemState::HandedOver,
            "locked" => ItemState::Locked,
            "exception" => ItemState::Exception {
                reason: match self.exception_reason.as_deref() {
                    Some("not_home") => ExceptionReason::NotHome,
                    Some("refused") => ExceptionReason::Refused,
                    Some("address_not_found") => ExceptionReason::AddressNotFound,
                    Some("code_not_received") => ExceptionReason::CodeNotReceived,
                    _ => return Err(corrupt(())),
                },
            },
            _ => return Err(corrupt(())),
        })
    }

    pub(crate) fn attempts_left(&self) -> u32 {
        self.policy.max_attempts.saturating_sub(self.attempts)
    }

    pub(crate) fn view(&self) -> Result<ItemView> {
        Ok(ItemView {
            manifest_id: self.manifest_id.clone(),
            revision: self.revision,
            reference: self.reference.clone(),
            programme: self.details.programme(),
            details: self.details.clone(),
            state: self.state()?,
            attempts_left: self.attempts_left(),
            digits: self.policy.digits,
            code_version: self.code_version,
            paid: self.paid,
            valid_from: self.valid_from,
            valid_until: self.valid_until,
        })
    }
}
