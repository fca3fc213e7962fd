//! Manifest import and the revision rules.
//!
//! In order: the envelope's signature against the pinned office keys (before
//! any parsing), the payload's own validation, the device id, the validity
//! window (a manifest whose window has closed is refused; one that has not
//! opened yet may be loaded the evening before), then the revision against
//! what the device holds, **tombstones of purged manifests included**:
//!
//! * no manifest with that id: every item is added as pending;
//! * the same revision with the same bytes (by hash, for a tombstone):
//!   nothing happens;
//! * the same revision with other bytes, or an older one: refused;
//! * a newer revision: each item follows the state table of
//!   [`ItemState::revise`](super::ItemState) — recorded outcomes are never
//!   rewritten, a locked item unlocks only with a higher `code_version`,
//!   items left out are withdrawn (kept, with their attempts).
//!
//! Before anything is written, every item is checked against every item the
//! device holds for the same programme, reference and code version: the
//! verifier and policy must be the same, or the import is refused
//! ([`Error::VerifierChanged`]). A verifier never changes while its code
//! does not.
//!
//! All of it, and the `manifest_imported` event, in one transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;

use super::items::{self, ItemState, Revision};
use super::schema::sealed_hash;
use super::{trusted_keys, Device};
use crate::error::{Error, Result};
use crate::event::EventKind;
use crate::manifest::{Item, Manifest};
use crate::rules::later;

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
        let trusted = trusted_keys(&self.lock(), Some(now))?;
        if trusted.is_empty() {
            return Err(Error::UntrustedKey);
        }
        let manifest = Manifest::open(sealed, &trusted)?;
        if manifest.device_id != self.device_id {
            return Err(Error::WrongDevice);
        }
        if now > later(manifest.valid_until, self.options.clock_tolerance) {
            return Err(Error::ManifestExpired);
        }
        let hash = sealed_hash(sealed);
        self.write(now, |tx| {
            let held: Option<(i64, Vec<u8>)> = tx
                .query_row(
                    "SELECT revision, sealed_hash FROM manifests WHERE manifest_id = ?1",
                    [&manifest.manifest_id],
                    |r| Ok((r.get("revision")?, r.get("sealed_hash")?)),
                )
                .optional()?;
            if let Some((held_rev, held_hash)) = &held {
                let held_rev = u32::try_from(*held_rev).unwrap_or(u32::MAX);
                if held_rev == manifest.revision && held_hash[..] == hash[..] {
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
            }
            let policies = policy_json(&manifest)?;
            // Only a reference held already (under any manifest) can
            // conflict: found in a few statements, not one per item.
            let known =
                items::held_references(tx, manifest.items.iter().map(|i| i.reference.as_str()))?;
            for item in manifest
                .items
                .iter()
                .filter(|i| known.contains(&i.reference))
            {
                let policy = policy_of(&policies, item)?;
                if items::verifier_conflicts(tx, manifest.programme, item, policy)? {
                    return Err(Error::VerifierChanged);
                }
            }
            tx.execute(
                "INSERT INTO manifests (manifest_id, revision, programme, valid_from, valid_until,
                     sealed, sealed_hash, imported_at, purged_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL)
                 ON CONFLICT(manifest_id) DO UPDATE SET revision = excluded.revision,
                     valid_from = excluded.valid_from, valid_until = excluded.valid_until,
                     sealed = excluded.sealed, sealed_hash = excluded.sealed_hash,
                     imported_at = excluded.imported_at, purged_at = NULL",
                params![
                    manifest.manifest_id,
                    manifest.revision,
                    manifest.programme.as_str(),
                    manifest.valid_from.timestamp_millis(),
                    manifest.valid_until.timestamp_millis(),
                    sealed,
                    &hash[..],
                    now.timestamp_millis()
                ],
            )?;
            revise_items(tx, &manifest, &policies)?;
            let items = u32::try_from(manifest.items.len()).unwrap_or(u32::MAX);
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

/// Each policy of the manifest as the JSON items store.
fn policy_json(manifest: &Manifest) -> Result<HashMap<String, String>> {
    manifest
        .policies
        .iter()
        .map(|(name, p)| {
            let json = serde_json::to_string(p).map_err(|_| Error::Encoding("policy"))?;
            Ok((name.clone(), json))
        })
        .collect()
}

fn policy_of<'a>(policies: &'a HashMap<String, String>, item: &Item) -> Result<&'a str> {
    policies
        .get(&item.policy)
        .map(String::as_str)
        .ok_or(Error::invalid(
            "item policy",
            "names no policy of the manifest",
        ))
}

