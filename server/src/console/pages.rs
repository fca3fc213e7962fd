//! The console's pages that only read: Today and the audit log (Devices,
//! with its forms, is `devices.rs`). Each reads the
//! office through the library (`Office::report`, `Office::devices`,
//! `Office::audit_log`), the same queries as the command line's `office
//! report` and `office devices`.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{Duration, Utc};
use handover_office::ledger::ReportFilter;

use super::devices::DeviceRow;
use super::words::{self, Words};
use super::{blocking, html, indian, Chrome, ConsoleError, SignedIn};
use crate::Shared;

/// A flagged device's notice.
struct FlagNotice {
    device_id: String,
    assignee: String,
    reason: String,
}

/// A programme's figures on Today.
struct ProgrammeCard {
    name: String,
    items: String,
    handed_over: String,
    verified: String,
    pending: String,
    exceptions: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "console/today.html")]
struct TodayPage {
    c: Chrome,
    w: &'static Words,
    flagged: Vec<FlagNotice>,
    programmes: Vec<ProgrammeCard>,
    sms: (String, String, String),
    lost: Option<String>,
    synced: String,
    not_synced: String,
    devices: Vec<DeviceRow>,
}

pub(super) async fn today(
    State(svc): State<Shared>,
    SignedIn(s): SignedIn,
) -> Result<Response, ConsoleError> {
    let office = svc.office.clone();
    let day = (Utc::now() + Duration::minutes(330)).date_naive();
    let (report, range, devices) = blocking(move || {
        let range = office.report_range(&ReportFilter {
            from: day,
            to: day,
            device: None,
        })?;
        Ok((office.report()?, range, office.devices(false, Utc::now())?))
    })
    .await?;
    let sms = |status: &str| indian(report.sms.get(status).copied().unwrap_or(0));
    let sms = (sms("queued"), sms("sent"), sms("failed"));
    let lost = (report.events_lost > 0).then(|| indian(report.events_lost));
    let synced_today = devices
        .iter()
        .filter(|d| {
            d.last_sync_at
                .is_some_and(|t| (t + Duration::minutes(330)).date_naive() == day)
        })
        .count() as u64;
    let not_synced = devices.len() as u64 - synced_today;
    let programmes = range
        .programmes
        .into_iter()
        .map(|p| ProgrammeCard {
            name: p.programme,
            items: indian(p.items),
            handed_over: indian(p.handed_over),
            verified: indian(p.verified),
            pending: indian(p.pending),
            exceptions: p
                .exceptions
                .into_iter()
                .map(|(k, v)| (k.replace('_', " "), indian(v)))
                .collect(),
        })
        .collect();
    let page = TodayPage {
        w: words::of(&s.language),
        c: Chrome::of(&svc, s, "today"),
        flagged: report
            .flagged
            .into_iter()
            .map(|f| FlagNotice {
                device_id: f.device_id,
                assignee: f.assignee,
                reason: f.reason,
            })
            .collect(),
        programmes,
        sms,
        lost,
        synced: indian(synced_today),
        not_synced: indian(not_synced),
        devices: devices.into_iter().map(DeviceRow::of).collect(),
    };
    html(StatusCode::OK, &page)
}

/// An audit entry as shown.
struct AuditRow {
    at: String,
    actor: String,
    action: String,
    subject: String,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    c: Chrome,
    w: &'static Words,
    entries: Vec<AuditRow>,
}

pub(super) async fn audit(
    State(svc): State<Shared>,
    SignedIn(s): SignedIn,
) -> Result<Response, ConsoleError> {
    let office = svc.office.clone();
    let entries = blocking(move || office.audit_log(500)).await?;
    html(
        StatusCode::OK,
        &AuditPage {
            w: words::of(&s.language),
            c: Chrome::of(&svc, s, "audit"),
            entries: entries
                .into_iter()
                .map(|e| AuditRow {
                    at: e.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    actor: e.actor,
                    action: e.action,
                    subject: e.subject,
                })
                .collect(),
        },
    )
}
