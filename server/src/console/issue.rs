//! The Issue page: upload a bookings CSV for a device; every bad row is
//! listed (line, column, what to fix), not only the first; a preview
//! (items, new, unchanged, withdrawn, SMS segments, the policy's risk
//! figures) before anything is issued; then the issue, under the staff
//! member's name in the audit log.
//!
//! Between the preview and the issue the upload waits in this process's
//! memory ([`Pending`], at most [`MAX_PENDING`], for [`PENDING_FOR`]), bound
//! to the staff member who sent it: several servers behind a load balancer
//! need sticky sessions for the console.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use askama::Template;
use axum::extract::{Form, Multipart, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Duration, Utc};
use handover_core::codes::Programme;
use handover_office::bookings;
use handover_office::issue::IssueRequest;

use super::words::{self, Words};
use super::{blocking, form_session, html, indian, random_hex, Chrome, ConsoleError, SignedIn};
use crate::Shared;

/// Uploads waiting between preview and issue, per process.
pub(crate) const MAX_PENDING: usize = 64;
/// How long an upload waits for its Issue.
pub(crate) const PENDING_FOR: Duration = Duration::minutes(30);
/// The largest bookings file taken (about 100,000 rows).
pub(crate) const MAX_UPLOAD: usize = 16 * 1024 * 1024;

/// An upload between its preview and its issue.
pub(crate) struct Upload {
    staff: String,
    device_id: String,
    programme: Programme,
    rows: Vec<bookings::Booking>,
    at: DateTime<Utc>,
}

/// An issue running: how far it is, and how it ended.
pub(crate) struct Job {
    staff: String,
    total: usize,
    done: AtomicUsize,
    outcome: Mutex<Option<Result<Done, String>>>,
    at: DateTime<Utc>,
}

/// An issue that went through.
#[derive(Clone)]
struct Done {
    manifest_id: String,
    revision: u32,
    items: usize,
    sms: usize,
}

/// The uploads waiting, and the issues running or just ended, by random
/// ids.
#[derive(Default)]
pub(crate) struct Pending {
    uploads: Mutex<HashMap<String, Upload>>,
    jobs: Mutex<HashMap<String, Arc<Job>>>,
}

impl Pending {
    fn start(&self, job: Arc<Job>) -> Result<String, ConsoleError> {
        let id = random_hex::<16>()?;
        let mut map = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let now = Utc::now();
        map.retain(|_, j| now - j.at < PENDING_FOR);
        map.insert(id.clone(), job);
        Ok(id)
    }

    fn job(&self, id: &str, staff: &str) -> Option<Arc<Job>> {
        let map = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        map.get(id).filter(|j| j.staff == staff).cloned()
    }

    fn put(&self, upload: Upload) -> Result<String, ConsoleError> {
        let id = random_hex::<16>()?;
        let mut map = self.uploads.lock().unwrap_or_else(|p| p.into_inner());
        let now = Utc::now();
        map.retain(|_, u| now - u.at < PENDING_FOR);
        if map.len() >= MAX_PENDING {
            return Err(ConsoleError(
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many previews wait to be issued. Issue or cancel one, or try again in a while.",
            ));
        }
        map.insert(id.clone(), upload);
        Ok(id)
    }

    fn take(&self, id: &str, staff: &str) -> Option<Upload> {
        let mut map = self.uploads.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = map
            .get(id)
            .is_some_and(|u| u.staff == staff && Utc::now() - u.at < PENDING_FOR);
        fresh.then(|| map.remove(id)).flatten()
    }
}

/// A problem row as shown.
struct ProblemRow {
    line: u64,
    column: String,
    why: String,
}

#[derive(Template)]
#[template(path = "console/issue.html")]
struct IssuePage {
    c: Chrome,
    w: &'static Words,
    devices: Vec<(String, String)>,
    chosen: String,
    message: Option<String>,
    problems: Vec<ProblemRow>,
    more: usize,
}

/// The devices one may issue to: enrolled, not revoked, not simulated.
async fn devices(svc: &Shared) -> Result<Vec<(String, String)>, ConsoleError> {
    let office = svc.office.clone();
    let all = blocking(move || office.devices(false, Utc::now())).await?;
    Ok(all
        .into_iter()
        .filter(|d| d.revoked_at.is_none())
        .map(|d| (d.device_id, d.assignee))
        .collect())
}

