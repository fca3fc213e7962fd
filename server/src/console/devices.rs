//! The Devices page: the list, "Enrol a handheld" (a single-use token and
//! its QR code, holding the office's `public_url` when `office.toml` gives
//! one), and revoking a device after a confirmation page (postmasters
//! only). Every action goes to the audit log under the staff member's name.

use askama::Template;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Duration, Utc};
use handover_office::devices::DeviceSummary;
use handover_office::staff::Role;

use super::words::{self, Words};
use super::{blocking, form_session, html, indian, Chrome, ConsoleError, SignedIn};
use crate::Shared;

/// A device as a row of the console.
pub(super) struct DeviceRow {
    pub(super) device_id: String,
    pub(super) assignee: String,
    pub(super) enrolled: String,
    pub(super) last_sync: String,
    pub(super) events_held: String,
    pub(super) items_open: String,
    pub(super) state: String,
    pub(super) flagged: bool,
    pub(super) revocable: bool,
}

fn when(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "never".to_owned(),
        |t| t.format("%Y-%m-%d %H:%M").to_string(),
    )
}

impl DeviceRow {
    pub(super) fn of(d: DeviceSummary) -> DeviceRow {
        let state = match (&d.flagged, d.revoked_at) {
            (Some(reason), _) => format!("flagged: {reason}"),
            (None, Some(at)) => format!("revoked {}", at.format("%Y-%m-%d")),
            (None, None) => "in use".to_owned(),
        };
        DeviceRow {
            flagged: d.flagged.is_some(),
            revocable: d.revoked_at.is_none(),
            enrolled: when(Some(d.enrolled_at)),
            last_sync: when(d.last_sync_at),
            events_held: indian(d.events_held),
            items_open: indian(d.items_open),
            device_id: d.device_id,
            assignee: d.assignee,
            state,
        }
    }
}

#[derive(Template)]
#[template(path = "console/devices.html")]
struct DevicesPage {
    c: Chrome,
    w: &'static Words,
    can_revoke: bool,
    devices: Vec<DeviceRow>,
}

pub(super) async fn list(
    State(svc): State<Shared>,
    SignedIn(s): SignedIn,
) -> Result<Response, ConsoleError> {
    let office = svc.office.clone();
    let devices = blocking(move || office.devices(false, Utc::now())).await?;
    html(
        StatusCode::OK,
        &DevicesPage {
            can_revoke: s.role == Role::Postmaster,
            w: words::of(&s.language),
            c: Chrome::of(&svc, s, "devices"),
            devices: devices.into_iter().map(DeviceRow::of).collect(),
        },
    )
}

#[derive(serde::Deserialize)]
pub(super) struct EnrolForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    assignee: String,
    #[serde(default)]
    valid_hours: String,
}

#[derive(Template)]
#[template(path = "console/enrolled.html")]
struct EnrolledPage {
    c: Chrome,
    w: &'static Words,
    assignee: String,
    expires: String,
    token: String,
    svg: String,
    holds: String,
}

fn bad_input(why: &'static str) -> ConsoleError {
    ConsoleError(StatusCode::BAD_REQUEST, why)
}

pub(super) async fn enrol(
    State(svc): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<EnrolForm>,
) -> Result<Response, ConsoleError> {
    let s = match form_session(&svc, &headers, &form.csrf_token).await? {
        Ok(s) => s,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let hours: i64 = form
        .valid_hours
        .trim()
        .parse()
        .ok()
        .filter(|h| (1..=24 * 30).contains(h))
        .ok_or(bad_input(
            "Valid for: a number of hours, from 1 to 720. Go back and correct it.",
        ))?;
    let assignee = form.assignee.trim().to_owned();
    if assignee.is_empty() {
        return Err(bad_input(
            "Who will carry it: give a name. Go back and correct it.",
        ));
    }
    let office = svc.office.clone();
    let actor = s.name.clone();
    let issued = blocking(move || {
        office.create_enrol_token_as(&assignee, Duration::hours(hours), &actor, Utc::now())
    })
    .await?;
    let server = svc.office.config().office.public_url.clone();
    let token = issued.token.to_string();
    let code = handover_core::api::enrol_code(server.as_deref(), &token);
    let qr = qrcode::QrCode::with_error_correction_level(code.as_bytes(), qrcode::EcLevel::M)
        .map_err(ConsoleError::internal)?;
    let svg = qr
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .build();
    // Inline in the page: from the <svg> element on (no XML declaration).
    let svg = svg
        .find("<svg")
        .map_or(svg.clone(), |at| svg[at..].to_owned());
    let holds = match &server {
        Some(url) => format!("The code holds the office's address ({url}) and the token."),
        None => "The code holds the token only: set office.public_url in office.toml to put the office's address in it.".to_owned(),
    };
    html(
        StatusCode::OK,
        &EnrolledPage {
            w: words::of(&s.language),
            c: Chrome::of(&svc, s, "devices"),
            assignee: issued.assignee,
            expires: issued.expires_at.format("%Y-%m-%d %H:%M").to_string(),
            token,
            svg,
            holds,
        },
    )
}

#[derive(serde::Deserialize)]
pub(super) struct Which {
    #[serde(default)]
    device: String,
}

#[derive(Template)]
#[template(path = "console/revoke.html")]
struct RevokePage {
    c: Chrome,
    w: &'static Words,
    device_id: String,
    assignee: String,
}

fn postmasters_only() -> ConsoleError {
    ConsoleError(
        StatusCode::FORBIDDEN,
        "Only a postmaster can revoke devices.",
    )
}

pub(super) async fn confirm_revoke(
    State(svc): State<Shared>,
    SignedIn(s): SignedIn,
    Query(which): Query<Which>,
) -> Result<Response, ConsoleError> {
    if s.role != Role::Postmaster {
        return Err(postmasters_only());
    }
    let office = svc.office.clone();
    let id = which.device.clone();
    let device = blocking(move || office.device(&id))
        .await
        .map_err(|_| bad_input("No such device."))?;
    html(
        StatusCode::OK,
        &RevokePage {
            w: words::of(&s.language),
            c: Chrome::of(&svc, s, "devices"),
            device_id: device.device_id,
            assignee: device.assignee,
        },
    )
}

#[derive(serde::Deserialize)]
pub(super) struct RevokeForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    device_id: String,
}

pub(super) async fn revoke(
    State(svc): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<RevokeForm>,
) -> Result<Response, ConsoleError> {
    let s = match form_session(&svc, &headers, &form.csrf_token).await? {
        Ok(s) => s,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    if s.role != Role::Postmaster {
        return Err(postmasters_only());
    }
    let office = svc.office.clone();
    let actor = s.name.clone();
    blocking(move || office.revoke_as(&form.device_id, &actor, Utc::now()))
        .await
        .map_err(|_| bad_input("No such device."))?;
    Ok(Redirect::to("/console/devices").into_response())
}
