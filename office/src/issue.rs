//! Issuing a device's manifest and the SMS that carry the codes.
//!
//! The manifest id is `<programme>-<device id>-<yyyymmdd of valid_from>`:
//! one per device, programme and working day. Issuing again for the same
//! device, programme and day makes the next revision from the file given,
//! which should hold the whole day's list (items left out are withdrawn on
//! the device). An item already in the manifest keeps its code (no new SMS)
//! unless it is named in `reissue`; a re-issued or new item gets the next
//! `code_version` and an SMS.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use handover_core::codes::{derive_code, Code, Policy, Programme};
use handover_core::manifest::{Item, Manifest, MANIFEST_FORMAT};
use handover_core::verifier::Verifier;
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use crate::bookings::Booking;
use crate::error::{Error, Result};
use crate::{ms, Office};

/// What to issue.
#[derive(Clone, Debug)]
pub struct IssueRequest<'a> {
    /// The enrolled device.
    pub device_id: &'a str,
    /// Programme of every item.
    pub programme: Programme,
    /// The day's bookings.
    pub bookings: &'a [Booking],
    /// Policy; `None` for the programme's default.
    pub policy: Option<Policy>,
    /// Start of the working window.
    pub valid_from: DateTime<Utc>,
    /// End of the working window.
    pub valid_until: DateTime<Utc>,
    /// References whose code is re-issued (new version, new SMS).
    pub reissue: &'a [String],
    /// Issue time.
    pub now: DateTime<Utc>,
}

/// One SMS to send. The message holds the code.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Sms {
    /// Full mobile number.
    pub mobile: String,
    /// The item.
    pub reference: String,
    /// The text, code included.
    pub message: String,
}

impl std::fmt::Debug for Sms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sms")
            .field("reference", &self.reference)
            .finish_non_exhaustive()
    }
}

/// An issued manifest.
#[derive(Debug)]
pub struct Issued {
    /// Manifest id.
    pub manifest_id: String,
    /// Revision.
    pub revision: u32,
    /// The sealed manifest, for the device.
    pub sealed: Vec<u8>,
    /// SMS to send (new and re-issued codes only).
    pub sms: Vec<Sms>,
    /// The policy used.
    pub policy: Policy,
    /// Items in the manifest.
    pub items: usize,
}

/// The message that carries a code.
pub fn sms_text(programme: Programme, reference: &str, code: &Code) -> String {
    match programme {
        Programme::Post => format!(
            "India Post: your delivery code for article {reference} is {}. Tell it only to the postman at your door, when you receive the article.",
            code.as_str()
        ),
        Programme::Vaccination => format!(
            "Vaccination: your security code for appointment {reference} is {}. Tell it only to the vaccinator at the session site.",
            code.as_str()
        ),
    }
}

/// Write SMS rows as `mobile,reference,message` to `path` (mode 0600).
pub fn write_sms_csv(path: &std::path::Path, sms: &[Sms]) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let csv_err = |_| Error::Usage("could not encode the SMS file".into());
    w.write_record(["mobile", "reference", "message"])
        .map_err(csv_err)?;
    for s in sms {
        w.write_record([&s.mobile, &s.reference, &s.message])
            .map_err(csv_err)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|_| Error::Usage("could not encode the SMS file".into()))?;
    if path.exists() {
        std::fs::remove_file(path).map_err(crate::error::io(path))?;
    }
    crate::keystore::write_private(path, &bytes)
}

