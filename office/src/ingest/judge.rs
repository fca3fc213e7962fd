//! Verdicts: what the office knows about a batch's items, read once per
//! batch, and the verdict of each new event against it.
//!
//! 1. [`Known::load`] reads, in a handful of statements whatever the
//!    batch's length, everything the verdicts of its new events depend on:
//!    the items of the manifests they name (issued to this device), the
//!    code versions of those items, this device's earlier locks, wrong
//!    codes and manifest imports, and every device's verified handovers
//!    and recorded payments of those items.
//! 2. [`Known::judge`] gives an event its verdict (the table in the
//!    [module docs](super)), from that knowledge alone.
//! 3. [`Known::note`] adds the event, once judged, to the knowledge, so the
//!    next event of the same batch sees it exactly as if it had been read
//!    from the store: a second handover of an item in one batch is a
//!    `duplicate`, a fourth wrong code `attempts_exceeded`.
//!
//! ## The office is no oracle
//!
//! The office answers every handover with its verdict, so a device whose
//! key is in an insider's hands could ask it about every candidate code of
//! an item (10,000 for a 4-digit code, the few hundred a truncated tag
//! leaves for a post item) and keep the one it calls `verified`. Two rules
//! leave the insider the one guess an honest device makes:
//!
//! * **One handover per item per device.** An honest device never hands an
//!   item over twice (it is `AlreadyDone` at the door), so a second
//!   handover of an item by the device that handed it over before is
//!   `duplicate` whatever its code, and flags the device.
//! * **The policy's attempt limit, counted by the office.** The device's
//!   own `attempt_failed` events and its `code_mismatch` handovers of one
//!   (item, code version) count against the version's `max_attempts`;
//!   beyond it a handover is `attempts_exceeded` whatever its code (no
//!   confirmation, no certificate), and flags the device.
//!
//! Both verdicts are decided before the code is looked at, so they say
//! nothing about it. The device is flagged `code_guessing` (a flag is
//! never overwritten); the events, stored with their verdicts, are the
//! evidence.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use handover_core::codes::{derive_code, Policy, Programme};

use crate::keystore::CodeKeys;
use handover_core::event::{EventBody, EventKind, PaymentMethod};
use handover_core::manifest::ItemDetails;
use handover_core::rules::{clock_tolerance, constant_time_eq, earlier, later};
use handover_core::sync::Verdict;

use crate::error::{Error, Result};
use crate::from_ms;
use crate::language::Language;
use crate::store::sql::P;
use crate::store::{ps, Tx};

/// An item of a manifest issued to the device.
pub(super) struct Item {
    pub programme: Programme,
    valid_from: DateTime<Utc>,
    valid_until: DateTime<Utc>,
    pub details: ItemDetails,
    pub mobile: String,
    pub language: Language,
    /// The address's DIGIPIN, when the bookings gave one.
    pub digipin: Option<String>,
}

/// A code version of an item: the policy and key it was issued under.
struct CodeVersion {
    policy: Policy,
    key_id: String,
}

/// What the verdicts of one batch's new events depend on.
#[derive(Default)]
pub(super) struct Known {
    /// (manifest, reference) → the item, for manifests issued to the device.
    items: HashMap<(String, String), Item>,
    /// (programme, reference, version) → the code version.
    codes: HashMap<(Programme, String, u32), CodeVersion>,
    /// (programme, reference) → the latest code version issued.
    latest: HashMap<(Programme, String), u32>,
    /// (reference, version) this device locked.
    locked: HashSet<(String, u32)>,
    /// (reference, version) → this device's wrong codes: its
    /// `attempt_failed` events and its `code_mismatch` handovers.
    attempts: HashMap<(String, u32), i64>,
    /// References this device has handed over before, whatever the verdict.
    handed: HashSet<String>,
    /// A handover of this batch asked the office about a code it may no
    /// longer be asked about: the device is flagged `code_guessing`.
    pub guessing: bool,
    /// (manifest, revision) this device imported.
    imported: HashSet<(String, u32)>,
    /// (programme, reference) verified by any device.
    verified: HashSet<(Programme, String)>,
    /// References whose cash on delivery any device recorded.
    paid: HashSet<String>,
}

