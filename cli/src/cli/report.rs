//! `handover office report`: the office's figures; with `--from`, `--to`
//! or `--device`, a range's figures per device with cash-on-delivery
//! reconciliation (`handover_office::ledger`), as a table, JSON or CSV.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use clap::Args;
use handover_office::ledger::{self, rupees, RangeReport, ReportFilter};
use handover_office::report;

use super::args::*;
use crate::error::{Error, Result};

/// `office report`'s arguments.
#[derive(Debug, Args)]
pub(super) struct ReportArgs {
    #[command(flatten)]
    d: OfficeDir,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// The figures of these days only, per device, with cash-on-delivery
    /// reconciliation: from this day (YYYY-MM-DD, India's date; default
    /// today when --to, --device or --csv is given).
    #[arg(long, value_name = "DATE")]
    from: Option<String>,
    /// ... to this day, included (default: --from).
    #[arg(long, value_name = "DATE")]
    to: Option<String>,
    /// ... for this device only.
    #[arg(long, value_name = "DEVICE_ID")]
    device: Option<String>,
    /// Print the per-device figures as CSV.
    #[arg(long, conflicts_with = "json")]
    csv: bool,
}

fn day(flag: &str, v: Option<&str>) -> Result<Option<NaiveDate>> {
    v.map(|v| {
        NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
            Error::Usage(format!(
                "{flag}: a day as YYYY-MM-DD, e.g. 2026-12-01; got {v}"
            ))
        })
    })
    .transpose()
}

pub(super) fn run(a: ReportArgs, now: DateTime<Utc>) -> Result<()> {
    if a.from.is_none() && a.to.is_none() && a.device.is_none() && !a.csv {
        let r = a.d.open()?.report()?;
        if a.json {
            println!("{}", json(&r)?);
        } else {
            print!("{}", report::render(&r));
        }
        return Ok(());
    }
    let today = (now + Duration::minutes(330)).date_naive();
    let from = day("--from", a.from.as_deref())?.unwrap_or(today);
    let to = day("--to", a.to.as_deref())?.unwrap_or(from);
    let r = a.d.open()?.report_range(&ReportFilter {
        from,
        to,
        device: a.device,
    })?;
    if a.json {
        println!("{}", json(&r)?);
    } else if a.csv {
        print!("{}", ledger::to_csv(&r));
    } else {
        print!("{}", render_range(&r));
    }
    Ok(())
}

/// A range report as a table.
fn render_range(r: &RangeReport) -> String {
    let mut out = format!(
        "{} to {} (IST)\n{:<18} {:<24} {:>6} {:>9} {:>8} {:>7} {:>10} {:>12} {:>13}\n",
        r.from,
        r.to,
        "DEVICE",
        "CARRIED BY",
        "ITEMS",
        "HANDED",
        "VERIFIED",
        "FLAGGED",
        "EXCEPTIONS",
        "COD EXPECTED",
        "COD COLLECTED"
    );
    for b in r.beats.iter().chain(std::iter::once(&r.total)) {
        out.push_str(&format!(
            "{:<18} {:<24} {:>6} {:>9} {:>8} {:>7} {:>10} {:>12} {:>13}\n",
            b.device_id,
            b.assignee,
            b.items,
            b.handed_over,
            b.verified,
            b.flagged,
            b.exceptions,
            rupees(b.cod_expected_paise),
            rupees(b.cod_collected_paise)
        ));
    }
    out
}
