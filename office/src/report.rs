//! The office's report of what its devices did, from the events received.

use std::collections::BTreeMap;

use handover_core::codes::{Policy, RiskFigures};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::store::{ps, Tx};
use crate::Office;

/// The day's figures. Its JSON form (`handover office report --json`) is a
/// stable interface: fields are only ever added.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// The office.
    pub office_id: String,
    /// Devices enrolled.
    pub devices: u64,
    /// Devices revoked.
    pub revoked: u64,
    /// Flagged devices and why (fork, tampered).
    pub flagged: Vec<FlaggedDevice>,
    /// Items in the manifests issued (latest code of each).
    pub items_issued: u64,
    /// Items left out of a later revision of their manifest (withdrawn).
    pub items_withdrawn: u64,
    /// `handed_over` events received, whatever their verdict.
    pub handed_over: u64,
    /// Handovers whose code the office re-derived and matched.
    pub verified: u64,
    /// Handovers with a wrong code.
    pub code_mismatch: u64,
    /// Handovers outside the window or for items not issued to the device.
    pub outside_validity: u64,
    /// Handovers recorded while the device clock was suspect.
    pub clock_suspect: u64,
    /// Second handovers of an item already confirmed.
    pub duplicate: u64,
    /// Handovers with the right code of a version since replaced.
    pub superseded: u64,
    /// Handovers after the item locked at the same code version.
    pub after_lock: u64,
    /// Wrong codes beyond the policy's `max_attempts` for one code version.
    pub attempts_exceeded: u64,
    /// Manifest revisions imported a second time (e.g. after a purge).
    pub reimported: u64,
    /// Payments that do not match the item's cash on delivery.
    pub payment_mismatch: u64,
    /// Events whose device clock the office found suspect, from the signed
    /// bodies or the device's own flag.
    pub clock_suspect_events: u64,
    /// Wrong codes entered at doors (`attempt_failed` events).
    pub refused: u64,
    /// Items locked after too many wrong codes.
    pub locked: u64,
    /// Exceptions by reason.
    pub exceptions: BTreeMap<String, u64>,
    /// Cash-on-delivery payments that match their item, by method.
    pub payments: BTreeMap<String, u64>,
    /// Cash-on-delivery collected by payments that match their item, paise.
    pub collected_paise: u64,
    /// Confirmation SMS owed (verified handovers only), whatever their status.
    pub confirmation_sms: u64,
    /// SMS in the outbox by status: queued, sending, sent, delivered, failed.
    pub sms: BTreeMap<String, u64>,
    /// Segments of the SMS sent (and delivered): what the office pays for.
    pub sms_segments: u64,
    /// Segments of the SMS still queued.
    pub sms_segments_queued: u64,
    /// Vaccination certificates recorded (verified handovers only).
    pub certificates: u64,
    /// Clock anomalies devices reported.
    pub clock_anomalies: u64,
    /// Events the office had acknowledged, then lost (a restore or a
    /// failover), and devices could no longer resend (they had purged
    /// them): their number, from the devices' checkpoints.
    pub events_lost: u64,
    /// Largest gap between an event's device time and its receipt, seconds.
    pub max_receipt_delay_seconds: i64,
    /// The policies in force and what they cost.
    pub policies: Vec<PolicyRisk>,
    /// Presence evidence: where doorstep events happened, against each
    /// address's DIGIPIN.
    pub presence: crate::presence::PresenceReport,
}

/// A flagged device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FlaggedDevice {
    /// The device.
    pub device_id: String,
    /// Who carries it.
    pub assignee: String,
    /// Why.
    pub reason: String,
}

/// A policy in force and its risk figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PolicyRisk {
    /// Programme.
    pub programme: String,
    /// The policy.
    pub policy: Policy,
    /// What it costs.
    pub risk: RiskFigures,
}

impl Office {
    /// Build the report.
    pub fn report(&self) -> Result<Report> {
        self.store.read(|c| report(c, &self.office_id))
    }