/// A set of keys as parameters.
fn keys<'a>(set: &BTreeSet<&'a str>) -> Vec<P<'a>> {
    set.iter().map(|r| P::from(*r)).collect()
}

fn version(v: i64) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Store("a stored code version is out of range"))
}

impl Known {
    /// Read what the verdicts of `bodies` (a batch's new events, in order)
    /// depend on.
    pub(super) fn load(
        tx: &mut Tx<'_, '_>,
        device_id: &str,
        bodies: &[&EventBody],
    ) -> Result<Known> {
        let mut known = Known::default();
        // The items each manifest's events name, and the manifests imported.
        let mut by_manifest: HashMap<&str, BTreeSet<&str>> = HashMap::new();
        let mut references: BTreeSet<&str> = BTreeSet::new();
        let mut imports: BTreeSet<&str> = BTreeSet::new();
        for body in bodies {
            match (&body.kind, body.kind.subject()) {
                (EventKind::ManifestImported { manifest_id, .. }, _) => {
                    imports.insert(manifest_id);
                }
                (_, (Some(manifest), Some(reference))) => {
                    by_manifest.entry(manifest).or_default().insert(reference);
                    references.insert(reference);
                }
                _ => {}
            }
        }

        // The items, each with every code version of its reference: the
        // codes come through the item (by manifest, the items' own key), so
        // the plan never depends on how many codes the office holds.
        for (manifest, refs) in &by_manifest {
            let rows = tx.all_in(
                "SELECT i.reference AS reference, i.programme AS programme,
                        m.valid_from AS valid_from, m.valid_until AS valid_until,
                        i.details AS details, i.mobile AS mobile, i.language AS language,
                        i.digipin AS digipin,
                        c.code_version AS code_version, c.policy AS policy,
                        c.code_key_id AS code_key_id
                 FROM items i JOIN manifests m ON m.manifest_id = i.manifest_id
                 LEFT JOIN codes c ON c.programme = i.programme AND c.reference = i.reference
                 WHERE i.manifest_id = $1 AND m.device_id = $2 AND i.reference IN ({keys})",
                ps![*manifest, device_id],
                &keys(refs),
                |r| {
                    let reference: String = r.get("reference")?;
                    let programme: Programme = r.get::<String>("programme")?.parse()?;
                    let code = match (
                        r.get::<Option<i64>>("code_version")?,
                        r.get::<Option<String>>("policy")?,
                        r.get::<Option<String>>("code_key_id")?,
                    ) {
                        (Some(v), Some(policy), Some(key_id)) => Some((
                            version(v)?,
                            CodeVersion {
                                policy: serde_json::from_str(&policy)
                                    .map_err(|_| Error::Store("a stored policy is unreadable"))?,
                                key_id,
                            },
                        )),
                        _ => None,
                    };
                    let item = Item {
                        programme,
                        valid_from: from_ms(r.get("valid_from")?),
                        valid_until: from_ms(r.get("valid_until")?),
                        details: serde_json::from_str(&r.get::<String>("details")?)
                            .map_err(|_| Error::Store("stored item details are unreadable"))?,
                        mobile: r.get("mobile")?,
                        language: r.get::<String>("language")?.parse()?,
                        digipin: r.get("digipin")?,
                    };
                    Ok((reference, item, code))
                },
            )?;
            for (reference, item, code) in rows {
                if let Some((v, code)) = code {
                    let latest = known
                        .latest
                        .entry((item.programme, reference.clone()))
                        .or_insert(v);
                    *latest = (*latest).max(v);
                    known
                        .codes
                        .insert((item.programme, reference.clone(), v), code);
                }
                known
                    .items
                    .entry(((*manifest).to_owned(), reference))
                    .or_insert(item);
            }
        }

        if !references.is_empty() {
            // Other devices' handovers and payments of these items wait
            // until this batch is stored (several servers on PostgreSQL):
            // their locks were taken with the device's head, before this
            // read (`device_head`), so it sees every batch stored before.
            // This device's attempts and handovers of these items, and
            // anyone's confirmed handover or payment of them: one statement.
            let refs = keys(&references);
            for (own, reference, v, kind, verdict, programme) in tx.all_in(
                "SELECT CAST(1 AS BIGINT) AS own, reference, code_version, kind, verdict,
                        CAST(NULL AS TEXT) AS programme
                 FROM events
                 WHERE device_id = $1 AND reference IN ({keys})
                 AND kind IN ('locked', 'attempt_failed', 'handed_over')
                 UNION ALL
                 SELECT CAST(0 AS BIGINT) AS own, e.reference AS reference, CAST(NULL AS BIGINT) AS code_version,
                        e.kind AS kind, e.verdict AS verdict, i.programme AS programme
                 FROM events e LEFT JOIN items i
                     ON i.manifest_id = e.manifest_id AND i.reference = e.reference
                 WHERE e.reference IN ({keys})
                 AND ((e.kind = 'handed_over' AND e.verdict = 'verified')
                      OR (e.kind = 'payment' AND e.verdict = 'recorded'))",
                ps![device_id],
                &refs,
                |r| {
                    Ok((
                        r.get::<i64>("own")? != 0,
                        r.get::<String>("reference")?,
                        r.get::<Option<i64>>("code_version")?,
                        r.get::<String>("kind")?,
                        r.get::<String>("verdict")?,
                        r.get::<Option<String>>("programme")?,
                    ))
                },
            )? {
                if !own {
                    if kind == "payment" {
                        known.paid.insert(reference);
                    } else if let Some(programme) = programme {
                        known.verified.insert((programme.parse()?, reference));
                    }
                    continue;
                }
                if kind == "handed_over" {
                    known.handed.insert(reference.clone());
                }
                let Some(v) = v.map(version).transpose()? else {
                    continue;
                };
                match kind.as_str() {
                    "locked" => {
                        known.locked.insert((reference, v));
                    }
                    "handed_over" if verdict != Verdict::CodeMismatch.as_str() => {}
                    _ => *known.attempts.entry((reference, v)).or_insert(0) += 1,
                }
            }
        }

        if !imports.is_empty() {
            for (manifest, revision) in tx.all_in(
                "SELECT manifest_id, revision FROM events
                 WHERE device_id = $1 AND reference IS NULL AND kind = 'manifest_imported'
                 AND manifest_id IN ({keys})",
                ps![device_id],
                &keys(&imports),
                |r| {
                    Ok((
                        r.get::<Option<String>>("manifest_id")?,
                        r.get::<Option<i64>>("revision")?,
                    ))
                },
            )? {
                if let (Some(m), Some(r)) = (manifest, revision) {
                    known.imported.insert((m, version(r)?));
                }
            }
        }
        Ok(known)
    }

