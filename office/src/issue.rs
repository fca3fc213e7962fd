//! Issuing a device's manifest and the SMS that carry the codes.
//!
//! (Longer than the project's 700 lines: one issue's steps, planning,
//! deriving, writing and withdrawing, read top to bottom in one place.)
//!
//! The verifiers (PBKDF2, the issue's cost) are derived **before** the
//! transaction, on every core, from a plan made against the office as it
//! is; the transaction takes the device's lock, plans again and takes each
//! verifier derived for the same reference, code version and policy. A
//! 5,000-item issue therefore holds the device (and SQLite's writer) for
//! its writes only, not its seconds of PBKDF2: the device's batches go on.
//!
//! The manifest id is `<programme>-<device id>-<yyyymmdd of valid_from>`:
//! one per device, programme and working day. Issuing again for the same
//! device, programme and day makes the next revision from the file given.
//! What happens to the items held that the file leaves out is the
//! request's [`Missing`]: refused by default (a partial list must not
//! withdraw the rest by accident), withdrawn (their queued code SMS
//! cancelled), or kept (late items added to the day's manifest).
//!
//! Each item's **code version** is decided first, then its code and verifier
//! are derived:
//!
//! | the item | code version | SMS |
//! |---|---|---|
//! | new to this manifest | one above the highest ever issued for the reference | yes |
//! | named in `reissue` | one above the highest | yes |
//! | already in this manifest, same policy | kept | no |
//! | already in this manifest, another policy | one above the highest | yes |
//!
//! The policy of every code version is recorded (`codes`), and the
//! verifier's salt is derived from the code key, so the verifier of a
//! `(programme, reference, code_version)` is the same in every revision: an
//! insider with several revisions learns no more than from one. A change of
//! policy is a new code, never a re-derivation of a kept one with new digits.
//!
//! Nothing is committed until the caller's `deliver` step (writing the
//! manifest and SMS files) has succeeded, so a failed write loses no SMS.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::store::sql::P;
use crate::store::{ps, Tx};
use chrono::{DateTime, Utc};
use handover_core::codes::{derive_code, CodeKey, Policy, Programme};
use handover_core::manifest::{Item, Manifest, MANIFEST_FORMAT};
use handover_core::rules::later;
use handover_core::verifier::Verifier;

use crate::bookings::Booking;
use crate::error::{Error, Result};
pub use crate::sms::file::{write_sms_csv, Sms};
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
    /// What a new revision does with the held items the bookings leave out.
    pub missing: Missing,
    /// Issue time.
    pub now: DateTime<Utc>,
}

/// What a new revision of a manifest does with the items it holds that the
/// bookings leave out. A partial list (300 of the day's 5,000) must not
/// withdraw the rest by accident.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Missing {
    /// Refuse the issue if any item would be withdrawn
    /// ([`Error::WouldWithdraw`], which says how many).
    #[default]
    Refuse,
    /// Withdraw them: the device stops offering them, and their code SMS
    /// still queued are cancelled.
    Withdraw,
    /// Keep them as they are: the bookings are added to the manifest (late
    /// items), and items already held are updated from the bookings.
    Keep,
}

impl<'a> IssueRequest<'a> {
    /// The command line's and the console's defaults: the programme's
    /// default policy, a window from `now` for 12 hours, nothing
    /// re-issued, and a refusal to withdraw items the bookings leave out.
    pub fn new(
        device_id: &'a str,
        programme: Programme,
        bookings: &'a [Booking],
        now: DateTime<Utc>,
    ) -> IssueRequest<'a> {
        IssueRequest {
            device_id,
            programme,
            bookings,
            policy: None,
            valid_from: now,
            valid_until: now + chrono::Duration::hours(12),
            reissue: &[],
            missing: Missing::Refuse,
            now,
        }
    }

    /// A working day's issue as the load generator and the tests make it:
    /// valid from an hour before `now` to eight hours after, nothing
    /// re-issued.
    pub fn working_day(
        device_id: &'a str,
        programme: Programme,
        bookings: &'a [Booking],
        policy: Policy,
        now: DateTime<Utc>,
    ) -> IssueRequest<'a> {
        IssueRequest {
            device_id,
            programme,
            bookings,
            policy: Some(policy),
            valid_from: later(now, -chrono::Duration::hours(1)),
            valid_until: later(now, chrono::Duration::hours(8)),
            reissue: &[],
            missing: Missing::Refuse,
            now,
        }
    }
}

