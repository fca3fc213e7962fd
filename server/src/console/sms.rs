//! The SMS page: the outbox by status, the failed messages with the
//! gateway's reasons, and sending them again (audited). Numbers are shown
//! masked; texts are never stored, so never shown.

use askama::Template;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::Utc;

use super::words::{self, Words};
use super::{blocking, form_session, html, indian, Chrome, ConsoleError, CsrfForm, SignedIn};
use crate::Shared;

/// Failed messages listed at most.
const FAILED_SHOWN: i64 = 200;

#[derive(Template)]
#[template(path = "console/sms.html")]
struct SmsPage {
    c: Chrome,
    w: &'static Words,
    message: Option<String>,
    figures: Vec<(String, String)>,
    failed: Vec<(String, String, String, u32, String, String)>,
}

async fn page(
    svc: &Shared,
    s: handover_office::sessions::Session,
    message: Option<String>,
) -> Result<Response, ConsoleError> {
    let office = svc.office.clone();
    let (report, failed) =
        blocking(move || Ok((office.report()?, office.sms_failed(FAILED_SHOWN)?))).await?;
    let n = |status: &str| indian(report.sms.get(status).copied().unwrap_or(0));
    let w = words::of(&s.language);
    let figures = vec![
        (n("queued"), w.sms_queued.to_owned()),
        (n("sent"), w.sms_sent.to_owned()),
        (n("failed"), w.sms_failed.to_owned()),
        (indian(report.sms_segments), w.segments.to_owned()),
    ];
    let failed = failed
        .into_iter()
        .map(|m| {
            (
                m.reference,
                m.purpose.as_str().to_owned(),
                m.mobile,
                m.attempts,
                m.reason.unwrap_or_default(),
                m.updated_at.format("%Y-%m-%d %H:%M").to_string(),
            )
        })
        .collect();
    html(
        StatusCode::OK,
        &SmsPage {
            w: words::of(&s.language),
            c: Chrome::of(svc, s, "sms"),
            message,
            figures,
            failed,
        },
    )
}

pub(super) async fn list(
    State(svc): State<Shared>,
    SignedIn(s): SignedIn,
) -> Result<Response, ConsoleError> {
    page(&svc, s, None).await
}

pub(super) async fn retry(
    State(svc): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    let s = match form_session(&svc, &headers, &form.csrf_token).await? {
        Ok(s) => s,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let office = svc.office.clone();
    let actor = s.name.clone();
    let n = blocking(move || office.sms_requeue_failed_as(&actor, Utc::now())).await?;
    page(
        &svc,
        s,
        Some(format!(
            "{} messages are queued to be sent again.",
            indian(n)
        )),
    )
    .await
}