    /// The confirmation SMS owed so far: `(mobile, reference, status)`.
    pub fn confirmations(&self) -> Result<Vec<(String, String, String)>> {
        self.store.read(|tx| {
            tx.all(
                "SELECT mobile, reference, status FROM sms_outbox WHERE purpose = 'confirmation'
                 ORDER BY event_device, event_seq",
                ps![],
                |r| Ok((r.get("mobile")?, r.get("reference")?, r.get("status")?)),
            )
        })
    }
}

/// The report reads the `report_*` views: the tables without what
/// `handover load` simulated (its devices, their manifests, items and
/// events). Load never queues an SMS, so the outbox is read whole.
fn report(tx: &mut Tx<'_, '_>, office_id: &str) -> Result<Report> {
    let verdicts: BTreeMap<String, u64> = count_by(
        tx,
        "SELECT verdict AS k, COUNT(*) AS n FROM report_events WHERE kind = 'handed_over' GROUP BY verdict",
    )?;
    let verdict = |v: &str| verdicts.get(v).copied().unwrap_or(0);
    let flagged = tx.all(
        "SELECT device_id, assignee, flagged FROM report_devices WHERE flagged IS NOT NULL ORDER BY device_id",
        ps![],
        |r| {
            Ok(FlaggedDevice {
                device_id: r.get("device_id")?,
                assignee: r.get("assignee")?,
                reason: r.get("flagged")?,
            })
        },
    )?;
    let exceptions = count_by(
        tx,
        "SELECT detail AS k, COUNT(*) AS n FROM report_events WHERE kind = 'exception' GROUP BY detail",
    )?;
    let mut payments = BTreeMap::new();
    let mut collected = 0u64;
    for (how, amount) in tx.all(
        "SELECT detail, amount_paise FROM report_events WHERE kind = 'payment' AND verdict = 'recorded'",
        ps![],
        |r| {
            Ok((
                r.get::<Option<String>>("detail")?,
                r.get::<Option<i64>>("amount_paise")?,
            ))
        },
    )? {
        *payments.entry(how.unwrap_or_default()).or_insert(0) += 1;
        let amount = amount
            .and_then(|a| u64::try_from(a).ok())
            .ok_or(Error::Store("a recorded payment has no amount"))?;
        collected = collected
            .checked_add(amount)
            .ok_or(Error::Store("collected amounts overflow"))?;
    }
    let mut policies = Vec::new();
    for (programme, policy) in tx.all(
        "SELECT DISTINCT programme, policy FROM report_manifests ORDER BY programme, policy",
        ps![],
        |r| Ok((r.get::<String>("programme")?, r.get::<String>("policy")?)),
    )? {
        if let Ok(policy) = serde_json::from_str::<Policy>(&policy) {
            policies.push(PolicyRisk {
                programme,
                risk: policy.risk(),
                policy,
            });
        }
    }
    let sms = count_by(
        tx,
        "SELECT status AS k, COUNT(*) AS n FROM sms_outbox GROUP BY status",
    )?;
    Ok(Report {
        office_id: office_id.to_owned(),
        devices: count(tx, "SELECT COUNT(*) AS n FROM report_devices")?,
        revoked: count(tx, "SELECT COUNT(*) AS n FROM report_devices WHERE revoked_at IS NOT NULL")?,
        flagged,
        items_issued: count(
            tx,
            "SELECT COUNT(*) AS n FROM report_items WHERE withdrawn_at IS NULL",
        )?,
        items_withdrawn: count(
            tx,
            "SELECT COUNT(*) AS n FROM report_items WHERE withdrawn_at IS NOT NULL",
        )?,
        handed_over: verdicts.values().sum(),
        verified: verdict("verified"),
        code_mismatch: verdict("code_mismatch"),
        outside_validity: verdict("outside_validity"),
        clock_suspect: verdict("clock_suspect"),
        duplicate: verdict("duplicate"),
        superseded: verdict("superseded"),
        after_lock: verdict("after_lock"),
        attempts_exceeded: count(
            tx,
            "SELECT COUNT(*) AS n FROM report_events WHERE verdict = 'attempts_exceeded'",
        )?,
        reimported: count(tx, "SELECT COUNT(*) AS n FROM report_events WHERE verdict = 'reimported'")?,
        payment_mismatch: count(
            tx,
            "SELECT COUNT(*) AS n FROM report_events WHERE verdict = 'payment_mismatch'",
        )?,
        clock_suspect_events: count(tx, "SELECT COUNT(*) AS n FROM report_events WHERE clock_suspect")?,
        refused: count(tx, "SELECT COUNT(*) AS n FROM report_events WHERE kind = 'attempt_failed'")?,
        locked: count(tx, "SELECT COUNT(*) AS n FROM report_events WHERE kind = 'locked'")?,
        exceptions,
        payments,
        collected_paise: collected,
        confirmation_sms: count(
            tx,
            "SELECT COUNT(*) AS n FROM sms_outbox WHERE purpose = 'confirmation'",
        )?,
        sms,
        sms_segments: count(
            tx,
            "SELECT CAST(COALESCE(SUM(segments), 0) AS BIGINT) AS n FROM sms_outbox
             WHERE status IN ('sent', 'delivered')",
        )?,
        sms_segments_queued: count(
            tx,
            "SELECT CAST(COALESCE(SUM(segments), 0) AS BIGINT) AS n FROM sms_outbox
             WHERE status IN ('queued', 'sending')",
        )?,
        certificates: count(
            tx,
            "SELECT COUNT(*) AS n FROM confirmations WHERE channel = 'certificate'",
        )?,
        clock_anomalies: count(tx, "SELECT COUNT(*) AS n FROM report_events WHERE kind = 'clock_anomaly'")?,
        events_lost: count(
            tx,
            "SELECT CAST(COALESCE(SUM(through_seq - from_seq + 1), 0) AS BIGINT) AS n FROM chain_gaps
             WHERE device_id IN (SELECT device_id FROM report_devices)",
        )?,
        max_receipt_delay_seconds: tx.int(
            "SELECT CAST(COALESCE(MAX(received_at - device_time), 0) / 1000 AS BIGINT) AS n FROM report_events",
            ps![],
        )?,
        policies,
        presence: crate::presence::report(tx)?,
    })
}

