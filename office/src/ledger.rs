//! The figures of a day or a range of days, per device (each device is a
//! beat: one postman or vaccinator), with cash-on-delivery reconciliation:
//! what was expected, what was collected, and the UPI references. For the
//! console's Reports page and `handover office report --from --to
//! --device [--csv]` (issue 16).
//!
//! A day is India's (IST): a manifest belongs to the day its window opens,
//! and everything recorded against it to that day too. Simulated devices
//! are left out, as in the office's report.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use handover_core::event::{Event, EventKind, PaymentMethod};
use handover_core::manifest::ItemDetails;

use crate::error::{Error, Result};
use crate::store::ps;
use crate::store::sql::P;
use crate::Office;

/// Which days and devices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportFilter {
    /// First day (IST).
    pub from: NaiveDate,
    /// Last day (IST), included.
    pub to: NaiveDate,
    /// One device only.
    pub device: Option<String>,
}

/// The longest range a report covers.
pub const MAX_DAYS: i64 = 366;

/// One device's figures (or the total's).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BeatFigures {
    /// The device (`all` for the total).
    pub device_id: String,
    /// Who carries it.
    pub assignee: String,
    /// Items issued to it for these days (withdrawn ones left out).
    pub items: u64,
    /// Handovers recorded.
    pub handed_over: u64,
    /// Handovers the office verified.
    pub verified: u64,
    /// Handovers with any other verdict (flagged).
    pub flagged: u64,
    /// Exceptions (not at home, refused, …).
    pub exceptions: u64,
    /// Cash on delivery owed by its items, paise.
    pub cod_expected_paise: u64,
    /// Cash on delivery collected (payments the office recorded), paise.
    pub cod_collected_paise: u64,
    /// Of it, paid by UPI, paise.
    pub upi_paise: u64,
    /// The UPI transaction references.
    pub upi_refs: Vec<String>,
}

/// A programme's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProgrammeFigures {
    /// `post` or `vaccination`.
    pub programme: String,
    /// Items issued (withdrawn ones left out).
    pub items: u64,
    /// Handovers recorded.
    pub handed_over: u64,
    /// Handovers the office verified.
    pub verified: u64,
    /// Exceptions by reason.
    pub exceptions: BTreeMap<String, u64>,
    /// Items nothing has been recorded about yet (not handed over, no
    /// exception): still out, or on a device that has not synced.
    pub pending: u64,
}

/// A range's figures.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RangeReport {
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub to: NaiveDate,
    /// Per programme.
    pub programmes: Vec<ProgrammeFigures>,
    /// Per device, by assignee.
    pub beats: Vec<BeatFigures>,
    /// All of them.
    pub total: BeatFigures,
}

/// An event as the report reads it.
struct Recorded {
    manifest_id: String,
    reference: Option<String>,
    kind: String,
    verdict: String,
    detail: Option<String>,
    body: Vec<u8>,
}

/// The figures per programme of `manifests` (id, device, assignee,
/// programme), their `items` (manifest, reference, details) and `events`.
fn per_programme(
    manifests: &[(String, String, String, String)],
    items: &[(String, String, String)],
    events: &[Recorded],
) -> Vec<ProgrammeFigures> {
    let programme_of: BTreeMap<&str, &str> = manifests
        .iter()
        .map(|(m, _, _, p)| (m.as_str(), p.as_str()))
        .collect();
    let mut out: BTreeMap<&str, ProgrammeFigures> = BTreeMap::new();
    let mut touched: std::collections::HashSet<(&str, &str)> = Default::default();
    for e in events {
        if e.kind != "payment" {
            if let Some(r) = &e.reference {
                touched.insert((e.manifest_id.as_str(), r.as_str()));
            }
        }
        let Some(p) = programme_of.get(e.manifest_id.as_str()) else {
            continue;
        };
        let f = out.entry(p).or_default();
        match e.kind.as_str() {
            "handed_over" => {
                f.handed_over += 1;
                f.verified += u64::from(e.verdict == "verified");
            }
            "exception" => {
                *f.exceptions
                    .entry(e.detail.clone().unwrap_or_default())
                    .or_insert(0) += 1
            }
            _ => {}
        }
    }
    for (m, reference, _) in items {
        let Some(p) = programme_of.get(m.as_str()) else {
            continue;
        };
        let f = out.entry(p).or_default();
        f.items += 1;
        if !touched.contains(&(m.as_str(), reference.as_str())) {
            f.pending += 1;
        }
    }
    out.into_iter()
        .map(|(p, mut f)| {
            f.programme = p.to_owned();
            f
        })
        .collect()
}