    /// The item an event names, if it was issued to the device.
    pub(super) fn item(&self, manifest_id: &str, reference: &str) -> Option<&Item> {
        self.items
            .get(&(manifest_id.to_owned(), reference.to_owned()))
    }

    fn code(&self, programme: Programme, reference: &str, v: u32) -> Option<&CodeVersion> {
        self.codes.get(&(programme, reference.to_owned(), v))
    }

    /// This device's wrong codes for `reference` at version `v` so far.
    fn wrong_codes(&self, reference: &str, v: u32) -> i64 {
        self.attempts
            .get(&(reference.to_owned(), v))
            .copied()
            .unwrap_or(0)
    }

    /// The verdict of a new event (the table in the module docs).
    pub(super) fn judge(
        &self,
        code_keys: &CodeKeys,
        body: &EventBody,
        clock_suspect: bool,
    ) -> Result<Verdict> {
        match &body.kind {
            EventKind::HandedOver {
                manifest_id,
                reference,
                code_version: v,
                code,
                ..
            } => {
                let Some(item) = self.item(manifest_id, reference) else {
                    return Ok(Verdict::OutsideValidity);
                };
                // Decided before the code is looked at (module docs).
                if self.handed.contains(reference) {
                    return Ok(Verdict::Duplicate);
                }
                let Some(issued) = self.code(item.programme, reference, *v) else {
                    return Ok(Verdict::CodeMismatch);
                };
                if self.wrong_codes(reference, *v) >= i64::from(issued.policy.max_attempts) {
                    return Ok(Verdict::AttemptsExceeded);
                }
                // The key this code version was issued under, whichever
                // is current now.
                let code_key = code_keys.get(&issued.key_id)?;
                let right = derive_code(
                    &code_key,
                    item.programme,
                    reference,
                    *v,
                    issued.policy.digits,
                )?;
                if !constant_time_eq(right.as_str().as_bytes(), code.as_str().as_bytes()) {
                    return Ok(Verdict::CodeMismatch);
                }
                let tolerance = clock_tolerance();
                if body.time < earlier(item.valid_from, tolerance)
                    || body.time > later(item.valid_until, tolerance)
                {
                    return Ok(Verdict::OutsideValidity);
                }
                let latest = self.latest.get(&(item.programme, reference.clone()));
                if latest.is_some_and(|l| l > v) {
                    return Ok(Verdict::Superseded);
                }
                if self.locked.contains(&(reference.clone(), *v)) {
                    return Ok(Verdict::AfterLock);
                }
                if self.verified.contains(&(item.programme, reference.clone())) {
                    return Ok(Verdict::Duplicate);
                }
                if clock_suspect {
                    return Ok(Verdict::ClockSuspect);
                }
                Ok(Verdict::Verified)
            }
            EventKind::AttemptFailed {
                manifest_id,
                reference,
                code_version: v,
                ..
            } => {
                let Some(item) = self.item(manifest_id, reference) else {
                    return Ok(Verdict::Recorded);
                };
                let Some(issued) = self.code(item.programme, reference, *v) else {
                    return Ok(Verdict::Recorded);
                };
                let before = self.wrong_codes(reference, *v);
                Ok(if before >= i64::from(issued.policy.max_attempts) {
                    Verdict::AttemptsExceeded
                } else {
                    Verdict::Recorded
                })
            }
            EventKind::ManifestImported {
                manifest_id,
                revision,
                ..
            } => Ok(
                if self.imported.contains(&(manifest_id.clone(), *revision)) {
                    Verdict::Reimported
                } else {
                    Verdict::Recorded
                },
            ),
            EventKind::Payment {
                manifest_id,
                reference,
                amount_paise,
                method,
            } => {
                let cod = self
                    .item(manifest_id, reference)
                    .and_then(|i| i.details.cod().map(|c| c.amount_paise));
                let utr_ok = match method {
                    PaymentMethod::Cash => true,
                    PaymentMethod::Upi { txn_ref } => {
                        handover_core::upi::validate_utr(txn_ref).is_ok()
                    }
                };
                Ok(
                    if cod == Some(*amount_paise) && utr_ok && !self.paid.contains(reference) {
                        Verdict::Recorded
                    } else {
                        Verdict::PaymentMismatch
                    },
                )
            }
            _ => Ok(Verdict::Recorded),
        }
    }

