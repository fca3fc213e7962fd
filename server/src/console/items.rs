//! Items: find an item by reference or by the last digits of its
//! recipient's mobile; its timeline (manifests, code versions, events with
//! verdicts, SMS with status); send its code again; re-issue it with a new
//! code (the next revision of its manifest). Both audited.

use askama::Template;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use handover_core::codes::Programme;
use handover_office::timeline::{ItemHit, Timeline};

use super::words::{self, Words};
use super::{blocking, form_session, html, Chrome, ConsoleError, SignedIn};
use crate::Shared;

#[derive(serde::Deserialize)]
pub(super) struct Search {
    #[serde(default)]
    q: Option<String>,
}

#[derive(Template)]
#[template(path = "console/items.html")]
struct ItemsPage {
    c: Chrome,
    w: &'static Words,
    q: String,
    searched: bool,
    hits: Vec<ItemHit>,
}

pub(super) async fn search(
    State(svc): State<Shared>,
    SignedIn(s): SignedIn,
    Query(search): Query<Search>,
) -> Result<Response, ConsoleError> {
    let q = search.q.unwrap_or_default();
    let office = svc.office.clone();
    let query = q.clone();
    let hits = if q.trim().is_empty() {
        Vec::new()
    } else {
        blocking(move || office.find_items(&query)).await?
    };
    html(
        StatusCode::OK,
        &ItemsPage {
            w: words::of(&s.language),
            c: Chrome::of(&svc, s, "items"),
            searched: !q.trim().is_empty(),
            q,
            hits,
        },
    )
}

#[derive(serde::Deserialize)]
pub(super) struct Which {
    #[serde(default)]
    programme: String,
    #[serde(default)]
    reference: String,
}

#[derive(Template)]
#[template(path = "console/item.html")]
struct ItemPage {
    c: Chrome,
    w: &'static Words,
    programme: String,
    reference: String,
    message: Option<String>,
    t: Timeline,
    codes: Vec<(u32, String, String)>,
    events: Vec<(String, String, String, String, String)>,
    sms: Vec<(String, String, String, String, String)>,
}

fn at(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

fn not_found() -> ConsoleError {
    ConsoleError(StatusCode::NOT_FOUND, "No such item.")
}

async fn item_page(
    svc: &Shared,
    s: handover_office::sessions::Session,
    which: Which,
    message: Option<String>,
) -> Result<Response, ConsoleError> {
    let programme: Programme = which.programme.parse().map_err(|_| not_found())?;
    let office = svc.office.clone();
    let reference = which.reference.clone();
    let t = blocking(move || office.item_timeline(programme, &reference))
        .await
        .map_err(|_| not_found())?;
    let codes = t
        .codes
        .iter()
        .map(|c| (c.version, c.key_id.clone(), at(c.issued_at)))
        .collect();
    let events = t
        .events
        .iter()
        .map(|e| {
            let what = match &e.detail {
                Some(d) => format!("{} ({d})", e.kind.replace('_', " ")),
                None => e.kind.replace('_', " "),
            };
            (
                at(e.device_time),
                what,
                e.verdict.replace('_', " "),
                format!("{} #{}", e.device_id, e.seq),
                at(e.received_at),
            )
        })
        .collect();
    let sms = t
        .sms
        .iter()
        .map(|m| {
            let what = match m.code_version {
                Some(v) => format!("{} (version {v})", m.purpose.as_str()),
                None => m.purpose.as_str().to_owned(),
            };
            (
                what,
                m.mobile.clone(),
                m.status.clone(),
                m.reason.clone().unwrap_or_default(),
                at(m.updated_at),
            )
        })
        .collect();
    html(
        StatusCode::OK,
        &ItemPage {
            w: words::of(&s.language),
            c: Chrome::of(svc, s, "items"),
            programme: programme.as_str().to_owned(),
            reference: which.reference,
            message,
            t,
            codes,
            events,
            sms,
        },
    )
}

pub(super) async fn item(
    State(svc): State<Shared>,
    SignedIn(s): SignedIn,
    Query(which): Query<Which>,
) -> Result<Response, ConsoleError> {
    item_page(&svc, s, which, None).await
}

#[derive(serde::Deserialize)]
pub(super) struct ResendForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    programme: String,
    #[serde(default)]
    reference: String,
}

pub(super) async fn resend(
    State(svc): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<ResendForm>,
) -> Result<Response, ConsoleError> {
    let s = match form_session(&svc, &headers, &form.csrf_token).await? {
        Ok(s) => s,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let office = svc.office.clone();
    let (actor, reference) = (s.name.clone(), form.reference.clone());
    blocking(move || office.sms_resend_as(&reference, &actor, Utc::now()))
        .await
        .map_err(|_| not_found())?;
    let which = Which {
        programme: form.programme,
        reference: form.reference,
    };
    item_page(
        &svc,
        s,
        which,
        Some("The code is queued to be sent again.".into()),
    )
    .await
}

pub(super) async fn reissue(
    State(svc): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<ResendForm>,
) -> Result<Response, ConsoleError> {
    let s = match form_session(&svc, &headers, &form.csrf_token).await? {
        Ok(s) => s,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let programme: Programme = form.programme.parse().map_err(|_| not_found())?;
    let office = svc.office.clone();
    let (actor, reference) = (s.name.clone(), form.reference.clone());
    let issued =
        blocking(move || office.reissue_item_as(programme, &reference, &actor, Utc::now()))
            .await
            .map_err(|_| {
                ConsoleError(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "This item is in no manifest still open: it cannot be re-issued.",
                )
            })?;
    let which = Which {
        programme: form.programme,
        reference: form.reference,
    };
    item_page(
        &svc,
        s,
        which,
        Some(format!(
            "A new code is issued (revision {} of {}); its SMS is queued. The device takes it at its next sync.",
            issued.revision, issued.manifest_id
        )),
    )
    .await
}