/// The start of day `d` in IST, as UTC.
fn ist_midnight(d: NaiveDate) -> DateTime<Utc> {
    d.and_hms_opt(0, 0, 0)
        .map_or_else(DateTime::default, |t| t.and_utc())
        - Duration::minutes(330)
}

impl ReportFilter {
    fn check(&self) -> Result<()> {
        if self.to < self.from {
            return Err(Error::Report("the range ends before it starts"));
        }
        if (self.to - self.from).num_days() >= MAX_DAYS {
            return Err(Error::Report("a report covers at most 366 days"));
        }
        Ok(())
    }
}

impl Office {
    /// The figures of `filter`'s days, per device (module docs).
    pub fn report_range(&self, filter: &ReportFilter) -> Result<RangeReport> {
        filter.check()?;
        let (start, end) = (
            crate::ms(ist_midnight(filter.from)),
            crate::ms(ist_midnight(filter.to + Duration::days(1))),
        );
        let device = filter.device.clone().unwrap_or_default();
        let (manifests, items, events) = self.store.read(|tx| {
            let manifests: Vec<(String, String, String, String)> = tx.all(
                "SELECT m.manifest_id AS manifest_id, m.device_id AS device_id, d.assignee AS assignee,
                        m.programme AS programme
                 FROM report_manifests m JOIN devices d ON d.device_id = m.device_id
                 WHERE m.valid_from >= $1 AND m.valid_from < $2 AND ($3 = '' OR m.device_id = $3)",
                ps![start, end, device.as_str()],
                |r| {
                    Ok((
                        r.get("manifest_id")?,
                        r.get("device_id")?,
                        r.get("assignee")?,
                        r.get("programme")?,
                    ))
                },
            )?;
            let keys: Vec<P<'_>> = manifests.iter().map(|m| P::from(m.0.as_str())).collect();
            let items: Vec<(String, String, String)> = tx.all_in(
                "SELECT manifest_id, reference, details FROM items
                 WHERE withdrawn_at IS NULL AND manifest_id IN ({keys})",
                ps![],
                &keys,
                |r| Ok((r.get("manifest_id")?, r.get("reference")?, r.get("details")?)),
            )?;
            let events: Vec<Recorded> = tx.all_in(
                "SELECT manifest_id, reference, kind, verdict, detail, body FROM events
                 WHERE kind IN ('handed_over', 'exception', 'payment') AND manifest_id IN ({keys})",
                ps![],
                &keys,
                |r| {
                    Ok(Recorded {
                        manifest_id: r.get("manifest_id")?,
                        reference: r.get("reference")?,
                        kind: r.get("kind")?,
                        verdict: r.get("verdict")?,
                        detail: r.get("detail")?,
                        body: r.get("body")?,
                    })
                },
            )?;
            Ok((manifests, items, events))
        })?;
        let owner: BTreeMap<&str, (&str, &str)> = manifests
            .iter()
            .map(|(m, d, a, _)| (m.as_str(), (d.as_str(), a.as_str())))
            .collect();
        let programmes = per_programme(&manifests, &items, &events);
        let mut beats: BTreeMap<&str, BeatFigures> = BTreeMap::new();
        fn beat<'b, 'k>(
            beats: &'b mut BTreeMap<&'k str, BeatFigures>,
            owner: &BTreeMap<&str, (&'k str, &str)>,
            manifest: &str,
        ) -> Option<&'b mut BeatFigures> {
            let (d, a) = owner.get(manifest).copied()?;
            Some(beats.entry(d).or_insert_with(|| BeatFigures {
                device_id: d.to_owned(),
                assignee: a.to_owned(),
                ..Default::default()
            }))
        }
        for (m, _, details) in &items {
            let Some(b) = beat(&mut beats, &owner, m) else {
                continue;
            };
            b.items += 1;
            let details: ItemDetails = serde_json::from_str(details)
                .map_err(|_| Error::Store("stored item details are unreadable"))?;
            b.cod_expected_paise += details.cod().map_or(0, |c| c.amount_paise);
        }
        for Recorded {
            manifest_id: m,
            kind,
            verdict,
            body,
            ..
        } in &events
        {
            let Some(b) = beat(&mut beats, &owner, m) else {
                continue;
            };
            match kind.as_str() {
                "handed_over" if verdict == "verified" => {
                    b.handed_over += 1;
                    b.verified += 1;
                }
                "handed_over" => {
                    b.handed_over += 1;
                    b.flagged += 1;
                }
                "exception" => b.exceptions += 1,
                "payment" if verdict == "recorded" => {
                    let event = Event {
                        seq: 0,
                        prev_hash: [0; 32],
                        body: body.clone(),
                        hash: [0; 32],
                        signature: [0; 64],
                    };
                    if let EventKind::Payment {
                        amount_paise,
                        method,
                        ..
                    } = event.parse_body()?.kind
                    {
                        b.cod_collected_paise += amount_paise;
                        if let PaymentMethod::Upi { txn_ref } = method {
                            b.upi_paise += amount_paise;
                            b.upi_refs.push(txn_ref);
                        }
                    }
                }
                _ => {}
            }
        }
        let mut beats: Vec<BeatFigures> = beats.into_values().collect();
        beats.sort_by(|a, b| {
            a.assignee
                .cmp(&b.assignee)
                .then(a.device_id.cmp(&b.device_id))
        });
        let mut total = BeatFigures {
            device_id: "all".into(),
            assignee: String::new(),
            ..Default::default()
        };
        for b in &beats {
            total.items += b.items;
            total.handed_over += b.handed_over;
            total.verified += b.verified;
            total.flagged += b.flagged;
            total.exceptions += b.exceptions;
            total.cod_expected_paise += b.cod_expected_paise;
            total.cod_collected_paise += b.cod_collected_paise;
            total.upi_paise += b.upi_paise;
            total.upi_refs.extend(b.upi_refs.iter().cloned());
        }
        Ok(RangeReport {
            from: filter.from,
            to: filter.to,
            programmes,
            beats,
            total,
        })
    }
}