async fn issue_page(
    svc: &Shared,
    s: handover_office::sessions::Session,
    status: StatusCode,
    chosen: String,
    message: Option<String>,
    problems: Vec<ProblemRow>,
    more: usize,
) -> Result<Response, ConsoleError> {
    html(
        status,
        &IssuePage {
            w: words::of(&s.language),
            c: Chrome::of(svc, s, "issue"),
            devices: devices(svc).await?,
            chosen,
            message,
            problems,
            more,
        },
    )
}

/// The Issue page again, with what stopped the issue.
async fn refused(
    svc: &Shared,
    s: handover_office::sessions::Session,
    status: StatusCode,
    chosen: String,
    why: impl Into<String>,
) -> Result<Response, ConsoleError> {
    issue_page(svc, s, status, chosen, Some(why.into()), Vec::new(), 0).await
}

pub(super) async fn form(
    State(svc): State<Shared>,
    SignedIn(s): SignedIn,
) -> Result<Response, ConsoleError> {
    issue_page(&svc, s, StatusCode::OK, String::new(), None, Vec::new(), 0).await
}

#[derive(Template)]
#[template(path = "console/preview.html")]
struct PreviewPage {
    c: Chrome,
    w: &'static Words,
    p: handover_office::preview::IssuePreview,
    items: String,
    new_codes: String,
    unchanged: String,
    withdrawn: String,
    segments: String,
    policy: String,
    impostor: String,
    insider: String,
    typo: String,
    upload: String,
}

fn percent(p: f64) -> String {
    if p > 0.0 && p < 0.0001 {
        format!("1 in {}", indian((1.0 / p).round() as u64))
    } else {
        format!("{:.2} %", p * 100.0)
    }
}

/// The multipart form's fields: the token, device, programme and file.
async fn read_upload(
    mut parts: Multipart,
) -> Result<(String, String, String, Vec<u8>), ConsoleError> {
    let bad = |_| {
        ConsoleError(
            StatusCode::BAD_REQUEST,
            "The form could not be read. Go back and try again.",
        )
    };
    let (mut csrf, mut device, mut programme, mut file) =
        (String::new(), String::new(), String::new(), Vec::new());
    while let Some(field) = parts.next_field().await.map_err(bad)? {
        match field.name().unwrap_or("") {
            "csrf_token" => csrf = field.text().await.map_err(bad)?,
            "device_id" => device = field.text().await.map_err(bad)?,
            "programme" => programme = field.text().await.map_err(bad)?,
            "bookings" => file = field.bytes().await.map_err(bad)?.to_vec(),
            _ => {}
        }
    }
    Ok((csrf, device, programme, file))
}

pub(super) async fn preview(
    State(svc): State<Shared>,
    headers: HeaderMap,
    parts: Multipart,
) -> Result<Response, ConsoleError> {
    let (csrf, device_id, programme, file) = read_upload(parts).await?;
    let s = match form_session(&svc, &headers, &csrf).await? {
        Ok(s) => s,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let Ok(programme) = programme.parse::<Programme>() else {
        return refused(
            &svc,
            s,
            StatusCode::BAD_REQUEST,
            device_id,
            "Choose a programme: post or vaccination.",
        )
        .await;
    };
    let office = svc.office.clone();
    let parsed = {
        let office = office.clone();
        blocking(move || {
            Ok(bookings::parse(
                programme,
                &file,
                office.cod_payee(),
                chrono::Datelike::year(&Utc::now()),
            ))
        })
        .await?
    };
    let rows = match parsed {
        Ok(rows) => rows,
        Err(handover_office::Error::BookingRows { problems, more }) => {
            let problems = problems
                .into_iter()
                .map(|p| ProblemRow {
                    line: p.line,
                    column: p.column,
                    why: p.why,
                })
                .collect();
            return issue_page(
                &svc,
                s,
                StatusCode::UNPROCESSABLE_ENTITY,
                device_id,
                None,
                problems,
                more,
            )
            .await;
        }
        Err(e) => {
            let why = e.to_string();
            return refused(&svc, s, StatusCode::UNPROCESSABLE_ENTITY, device_id, why).await;
        }
    };
    let (device, rows_for_preview) = (device_id.clone(), rows.clone());
    let previewed = blocking(move || {
        let now = Utc::now();
        let req = IssueRequest::new(&device, programme, &rows_for_preview, now);
        Ok(office.preview_issue(&req))
    })
    .await?;
    let p = match previewed {
        Ok(p) => p,
        Err(e) => {
            let why = e.to_string();
            return refused(&svc, s, StatusCode::UNPROCESSABLE_ENTITY, device_id, why).await;
        }
    };
    let upload = svc.console.put(Upload {
        staff: s.name.clone(),
        device_id,
        programme,
        rows,
        at: Utc::now(),
    })?;
    html(
        StatusCode::OK,
        &PreviewPage {
            w: words::of(&s.language),
            c: Chrome::of(&svc, s, "issue"),
            items: indian(p.items as u64),
            new_codes: indian(p.new_codes as u64),
            unchanged: indian(p.unchanged as u64),
            withdrawn: indian(p.withdrawn as u64),
            segments: indian(p.sms_segments as u64),
            policy: p.policy.to_string(),
            impostor: percent(p.risk.impostor_acceptance),
            insider: percent(p.risk.insider_undetected),
            typo: percent(p.risk.typo_caught),
            p,
            upload,
        },
    )
}

#[derive(serde::Deserialize)]
pub(super) struct IssueForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    upload: String,
}