/// An issued manifest. `Debug` shows its id, revision and counts, not the
/// sealed bytes (names and addresses) or the SMS (codes).
pub struct Issued {
    /// Manifest id.
    pub manifest_id: String,
    /// Revision.
    pub revision: u32,
    /// The sealed manifest, for the device.
    pub sealed: Vec<u8>,
    /// The SMS of new and re-issued codes, rendered, for a caller that
    /// hands them out itself (tests, the demo). The office stores none of
    /// them: its outbox has them queued by reference and code version.
    pub sms: Vec<Sms>,
    /// The ids of the code messages queued in the outbox.
    pub sms_ids: Vec<i64>,
    /// The segments those messages take (what the office pays for).
    pub sms_segments: usize,
    /// The policy used.
    pub policy: Policy,
    /// Items in the manifest.
    pub items: usize,
    /// Items that got a new code version because their policy changed.
    pub policy_changed: usize,
    /// Items this revision withdrew (left out of the bookings).
    pub withdrawn: usize,
    /// Code SMS of withdrawn items that were still queued, now cancelled.
    pub sms_cancelled: usize,
    /// Items kept from the previous revision ([`Missing::Keep`]).
    pub kept: usize,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("manifest_id", &self.manifest_id)
            .field("revision", &self.revision)
            .field("sealed_len", &self.sealed.len())
            .field("sms", &self.sms.len())
            .field("sms_segments", &self.sms_segments)
            .field("policy", &self.policy)
            .field("items", &self.items)
            .field("policy_changed", &self.policy_changed)
            .field("withdrawn", &self.withdrawn)
            .field("sms_cancelled", &self.sms_cancelled)
            .field("kept", &self.kept)
            .finish()
    }
}

/// One item's plan: its booking, code version, policy, and whether it needs an SMS.
pub(crate) struct Planned<'a> {
    pub(crate) booking: &'a Booking,
    pub(crate) language: crate::language::Language,
    pub(crate) version: u32,
    pub(crate) policy: Policy,
    pub(crate) new_code: bool,
    pub(crate) policy_changed: bool,
    /// The key of a kept code version (`None`: a new code, from the
    /// current key).
    pub(crate) key_id: Option<String>,
}

/// A verifier's identity across the two plans of an issue: reference,
/// code version, policy name and code key id.
type VerifierKey = (String, u32, String, String);

/// An item of the manifest as issued before: its code version, that
/// version's policy (JSON) and code key.
struct Held {
    version: i64,
    policy: Option<String>,
    key_id: Option<String>,
}

/// An issue request, checked before the transaction: the device, the
/// policy, the manifest id and the references to re-issue.
pub(crate) struct Checked<'r> {
    pub(crate) assignee: String,
    /// A `handover load` device: no SMS is queued.
    pub(crate) simulated: bool,
    pub(crate) policy: Policy,
    pub(crate) manifest_id: String,
    pub(crate) reissue: HashSet<&'r str>,
}

/// The next revision of the manifest, and each booking's plan.
pub(crate) struct Plan<'a> {
    pub(crate) revision: u32,
    pub(crate) items: Vec<Planned<'a>>,
}

impl Office {
    /// Issue (or re-issue) a device's manifest. `progress` is called once
    /// per item; `deliver` gets the result before anything is committed
    /// (write the manifest file there) and the issue is committed only if
    /// it returns `Ok` (on PostgreSQL it may be called again, if the
    /// transaction has to run again).
    ///
    /// The steps: [check](Self::check_issue) the request; then, in one
    /// transaction holding the device's lock, [plan](plan_revision) the
    /// revision (each item's code version, policy and SMS),
    /// [derive](Self::derive_items) the verifiers and code SMS, seal the
    /// manifest, [write](write_manifest) it, its items and the new code
    /// versions with their queued SMS ([`Self::write_codes`]), and hand the
    /// result to `deliver`.
    pub fn issue(
        &self,
        req: &IssueRequest<'_>,
        progress: &(dyn Fn() + Sync),
        deliver: impl FnMut(&Issued) -> Result<()>,
    ) -> Result<Issued> {
        self.issue_as(req, crate::staff::COMMAND_LINE, progress, deliver)
    }