/// Apply the revision table to every item held under the manifest id and
/// every item the revision lists.
fn revise_items(
    tx: &Transaction<'_>,
    manifest: &Manifest,
    policies: &HashMap<String, String>,
) -> Result<()> {
    let offered: HashMap<&str, &Item> = manifest
        .items
        .iter()
        .map(|i| (i.reference.as_str(), i))
        .collect();
    let held: std::collections::HashSet<String> = {
        let mut stmt = tx.prepare("SELECT reference FROM items WHERE manifest_id = ?1")?;
        let rows = stmt.query_map([&manifest.manifest_id], |r| r.get("reference"))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for reference in held.iter().filter(|r| !offered.contains_key(r.as_str())) {
        if let Some(row) = items::get(tx, &manifest.manifest_id, reference)? {
            if let Revision::Take { state, .. } = row.state.revise(row.code_version, None) {
                tx.execute(
                    "UPDATE items SET state = ?3 WHERE manifest_id = ?1 AND reference = ?2",
                    params![manifest.manifest_id, reference, state],
                )?;
            }
        }
    }
    for item in &manifest.items {
        let details =
            serde_json::to_string(&item.details).map_err(|_| Error::Encoding("item details"))?;
        // Only an item this manifest id holds already has a row to revise
        // (none, on the day's first import: no query per item).
        let row = if held.contains(item.reference.as_str()) {
            items::get(tx, &manifest.manifest_id, &item.reference)?
        } else {
            None
        };
        let revision = match row {
            None => Revision::Take {
                state: ItemState::Pending,
                reset: true,
            },
            Some(row) => {
                if row.details.is_none() {
                    // A tombstone's details come back with the new revision.
                    tx.execute(
                        "UPDATE items SET details = ?3 WHERE manifest_id = ?1 AND reference = ?2",
                        params![manifest.manifest_id, item.reference, details],
                    )?;
                }
                row.state.revise(row.code_version, Some(item.code_version))
            }
        };
        let Revision::Take { state, reset } = revision else {
            continue;
        };
        // A reference new to this manifest id is a plain insert (the
        // manifest's references are unique: `Manifest::open` checked);
        // a held one is revised in place. Both prepared once per
        // connection, as every statement run per item, and both take the
        // same nine values (`0 * ?9`: a new item's attempts start at 0).
        macro_rules! insert {
            ($attempts:literal) => {
                concat!(
                    "INSERT INTO items (manifest_id, reference, code_version, policy, \
                     verifier_salt, verifier_tag, details, state, attempts) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ",
                    $attempts,
                    ")"
                )
            };
        }
        let sql = if held.contains(item.reference.as_str()) {
            concat!(
                insert!("0"),
                " ON CONFLICT(manifest_id, reference) DO UPDATE SET \
                 code_version = excluded.code_version, policy = excluded.policy, \
                 verifier_salt = excluded.verifier_salt, verifier_tag = excluded.verifier_tag, \
                 details = excluded.details, state = excluded.state, \
                 attempts = CASE WHEN ?9 THEN 0 ELSE items.attempts END"
            )
        } else {
            insert!("0 * ?9")
        };
        tx.prepare_cached(sql)?.execute(params![
            manifest.manifest_id,
            item.reference,
            item.code_version,
            policy_of(policies, item)?,
            &item.verifier.salt[..],
            item.verifier.tag,
            details,
            state,
            reset
        ])?;
    }
    Ok(())
}