#[derive(Template)]
#[template(path = "console/issued.html")]
struct IssuedPage {
    c: Chrome,
    w: &'static Words,
    manifest_id: String,
    revision: u32,
    items: String,
    sms: String,
}

pub(super) async fn issue(
    State(svc): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<IssueForm>,
) -> Result<Response, ConsoleError> {
    let s = match form_session(&svc, &headers, &form.csrf_token).await? {
        Ok(s) => s,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let Some(upload) = svc.console.take(&form.upload, &s.name) else {
        return issue_page(
            &svc,
            s,
            StatusCode::GONE,
            String::new(),
            Some("That preview has expired or was issued already. Upload the file again.".into()),
            Vec::new(),
            0,
        )
        .await;
    };
    // The work (PBKDF2 for every new code) runs on; the browser follows
    // its progress.
    let job = Arc::new(Job {
        staff: s.name.clone(),
        total: upload.rows.len(),
        done: AtomicUsize::new(0),
        outcome: Mutex::new(None),
        at: Utc::now(),
    });
    let id = svc.console.start(job.clone())?;
    let office = svc.office.clone();
    tokio::task::spawn_blocking(move || {
        let now = Utc::now();
        let req = IssueRequest::new(&upload.device_id, upload.programme, &upload.rows, now);
        let tick = || {
            job.done.fetch_add(1, Ordering::Relaxed);
        };
        let outcome = office
            .issue_as(&req, &job.staff, &tick, |_| Ok(()))
            .map(|i| Done {
                manifest_id: i.manifest_id,
                revision: i.revision,
                items: i.items,
                sms: i.sms_ids.len(),
            })
            .map_err(|e| {
                tracing::warn!(error = %e, "console issue");
                e.to_string()
            });
        *job.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
    });
    Ok(Redirect::to(&format!("/console/issue/progress?job={id}")).into_response())
}

#[derive(serde::Deserialize)]
pub(super) struct JobQuery {
    #[serde(default)]
    job: String,
}

#[derive(Template)]
#[template(path = "console/progress.html")]
struct ProgressPage {
    c: Chrome,
    w: &'static Words,
    done: usize,
    total: usize,
}

pub(super) async fn progress(
    State(svc): State<Shared>,
    SignedIn(s): SignedIn,
    Query(q): Query<JobQuery>,
) -> Result<Response, ConsoleError> {
    let Some(job) = svc.console.job(&q.job, &s.name) else {
        return Err(ConsoleError(
            StatusCode::NOT_FOUND,
            "No such issue in progress.",
        ));
    };
    let outcome = job
        .outcome
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    match outcome {
        None => html(
            StatusCode::OK,
            &ProgressPage {
                w: words::of(&s.language),
                c: Chrome::of(&svc, s, "issue"),
                done: job.done.load(Ordering::Relaxed).min(job.total),
                total: job.total,
            },
        ),
        Some(Err(why)) => {
            issue_page(
                &svc,
                s,
                StatusCode::UNPROCESSABLE_ENTITY,
                String::new(),
                Some(why),
                Vec::new(),
                0,
            )
            .await
        }
        Some(Ok(done)) => html(
            StatusCode::OK,
            &IssuedPage {
                w: words::of(&s.language),
                c: Chrome::of(&svc, s, "issue"),
                manifest_id: done.manifest_id,
                revision: done.revision,
                items: indian(done.items as u64),
                sms: indian(done.sms as u64),
            },
        ),
    }
}