    /// [`issue`](Self::issue), by staff member `actor`: the audit log
    /// records the issue in its transaction.
    pub fn issue_as(
        &self,
        req: &IssueRequest<'_>,
        actor: &str,
        progress: &(dyn Fn() + Sync),
        mut deliver: impl FnMut(&Issued) -> Result<()>,
    ) -> Result<Issued> {
        let checked = self.check_issue(req)?;
        let req_bookings = req.bookings.len();
        let default_language = self.config.default_language()?;
        // PBKDF2 is the issue's cost: derive the verifiers before the
        // device's lock (and, on SQLite, the writer) is taken, so that the
        // device's batches and every other write go on meanwhile. Plan
        // against the office as it is now; in the transaction, plan again
        // and take each verifier derived for the same reference, version
        // and policy (one a concurrent issue changed is derived there).
        let pre_kept = self
            .store
            .read(|tx| Ok(missing_items(tx, req, &checked.manifest_id)?.1))?;
        let pre_all: Vec<Booking> = req.bookings.iter().cloned().chain(pre_kept).collect();
        let pre_req = IssueRequest {
            bookings: &pre_all,
            ..req.clone()
        };
        let (pre_plan, pre_key) = self.store.read(|tx| {
            Ok((
                plan_revision(tx, &pre_req, &checked, default_language)?,
                self.current_code_key(tx)?,
            ))
        })?;
        let (pre_items, _) = self.derive_items(
            req.programme,
            &pre_key,
            &pre_plan.items,
            progress,
            &HashMap::new(),
        )?;
        // Known by the key too: a rotation in between makes new codes
        // under the new key.
        let verifiers: HashMap<VerifierKey, Verifier> = pre_items
            .into_iter()
            .zip(&pre_plan.items)
            .map(|(i, p)| {
                let key = p.key_id.as_deref().unwrap_or(pre_key.id()).to_owned();
                ((i.reference, i.code_version, i.policy, key), i.verifier)
            })
            .collect();
        let issued = self.store.write(|tx| {
            // One issue of a device's manifests at a time, across servers.
            tx.lock_device(req.device_id)?;
            let (missing, kept) = missing_items(tx, req, &checked.manifest_id)?;
            let all: Vec<Booking>;
            let req = if kept.is_empty() {
                req.clone()
            } else {
                all = req.bookings.iter().cloned().chain(kept).collect();
                IssueRequest {
                    bookings: &all,
                    ..req.clone()
                }
            };
            let req = &req;
            let plan = plan_revision(tx, req, &checked, default_language)?;
            // New codes come from the key current now (a rotation may
            // have happened since the office was opened, on any server).
            let code_key = self.current_code_key(tx)?;
            // Only a verifier the plan changed since costs PBKDF2 here.
            let (items, sms) =
                self.derive_items(req.programme, &code_key, &plan.items, &|| {}, &verifiers)?;
            let manifest = Manifest {
                format: MANIFEST_FORMAT.into(),
                manifest_id: checked.manifest_id.clone(),
                revision: plan.revision,
                office_id: self.office_id.clone(),
                device_id: req.device_id.to_owned(),
                assignee: checked.assignee.clone(),
                programme: req.programme,
                // The key of the codes new in this revision; each code's
                // own key is in `codes.code_key_id`.
                code_key_id: code_key.id().to_owned(),
                issued_at: req.now,
                valid_from: req.valid_from,
                valid_until: req.valid_until,
                policies: plan
                    .items
                    .iter()
                    .map(|p| (p.policy.name(), p.policy))
                    .collect(),
                items,
            };
            let sealed = manifest.seal(&self.signing_key())?;
            write_manifest(tx, req, &checked, plan.revision, code_key.id(), &sealed)?;
            write_items(tx, &manifest, &plan.items)?;
            let (sms_ids, sms_segments) =
                self.write_codes(tx, req, &checked, &manifest, &plan.items, code_key.id())?;
            let sms_cancelled = withdraw(tx, req, &checked.manifest_id, &missing)?;
            crate::staff::audit(
                tx,
                actor,
                "issue",
                &format!(
                    "{} revision {} ({} items)",
                    checked.manifest_id,
                    plan.revision,
                    plan.items.len()
                ),
                req.now,
            )?;
            let issued = Issued {
                manifest_id: checked.manifest_id.clone(),
                revision: plan.revision,
                sealed,
                sms,
                sms_ids,
                sms_segments,
                policy: checked.policy,
                items: manifest.items.len(),
                policy_changed: plan.items.iter().filter(|p| p.policy_changed).count(),
                withdrawn: missing.len(),
                sms_cancelled,
                kept: req.bookings.len() - req_bookings,
            };
            deliver(&issued)?;
            Ok::<_, Error>(issued)
        })?;
        // A morning's issue adds rows by the hundred thousand: keep the
        // planner's picture of the tables current (PostgreSQL), counting
        // the rows just written, which the statistics may not show yet.
        let items = issued.items as u64;
        self.store.refresh_statistics(&[
            ("codes", items),
            ("items", items),
            ("sms_outbox", items),
        ])?;
        Ok(issued)
    }

