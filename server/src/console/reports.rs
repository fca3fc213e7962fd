//! Reports: a day's or a range's figures per device, with cash-on-delivery
//! reconciliation (expected, collected, UPI references), and the same as
//! CSV (`&format=csv`): `Office::report_range`, as `handover office report
//! --from --to --device --csv` gives them.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{Duration, NaiveDate, Utc};
use handover_office::ledger::{self, ReportFilter};

use super::words::{self, Words};
use super::{blocking, html, indian, Chrome, ConsoleError, SignedIn};
use crate::Shared;

#[derive(serde::Deserialize)]
pub(super) struct Filter {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    device: String,
    #[serde(default)]
    format: String,
}

type Row = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
);

#[derive(Template)]
#[template(path = "console/reports.html")]
struct ReportsPage {
    c: Chrome,
    w: &'static Words,
    from: String,
    to: String,
    device: String,
    devices: Vec<(String, String)>,
    csv_link: String,
    message: Option<String>,
    rows: Vec<Row>,
}

/// Rupees with paise, the rupees in Indian grouping: `1,23,456.00`.
fn rupees(p: u64) -> String {
    format!("{}.{:02}", indian(p / 100), p % 100)
}

pub(super) async fn page(
    State(svc): State<Shared>,
    SignedIn(s): SignedIn,
    Query(f): Query<Filter>,
) -> Result<Response, ConsoleError> {
    let today = (Utc::now() + Duration::minutes(330)).date_naive();
    let parse = |v: &str| NaiveDate::parse_from_str(v, "%Y-%m-%d").ok();
    let from = parse(&f.from).unwrap_or(today);
    let to = parse(&f.to).unwrap_or(from);
    let filter = ReportFilter {
        from,
        to,
        device: (!f.device.is_empty()).then(|| f.device.clone()),
    };
    let office = svc.office.clone();
    let (report, devices) = blocking(move || {
        Ok((
            office.report_range(&filter),
            office.devices(false, Utc::now())?,
        ))
    })
    .await?;
    if f.format == "csv" {
        let r = report.map_err(|_| {
            ConsoleError(
                StatusCode::BAD_REQUEST,
                "That range cannot be reported: from 1 to 366 days, the end not before the start.",
            )
        })?;
        let name = format!("attachment; filename=\"handover-report-{from}-{to}.csv\"");
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (header::CONTENT_DISPOSITION, name),
            ],
            ledger::to_csv(&r),
        )
            .into_response());
    }
    let (rows, message) = match report {
        Ok(r) => (
            r.beats
                .iter()
                .chain(std::iter::once(&r.total))
                .map(|b| {
                    (
                        b.device_id.clone(),
                        b.assignee.clone(),
                        indian(b.items),
                        indian(b.handed_over),
                        indian(b.verified),
                        indian(b.flagged),
                        indian(b.exceptions),
                        rupees(b.cod_expected_paise),
                        rupees(b.cod_collected_paise),
                        b.upi_refs.join(" "),
                    )
                })
                .collect(),
            None,
        ),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let csv_link = format!(
        "/console/reports?from={from}&to={to}&device={}&format=csv",
        handover_core::api::percent_encode(&f.device)
    );
    html(
        StatusCode::OK,
        &ReportsPage {
            w: words::of(&s.language),
            c: Chrome::of(&svc, s, "reports"),
            from: from.to_string(),
            to: to.to_string(),
            device: f.device,
            devices: devices
                .into_iter()
                .map(|d| (d.device_id, d.assignee))
                .collect(),
            csv_link,
            message,
            rows,
        },
    )
}