/// An amount in paise as rupees with paise: `499.00`.
pub fn rupees(paise: u64) -> String {
    format!("{}.{:02}", paise / 100, paise % 100)
}

/// A report as CSV: one row per device, then the total; amounts in rupees
/// with paise; UPI references separated by spaces. Cells a spreadsheet
/// would run as formulas are quoted with a leading apostrophe.
pub fn to_csv(r: &RangeReport) -> String {
    let mut out = String::from(
        "from,to,device,assignee,items,handed_over,verified,flagged,exceptions,cod_expected_rupees,cod_collected_rupees,upi_rupees,upi_references\n",
    );
    let cell = |s: &str| {
        let s = if s.starts_with(['=', '+', '-', '@']) {
            format!("'{s}")
        } else {
            s.to_owned()
        };
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s
        }
    };
    for b in r.beats.iter().chain(std::iter::once(&r.total)) {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            r.from,
            r.to,
            cell(&b.device_id),
            cell(&b.assignee),
            b.items,
            b.handed_over,
            b.verified,
            b.flagged,
            b.exceptions,
            rupees(b.cod_expected_paise),
            rupees(b.cod_collected_paise),
            rupees(b.upi_paise),
            cell(&b.upi_refs.join(" ")),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_starts_at_midnight_in_india() {
        let d = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        assert_eq!(ist_midnight(d).to_rfc3339(), "2026-11-30T18:30:00+00:00");
    }

    #[test]
    fn csv_cells_cannot_be_formulas() {
        let r = RangeReport {
            from: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            to: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            programmes: Vec::new(),
            beats: vec![BeatFigures {
                device_id: "d1".into(),
                assignee: "=HYPERLINK(\"x\")".into(),
                cod_expected_paise: 49_900,
                ..Default::default()
            }],
            total: BeatFigures::default(),
        };
        let csv = to_csv(&r);
        assert!(csv.contains("\"'=HYPERLINK(\"\"x\"\")\""), "{csv}");
        assert!(csv.contains(",499.00,"), "{csv}");
    }
}