/// A one-row count.
fn count(tx: &mut Tx<'_, '_>, sql: &str) -> Result<u64> {
    Ok(tx.int(sql, ps![])?.max(0) as u64)
}

/// `k, n` rows as a map.
fn count_by(tx: &mut Tx<'_, '_>, sql: &str) -> Result<BTreeMap<String, u64>> {
    Ok(tx
        .all(sql, ps![], |r| {
            Ok((
                r.get::<Option<String>>("k")?.unwrap_or_default(),
                r.get::<i64>("n")?.max(0) as u64,
            ))
        })?
        .into_iter()
        .collect())
}

/// Render the report as a terminal table.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("  {k:<34} {v:>10}\n"));
    line("devices enrolled", r.devices.to_string());
    line("devices revoked", r.revoked.to_string());
    line("devices flagged", r.flagged.len().to_string());
    line("items issued", r.items_issued.to_string());
    if r.items_withdrawn > 0 {
        line("items withdrawn", r.items_withdrawn.to_string());
    }
    line("handed over (device)", r.handed_over.to_string());
    line("  verified at the office", r.verified.to_string());
    line("  code mismatch (flagged)", r.code_mismatch.to_string());
    line(
        "  outside validity (flagged)",
        r.outside_validity.to_string(),
    );
    line("  clock suspect (flagged)", r.clock_suspect.to_string());
    line("  duplicate (flagged)", r.duplicate.to_string());
    line("  superseded code (flagged)", r.superseded.to_string());
    line("  after a lock (flagged)", r.after_lock.to_string());
    line("wrong codes refused at the door", r.refused.to_string());
    line("items locked", r.locked.to_string());
    for (k, v) in &r.exceptions {
        line(
            &format!("exception: {}", k.replace('_', " ")),
            v.to_string(),
        );
    }
    for (k, v) in &r.payments {
        line(&format!("payments: {k}"), v.to_string());
    }
    line(
        "cash on delivery collected (Rs)",
        crate::ledger::rupees(r.collected_paise),
    );
    line("confirmation SMS", r.confirmation_sms.to_string());
    for (status, n) in &r.sms {
        line(&format!("SMS {status}"), n.to_string());
    }
    line("SMS segments sent (billed)", r.sms_segments.to_string());
    line(
        "SMS segments still queued",
        r.sms_segments_queued.to_string(),
    );
    line("certificates recorded", r.certificates.to_string());
    line(
        "payments not matching (flagged)",
        r.payment_mismatch.to_string(),
    );
    line(
        "wrong codes beyond the limit",
        r.attempts_exceeded.to_string(),
    );
    line("manifests imported again", r.reimported.to_string());
    line("clock anomalies (device)", r.clock_anomalies.to_string());
    if r.events_lost > 0 {
        line(
            "events lost (the office lost them, devices had purged them)",
            r.events_lost.to_string(),
        );
    }
    line(
        "events with a suspect clock",
        r.clock_suspect_events.to_string(),
    );
    for f in &r.flagged {
        out.push_str(&format!(
            "  FLAGGED device {} ({}): {}\n",
            f.device_id, f.assignee, f.reason
        ));
    }
    out.push_str(&crate::presence::render(&r.presence));
    if !r.policies.is_empty() {
        out.push_str("\n  policies in force and what they cost\n");
        for p in &r.policies {
            out.push_str(&format!(
                "  {:<12} {} digits, {}-bit tags, {} attempts: impostor accepted {:.3} %, insider undetected {:.3} %, typo caught {:.2} %\n",
                p.programme,
                p.policy.digits,
                p.policy.tag_bits,
                p.policy.max_attempts,
                p.risk.impostor_acceptance * 100.0,
                p.risk.insider_undetected * 100.0,
                p.risk.typo_caught * 100.0
            ));
        }
    }
    out
}