    /// Check a request before anything is read or written: the device is
    /// enrolled and not revoked, the window and policy make sense, every
    /// reference to re-issue is booked, no reference is booked twice.
    pub(crate) fn check_issue<'r>(&self, req: &IssueRequest<'r>) -> Result<Checked<'r>> {
        let device = self.device(req.device_id)?;
        if device.revoked {
            return Err(Error::DeviceRevoked(device.device_id));
        }
        if req.valid_from >= req.valid_until {
            return Err(Error::InvalidWindow);
        }
        let policy = req.policy.unwrap_or_else(|| req.programme.default_policy());
        policy.validate()?;
        let manifest_id = format!(
            "{}-{}-{}",
            req.programme,
            req.device_id,
            req.valid_from.format("%Y%m%d")
        );
        let reissue: HashSet<&str> = req.reissue.iter().map(String::as_str).collect();
        if let Some(r) = reissue
            .iter()
            .find(|r| !req.bookings.iter().any(|b| b.reference == **r))
        {
            return Err(Error::ReissueNotBooked((*r).to_owned()));
        }
        let mut booked = HashSet::with_capacity(req.bookings.len());
        if let Some(b) = req
            .bookings
            .iter()
            .find(|b| !booked.insert(b.reference.as_str()))
        {
            return Err(Error::BookedTwice(b.reference.clone()));
        }
        Ok(Checked {
            simulated: device.simulated,
            assignee: device.assignee,
            policy,
            manifest_id,
            reissue,
        })
    }

    /// Each planned item's code, verifier and (for a new code) its SMS, on
    /// every core: PBKDF2 is the issue's cost.
    /// A verifier found in `known` (by reference, code version, policy
    /// name and key) is taken, not derived again. A new code comes from
    /// `current`, a kept one from the key it was issued under.
    fn derive_items(
        &self,
        programme: Programme,
        current: &Arc<CodeKey>,
        plan: &[Planned<'_>],
        progress: &(dyn Fn() + Sync),
        known: &HashMap<VerifierKey, Verifier>,
    ) -> Result<(Vec<Item>, Vec<Sms>)> {
        let mut keys: HashMap<&str, Arc<CodeKey>> = HashMap::new();
        keys.insert(current.id(), Arc::clone(current));
        for id in plan.iter().filter_map(|p| p.key_id.as_deref()) {
            if !keys.contains_key(id) {
                keys.insert(id, self.code_keys.get(id)?);
            }
        }
        let templates = &self.templates;
        let derived: Vec<Result<(Item, Option<Sms>)>> = parallel_map(plan, |p| {
            let reference = &p.booking.reference;
            let key_id = p.key_id.as_deref().unwrap_or(current.id());
            let code_key: &CodeKey = keys
                .get(key_id)
                .ok_or(Error::Store("a code key was not loaded"))?;
            let code = derive_code(code_key, programme, reference, p.version, p.policy.digits)?;
            let known_as = (
                reference.clone(),
                p.version,
                p.policy.name(),
                key_id.to_owned(),
            );
            let verifier = match known.get(&known_as) {
                Some(v) => v.clone(),
                None => {
                    Verifier::derive(code_key, programme, reference, p.version, &code, &p.policy)?
                }
            };
            let sms = if p.new_code {
                Some(Sms {
                    mobile: p.booking.mobile.clone(),
                    reference: reference.clone(),
                    code: code.as_str().to_owned(),
                    message: templates.render(
                        programme,
                        crate::sms::Purpose::Code,
                        p.language,
                        &crate::sms::Values {
                            reference,
                            code: Some(&code),
                            care: "",
                            ..Default::default()
                        },
                    )?,
                })
            } else {
                None
            };
            progress();
            Ok((
                Item {
                    reference: reference.clone(),
                    code_version: p.version,
                    policy: p.policy.name(),
                    verifier,
                    details: p.booking.details.clone(),
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
        Ok((items, sms))
    }

    /// Record the new code versions (their policies) and queue the SMS that
    /// carry them (none for a simulated device); returns the SMS ids and the
    /// segments they take.
    fn write_codes(
        &self,
        tx: &mut Tx<'_, '_>,
        req: &IssueRequest<'_>,
        checked: &Checked<'_>,
        manifest: &Manifest,
        plan: &[Planned<'_>],
        code_key_id: &str,
    ) -> Result<(Vec<i64>, usize)> {
        let programme = req.programme;
        let fresh: Vec<(&Item, &Planned<'_>)> = manifest
            .items
            .iter()
            .zip(plan)
            .filter(|(_, p)| p.new_code)
            .collect();
        let policies: Vec<String> = fresh
            .iter()
            .map(|(_, p)| serde_json::to_string(&p.policy).map_err(|_| Error::Encoding("policy")))
            .collect::<Result<_>>()?;
        let code_rows: Vec<Vec<P<'_>>> = fresh
            .iter()
            .zip(&policies)
            .map(|((item, _), json)| {
                vec![
                    P::from(programme.as_str()),
                    P::from(&item.reference),
                    P::from(item.code_version),
                    P::from(json.as_str()),
                    P::from(code_key_id),
                    P::from(ms(req.now)),
                ]
            })
            .collect();
        tx.insert_rows(
            "INSERT INTO codes (programme, reference, code_version, policy, code_key_id, issued_at)",
            6,
            "",
            &code_rows,
        )?;
        if checked.simulated {
            // Nobody is at a simulated door: no message goes out.
            return Ok((Vec::new(), 0));
        }
        let mut queued = Vec::with_capacity(fresh.len());
        let mut sms_segments = 0;
        for (item, p) in &fresh {
            let segments =
                self.code_segments(programme, &item.reference, p.language, p.policy.digits)?;
            sms_segments += segments;
            queued.push(crate::sms::Queued {
                purpose: crate::sms::Purpose::Code,
                programme,
                reference: &item.reference,
                code_version: Some(item.code_version),
                event: None,
                mobile: &p.booking.mobile,
                language: p.language,
                segments,
            });
        }
        let sms_ids = crate::sms::queue_returning(tx, &queued, req.now)?;
        Ok((sms_ids, sms_segments))
    }
}

/// The next revision of the manifest and each booking's plan, from what the
/// office holds of these references, read at once: the manifest's items as
/// issued before, and each reference's latest code version in any manifest.
pub(crate) fn plan_revision<'a>(
    tx: &mut Tx<'_, '_>,
    req: &IssueRequest<'a>,
    checked: &Checked<'_>,
    default_language: crate::language::Language,
) -> Result<Plan<'a>> {
    let held: Option<i64> = tx.opt(
        "SELECT revision FROM manifests WHERE manifest_id = $1",
        ps![&checked.manifest_id],
        |r| r.get("revision"),
    )?;
    let revision = held.map_or(Ok(1), |r| {
        u32::try_from(r)
            .ok()
            .and_then(|r| r.checked_add(1))
            .ok_or(Error::Store("manifest revision out of range"))
    })?;
    let in_manifest: HashMap<String, Held> = tx
        .all(
            "SELECT i.reference AS reference, i.code_version AS code_version, c.policy AS policy,
                 c.code_key_id AS code_key_id
             FROM items i
             LEFT JOIN codes c ON c.programme = i.programme AND c.reference = i.reference
                 AND c.code_version = i.code_version
             WHERE i.manifest_id = $1",
            ps![&checked.manifest_id],
            |r| {
                Ok((
                    r.get("reference")?,
                    Held {
                        version: r.get("code_version")?,
                        policy: r.get("policy")?,
                        key_id: r.get("code_key_id")?,
                    },
                ))
            },
        )?
        .into_iter()
        .collect();
    let references: Vec<P<'_>> = req
        .bookings
        .iter()
        .map(|b| P::from(b.reference.as_str()))
        .collect();
    let latest: HashMap<String, i64> = tx
        .all_in(
            "SELECT reference, MAX(code_version) AS latest FROM codes
             WHERE programme = $1 AND reference IN ({keys}) GROUP BY reference",
            ps![req.programme.as_str()],
            &references,
            |r| Ok((r.get("reference")?, r.get("latest")?)),
        )?
        .into_iter()
        .collect();
    let items = req
        .bookings
        .iter()
        .map(|b| {
            plan_item(
                b,
                in_manifest.get(&b.reference),
                latest.get(&b.reference).copied(),
                &checked.reissue,
                checked.policy,
                default_language,
            )
        })
        .collect::<Result<_>>()?;
    Ok(Plan { revision, items })
}

/// An item the bookings leave out: its reference and code version.
type LeftOut = (String, i64);

/// An item of the held manifest: reference, code version, mobile, details,
/// language, DIGIPIN.
type HeldItem = (String, i64, String, String, String, Option<String>);

/// The items the manifest holds now (not withdrawn) that the bookings
/// leave out, as `(reference, code_version)`, refused or turned into
/// bookings to keep, as `req.missing` says.
pub(crate) fn missing_items(
    tx: &mut Tx<'_, '_>,
    req: &IssueRequest<'_>,
    manifest_id: &str,
) -> Result<(Vec<LeftOut>, Vec<Booking>)> {
    let booked: HashSet<&str> = req.bookings.iter().map(|b| b.reference.as_str()).collect();
    let held: Vec<HeldItem> = tx.all(
        "SELECT reference, code_version, mobile, details, language, digipin FROM items
         WHERE manifest_id = $1 AND withdrawn_at IS NULL ORDER BY reference",
        ps![manifest_id],
        |r| {
            Ok((
                r.get("reference")?,
                r.get("code_version")?,
                r.get("mobile")?,
                r.get("details")?,
                r.get("language")?,
                r.get("digipin")?,
            ))
        },
    )?;
    let total = held.len();
    let left_out: Vec<_> = held
        .into_iter()
        .filter(|h| !booked.contains(h.0.as_str()))
        .collect();
    match req.missing {
        Missing::Refuse if !left_out.is_empty() => Err(Error::WouldWithdraw {
            manifest_id: manifest_id.to_owned(),
            held: total,
            count: left_out.len(),
        }),
        Missing::Keep => {
            let kept = left_out
                .into_iter()
                .map(|(reference, _, mobile, details, language, digipin)| {
                    Ok(Booking {
                        line: 0,
                        reference,
                        mobile,
                        details: serde_json::from_str(&details)
                            .map_err(|_| Error::Store("stored item details are unreadable"))?,
                        language: language.parse().ok(),
                        digipin,
                    })
                })
                .collect::<Result<_>>()?;
            Ok((Vec::new(), kept))
        }
        _ => Ok((
            left_out.into_iter().map(|h| (h.0, h.1)).collect(),
            Vec::new(),
        )),
    }
}

/// Mark `missing` items withdrawn and cancel their code SMS still queued
/// (the code of an item the device no longer offers must not go out).
/// Returns the SMS cancelled.
fn withdraw(
    tx: &mut Tx<'_, '_>,
    req: &IssueRequest<'_>,
    manifest_id: &str,
    missing: &[LeftOut],
) -> Result<usize> {
    let mut cancelled = 0;
    for (reference, code_version) in missing {
        tx.exec(
            "UPDATE items SET withdrawn_at = $3 WHERE manifest_id = $1 AND reference = $2",
            ps![manifest_id, reference, ms(req.now)],
        )?;
        cancelled += tx.exec(
            "UPDATE sms_outbox SET status = 'cancelled', reason = 'withdrawn from the manifest',
                 updated_at = $4
             WHERE purpose = 'code' AND status = 'queued' AND programme = $1
                 AND reference = $2 AND code_version = $3",
            ps![
                req.programme.as_str(),
                reference,
                *code_version,
                ms(req.now)
            ],
        )?;
    }
    Ok(cancelled as usize)
}

/// Write the manifest row: a new manifest, or its next revision.
fn write_manifest(
    tx: &mut Tx<'_, '_>,
    req: &IssueRequest<'_>,
    checked: &Checked<'_>,
    revision: u32,
    code_key_id: &str,
    sealed: &[u8],
) -> Result<()> {
    let policy_json =
        serde_json::to_string(&checked.policy).map_err(|_| Error::Encoding("policy"))?;
    tx.exec(
        "INSERT INTO manifests (manifest_id, revision, device_id, programme, code_key_id,
             issued_at, valid_from, valid_until, policy, sealed)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (manifest_id) DO UPDATE SET revision = excluded.revision,
             issued_at = excluded.issued_at, valid_from = excluded.valid_from,
             valid_until = excluded.valid_until, policy = excluded.policy,
             sealed = excluded.sealed",
        ps![
            &checked.manifest_id,
            revision,
            req.device_id,
            req.programme.as_str(),
            code_key_id,
            ms(req.now),
            ms(req.valid_from),
            ms(req.valid_until),
            &policy_json,
            sealed
        ],
    )?;
    Ok(())
}

/// Write the manifest's items, replacing those of an earlier revision.
fn write_items(tx: &mut Tx<'_, '_>, manifest: &Manifest, plan: &[Planned<'_>]) -> Result<()> {
    let details: Vec<String> = manifest
        .items
        .iter()
        .map(|item| {
            serde_json::to_string(&item.details).map_err(|_| Error::Encoding("item details"))
        })
        .collect::<Result<_>>()?;
    let item_rows: Vec<Vec<P<'_>>> = manifest
        .items
        .iter()
        .zip(plan)
        .zip(&details)
        .map(|((item, p), details)| {
            vec![
                P::from(manifest.manifest_id.as_str()),
                P::from(&item.reference),
                P::from(manifest.programme.as_str()),
                P::from(item.code_version),
                P::from(p.policy.digits),
                P::from(&p.booking.mobile),
                P::from(details),
                P::from(p.language.as_str()),
                P::from(p.booking.digipin.as_deref()),
            ]
        })
        .collect();
    tx.insert_rows(
        "INSERT INTO items (manifest_id, reference, programme, code_version, digits, mobile,
             details, language, digipin)",
        9,
        "ON CONFLICT (manifest_id, reference) DO UPDATE SET
             code_version = excluded.code_version, digits = excluded.digits,
             mobile = excluded.mobile, details = excluded.details,
             language = excluded.language, digipin = excluded.digipin, withdrawn_at = NULL",
        &item_rows,
    )?;
    Ok(())
}

/// Decide the code version, policy and SMS of one booking (the table in the
/// module docs), from the item as this manifest held it (its code version
/// and that version's policy) and the reference's latest code version.
fn plan_item<'a>(
    booking: &'a Booking,
    in_manifest: Option<&Held>,
    latest: Option<i64>,
    reissue: &HashSet<&str>,
    policy: Policy,
    default_language: crate::language::Language,
) -> Result<Planned<'a>> {
    let language = booking.language.unwrap_or(default_language);
    let reference = booking.reference.as_str();
    let next = u32::try_from(latest.unwrap_or(0))
        .ok()
        .and_then(|v| v.checked_add(1))
        .ok_or(Error::Store("code version out of range"))?;
    let fresh = |policy_changed| Planned {
        booking,
        language,
        version: next,
        policy,
        new_code: true,
        policy_changed,
        key_id: None,
    };
    let Some(held) = in_manifest else {
        return Ok(fresh(false));
    };
    if reissue.contains(reference) {
        return Ok(fresh(false));
    }
    let held_policy: Option<Policy> = held
        .policy
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok());
    if held_policy != Some(policy) {
        return Ok(fresh(true));
    }
    Ok(Planned {
        booking,
        language,
        version: u32::try_from(held.version)
            .map_err(|_| Error::Store("code version out of range"))?,
        policy,
        new_code: false,
        policy_changed: false,
        key_id: held.key_id.clone(),
    })
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