    /// Take a judged event into what is known, for the batch's next events.
    pub(super) fn note(&mut self, body: &EventBody, verdict: Verdict) {
        match &body.kind {
            EventKind::HandedOver {
                manifest_id,
                reference,
                code_version,
                ..
            } => {
                let issued = self.item(manifest_id, reference).map(|i| i.programme);
                if verdict == Verdict::Verified {
                    if let Some(programme) = issued {
                        self.verified.insert((programme, reference.clone()));
                    }
                }
                if verdict == Verdict::CodeMismatch {
                    *self
                        .attempts
                        .entry((reference.clone(), *code_version))
                        .or_insert(0) += 1;
                }
                // A second handover (judged `duplicate` above) of an item
                // issued to the device asked about a code again.
                let again = !self.handed.insert(reference.clone());
                self.guessing |=
                    (again && issued.is_some()) || verdict == Verdict::AttemptsExceeded;
            }
            EventKind::AttemptFailed {
                reference,
                code_version,
                ..
            } => {
                *self
                    .attempts
                    .entry((reference.clone(), *code_version))
                    .or_insert(0) += 1;
            }
            EventKind::Locked {
                reference,
                code_version,
                ..
            } => {
                self.locked.insert((reference.clone(), *code_version));
            }
            EventKind::ManifestImported {
                manifest_id,
                revision,
                ..
            } => {
                self.imported.insert((manifest_id.clone(), *revision));
            }
            EventKind::Payment { reference, .. } if verdict == Verdict::Recorded => {
                self.paid.insert(reference.clone());
            }
            _ => {}
        }
    }
}