/// Figures for `/metrics`, read from the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreFigures {
    /// Events held, by verdict.
    pub events_by_verdict: BTreeMap<String, u64>,
    /// Devices flagged (fork).
    pub devices_flagged: u64,
    /// Devices enrolled.
    pub devices: u64,
}

impl Office {
    /// Events held from `device_id`.
    pub fn event_count(&self, device_id: &str) -> Result<u64> {
        self.store.read(|tx| {
            let n = tx.int(
                "SELECT COUNT(*) AS n FROM events WHERE device_id = $1",
                ps![device_id],
            )?;
            Ok(n.max(0) as u64)
        })
    }

    /// Figures for the service's metrics.
    pub fn store_figures(&self) -> Result<StoreFigures> {
        self.store.read(|tx| {
            let mut figures = StoreFigures::default();
            for (verdict, n) in tx.all(
                "SELECT verdict, COUNT(*) AS n FROM events GROUP BY verdict",
                ps![],
                |r| Ok((r.get::<String>("verdict")?, r.get::<i64>("n")?)),
            )? {
                figures.events_by_verdict.insert(verdict, n.max(0) as u64);
            }
            let (devices, flagged) = tx.one(
                "SELECT COUNT(*) AS devices, COUNT(flagged) AS flagged FROM devices",
                ps![],
                |r| Ok((r.get::<i64>("devices")?, r.get::<i64>("flagged")?)),
            )?;
            figures.devices = devices.max(0) as u64;
            figures.devices_flagged = flagged.max(0) as u64;
            Ok(figures)
        })
    }
}