impl Office {
    /// Issue (or re-issue) a device's manifest. Nothing is stored unless all
    /// of it succeeds. `progress` is called once per item.
    pub fn issue(
        &mut self,
        req: &IssueRequest<'_>,
        progress: &(dyn Fn() + Sync),
    ) -> Result<Issued> {
        let device = self.device(req.device_id)?;
        if device.revoked {
            return Err(Error::DeviceRevoked(device.device_id));
        }
        if req.valid_from >= req.valid_until {
            return Err(Error::Usage(
                "--valid-from must be before --valid-until".into(),
            ));
        }
        let policy = req.policy.unwrap_or_else(|| req.programme.default_policy());
        policy.validate()?;
        let manifest_id = format!(
            "{}-{}-{}",
            req.programme,
            req.device_id,
            req.valid_from.format("%Y%m%d")
        );
        let held: Option<i64> = self
            .conn
            .query_row(
                "SELECT revision FROM manifests WHERE manifest_id = ?1",
                [&manifest_id],
                |r| r.get(0),
            )
            .optional()?;
        let revision = held.map_or(1, |r| r as u32 + 1);
        let reissue: HashSet<&str> = req.reissue.iter().map(String::as_str).collect();

        if let Some(r) = reissue
            .iter()
            .find(|r| !req.bookings.iter().any(|b| b.reference == **r))
        {
            return Err(Error::Usage(format!(
                "--reissue names {r}, which is not in the bookings file"
            )));
        }

        // Decide each item's code version, then derive codes and verifiers.
        let mut plan = Vec::with_capacity(req.bookings.len());
        for b in req.bookings {
            let in_manifest: Option<i64> = self
                .conn
                .query_row(
                    "SELECT code_version FROM items WHERE manifest_id = ?1 AND reference = ?2",
                    params![manifest_id, b.reference],
                    |r| r.get(0),
                )
                .optional()?;
            let latest: Option<i64> = self.conn.query_row(
                "SELECT MAX(code_version) FROM items WHERE programme = ?1 AND reference = ?2",
                params![req.programme.as_str(), b.reference],
                |r| r.get(0),
            )?;
            let (version, send) = match in_manifest {
                Some(v) if !reissue.contains(b.reference.as_str()) => (v as u32, false),
                _ => (latest.unwrap_or(0) as u32 + 1, true),
            };
            plan.push((b, version, send));
        }
        let code_key = &self.code_key;
        let programme = req.programme;
        let derived: Vec<Result<(Item, Option<Sms>)>> =
            parallel_map(&plan, |(b, version, send)| {
                let code = derive_code(code_key, programme, &b.reference, *version, policy.digits)?;
                let verifier = Verifier::create(&code, &b.reference, &policy)?;
                let sms = send.then(|| Sms {
                    mobile: b.mobile.clone(),
                    reference: b.reference.clone(),
                    message: sms_text(programme, &b.reference, &code),
                });
                progress();
                Ok((
                    Item {
                        reference: b.reference.clone(),
                        code_version: *version,
                        policy: "default".into(),
                        verifier,
                        details: b.details.clone(),
                    },
                    sms,
                ))
            });
        let mut items = Vec::with_capacity(derived.len());
        let mut sms = Vec::new();
        for d in derived {
            let (item, s) = d?;
            items.push(item);
            sms.extend(s);
        }
        let manifest = Manifest {
            format: MANIFEST_FORMAT.into(),
            manifest_id: manifest_id.clone(),
            revision,
            office_id: self.office_id.clone(),
            device_id: req.device_id.to_owned(),
            assignee: device.assignee.clone(),
            programme,
            code_key_id: self.code_key.id().to_owned(),
            issued_at: req.now,
            valid_from: req.valid_from,
            valid_until: req.valid_until,
            policies: BTreeMap::from([("default".to_string(), policy)]),
            items,
        };
        let sealed = manifest.seal(&self.signing)?;

        let policy_json =
            serde_json::to_string(&policy).map_err(|_| Error::Usage("policy".into()))?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO manifests (manifest_id, revision, device_id, programme, code_key_id,
                 issued_at, valid_from, valid_until, policy, sealed)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT(manifest_id) DO UPDATE SET revision = excluded.revision,
                 issued_at = excluded.issued_at, valid_from = excluded.valid_from,
                 valid_until = excluded.valid_until, policy = excluded.policy,
                 sealed = excluded.sealed",
            params![
                manifest_id,
                revision,
                req.device_id,
                programme.as_str(),
                self.code_key.id(),
                ms(req.now),
                ms(req.valid_from),
                ms(req.valid_until),
                policy_json,
                sealed
            ],
        )?;
        for (item, (b, ..)) in manifest.items.iter().zip(&plan) {
            let details =
                serde_json::to_string(&item.details).map_err(|_| Error::Usage("details".into()))?;
            tx.execute(
                "INSERT INTO items (manifest_id, reference, programme, code_version, digits, mobile, details)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(manifest_id, reference) DO UPDATE SET code_version = excluded.code_version,
                     digits = excluded.digits, mobile = excluded.mobile, details = excluded.details",
                params![
                    manifest_id,
                    item.reference,
                    programme.as_str(),
                    item.code_version,
                    policy.digits,
                    b.mobile,
                    details
                ],
            )?;
        }
        tx.commit()?;
        Ok(Issued {
            manifest_id,
            revision,
            sealed,
            sms,
            policy,
            items: manifest.items.len(),
        })
    }
}

/// Map `f` over `items` on all cores, keeping order.
fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let chunk = items.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|c| s.spawn(|| c.iter().map(&f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}
