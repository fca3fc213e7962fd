//! Manifest import and the revision rules.
//!
//! In order: the envelope's signature against the pinned office keys (before
//! any parsing), the payload's own validation, the device id, the validity
//! window (a manifest whose window has closed is refused; one that has not
//! opened yet may be loaded the evening before), then the revision:
//!
//! * no manifest with that id: every item is added as pending;
//! * an older revision held: pending items are replaced, recorded outcomes
//!   are never rewritten, a locked item unlocks only with a higher
//!   `code_version`, and items left out are withdrawn (kept, with their
//!   attempt counts, but no longer offered);
//! * the same revision with the same bytes: nothing happens;
//! * the same revision with other bytes, or an older one: refused.
//!
//! All of it, and the `manifest_imported` event, in one transaction.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;

use super::{items, trusted_keys, Device};
use crate::error::{Error, Result};
use crate::event::EventKind;
use crate::manifest::{Item, Manifest};

/// What an import did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ImportOutcome {
    /// The manifest (or a newer revision of it) was stored.
    Imported {
        /// Manifest id.
        manifest_id: String,
        /// Revision stored.
        revision: u32,
        /// Items it holds.
        items: u32,
        /// Seq of the `manifest_imported` event.
        seq: u64,
    },
    /// The identical manifest was already held: nothing changed.
    Unchanged {
        /// Manifest id.
        manifest_id: String,
        /// Revision held.
        revision: u32,
    },
}

impl Device {
    /// Import a sealed manifest (see the module docs for the rules).
    pub fn import_manifest(&self, sealed: &[u8], now: DateTime<Utc>) -> Result<ImportOutcome> {
        let trusted = trusted_keys(&self.lock())?;
        if trusted.is_empty() {
            return Err(Error::UntrustedKey);
        }
        let manifest = Manifest::open(sealed, &trusted)?;
        if manifest.device_id != self.device_id {
            return Err(Error::WrongDevice);
        }
        if now > manifest.valid_until + self.options.clock_tolerance {
            return Err(Error::ManifestExpired);
        }
        self.write(now, |tx| {
            let held: Option<(i64, Vec<u8>)> = tx
                .query_row(
                    "SELECT revision, sealed FROM manifests WHERE manifest_id = ?1",
                    [&manifest.manifest_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if let Some((held_rev, held_bytes)) = held {
                let held_rev = u32::try_from(held_rev).unwrap_or(u32::MAX);
                if held_rev == manifest.revision && held_bytes == sealed {
                    return Ok(ImportOutcome::Unchanged {
                        manifest_id: manifest.manifest_id.clone(),
                        revision: held_rev,
                    });
                }
                if held_rev >= manifest.revision {
                    return Err(Error::StaleRevision {
                        held: held_rev,
                        offered: manifest.revision,
                    });
                }
                tx.execute(
                    "UPDATE manifests SET revision = ?2, valid_from = ?3, valid_until = ?4,
                         sealed = ?5, imported_at = ?6 WHERE manifest_id = ?1",
                    params![
                        manifest.manifest_id,
                        manifest.revision,
                        manifest.valid_from.timestamp_millis(),
                        manifest.valid_until.timestamp_millis(),
                        sealed,
                        now.timestamp_millis()
                    ],
                )?;
            } else {
                tx.execute(
                    "INSERT INTO manifests (manifest_id, revision, programme, valid_from,
                         valid_until, sealed, imported_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        manifest.manifest_id,
                        manifest.revision,
                        manifest.programme.as_str(),
                        manifest.valid_from.timestamp_millis(),
                        manifest.valid_until.timestamp_millis(),
                        sealed,
                        now.timestamp_millis()
                    ],
                )?;
            }
            // Withdraw what the new revision leaves out; the rows (and their
            // attempt counts) stay, so re-adding an item cannot reset them.
            let listed: std::collections::HashSet<&str> =
                manifest.items.iter().map(|i| i.reference.as_str()).collect();
            let mut stmt = tx.prepare(
                "SELECT reference FROM items WHERE manifest_id = ?1
                 AND state IN ('pending', 'exception')",
            )?;
            let open: Vec<String> = stmt
                .query_map([&manifest.manifest_id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            drop(stmt);
            for reference in open.iter().filter(|r| !listed.contains(r.as_str())) {
                tx.execute(
                    "UPDATE items SET state = 'withdrawn' WHERE manifest_id = ?1 AND reference = ?2",
                    params![manifest.manifest_id, reference],
                )?;
            }
            for item in &manifest.items {
                upsert_item(tx, &manifest, item)?;
            }
            let items = manifest.items.len() as u32;
            let event = self.append(
                tx,
                now,
                EventKind::ManifestImported {
                    manifest_id: manifest.manifest_id.clone(),
                    revision: manifest.revision,
                    items,
                },
            )?;
            Ok(ImportOutcome::Imported {
                manifest_id: manifest.manifest_id.clone(),
                revision: manifest.revision,
                items,
                seq: event.seq,
            })
        })
    }
}

fn upsert_item(tx: &Transaction<'_>, manifest: &Manifest, item: &Item) -> Result<()> {
    let policy = item.policy_in(manifest)?;
    let policy_json = serde_json::to_string(policy).map_err(|_| Error::Encoding("policy"))?;
    let details_json =
        serde_json::to_string(&item.details).map_err(|_| Error::Encoding("item details"))?;
    let existing = items::get(tx, &manifest.manifest_id, &item.reference)?;
    let replace = |state: &str, attempts: u32| -> Result<()> {
        tx.execute(
            "INSERT INTO items (manifest_id, reference, code_version, policy, verifier_salt,
                 verifier_tag, details, state, attempts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT(manifest_id, reference) DO UPDATE SET
                 code_version = excluded.code_version, policy = excluded.policy,
                 verifier_salt = excluded.verifier_salt, verifier_tag = excluded.verifier_tag,
                 details = excluded.details, state = excluded.state,
                 attempts = excluded.attempts",
            params![
                manifest.manifest_id,
                item.reference,
                item.code_version,
                policy_json,
                &item.verifier.salt[..],
                item.verifier.tag,
                details_json,
                state,
                attempts
            ],
        )?;
        Ok(())
    };
    let Some(old) = existing else {
        return replace("pending", 0);
    };
    if item.code_version < old.code_version {
        // A revision never takes an item back to an older code.
        return Ok(());
    }
    let new_version = item.code_version > old.code_version;
    match old.state.as_str() {
        // A recorded handover is never rewritten.
        "handed_over" => Ok(()),
        // Only a re-issued code (and a new SMS) unlocks.
        "locked" if new_version => replace("pending", 0),
        "locked" => Ok(()),
        // Exceptions stay on record; the item stays open for a later visit.
        "exception" => replace("exception", if new_version { 0 } else { old.attempts }),
        _ => replace("pending", if new_version { 0 } else { old.attempts }),
    }
}
