//! The office console (issue 16): server-rendered pages under `/console/`
//! for the postmaster and the clerks, over the same office library as the
//! command line, sharing the service's limits and timeouts.
//!
//! A visit:
//!
//! 1. `GET /console/login` sets a sign-in CSRF cookie and shows the form
//!    with the same token; `POST /console/login` (`name`, `password`,
//!    `csrf_token`, form-encoded) refuses a token that is not the cookie's
//!    (403), counts wrong passwords (after 5 for one name, 429 with
//!    `Retry-After`), and on success sets the session cookie (`HttpOnly`,
//!    `SameSite=Strict`, `Path=/console`, `Secure` under TLS or behind a
//!    proxy that says `X-Forwarded-Proto: https`) and sends the browser to
//!    Today.
//! 2. Every page needs a live session (else to the sign-in page); every
//!    form that changes something carries the session's CSRF token (else
//!    403). A session ends after [`SESSION_IDLE`] without a request, at
//!    sign-out, or when its account is disabled.
//! 3. Every answer carries a `Content-Security-Policy` that allows nothing
//!    from another origin (the office LAN may have no internet: the one
//!    stylesheet is embedded in the binary), and is not cached.
//!
//! | file | concern |
//! |---|---|
//! | `mod.rs` | routes, sessions, CSRF, security headers |
//! | `pages.rs` | the pages that only read: Today, the audit log |
//! | `devices.rs` | Devices: enrol a handheld (QR code), revoke |
//! | `issue.rs` | Issue: upload bookings, every bad row, preview, issue |
//! | `items.rs` | Items: find, timeline, send the code again |
//! | `sms.rs` | SMS: the outbox by status, failures, send them again |
//! | `reports.rs` | Reports: a range per device, COD reconciliation, CSV |

mod devices;
pub(crate) mod issue;
mod items;
mod pages;
mod reports;
mod sms;
mod words;

use askama::Template;
use axum::extract::{Form, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{Duration, Utc};
use handover_office::sessions::{Session, SignIn};

use crate::Shared;

/// A session ends after this long without a request.
pub const SESSION_IDLE: Duration = Duration::minutes(30);

const SESSION_COOKIE: &str = "handover_session";
const SIGN_IN_COOKIE: &str = "handover_sign_in";

/// Nothing from another origin; no inline script or style; no framing.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's routes (under `/console`).
pub(crate) fn routes(service: Shared) -> Router<Shared> {
    Router::new()
        .route("/console/login", get(login_form).post(login))
        .route("/console/logout", post(logout))
        .route("/console/language", post(language))
        .route("/console/", get(pages::today))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/devices", get(devices::list))
        .route("/console/devices/enrol", post(devices::enrol))
        .route(
            "/console/devices/revoke",
            get(devices::confirm_revoke).post(devices::revoke),
        )
        .route("/console/audit", get(pages::audit))
        .route("/console/issue", get(issue::form).post(issue::issue))
        .route("/console/issue/progress", get(issue::progress))
        .route(
            "/console/issue/preview",
            post(issue::preview).layer(axum::extract::DefaultBodyLimit::max(issue::MAX_UPLOAD)),
        )
        .route("/console/items", get(items::search))
        .route("/console/item", get(items::item))
        .route("/console/item/resend", post(items::resend))
        .route("/console/item/reissue", post(items::reissue))
        .route("/console/reports", get(reports::page))
        .route("/console/sms", get(sms::list))
        .route("/console/sms/retry", post(sms::retry))
        .route("/console/assets/console.css", get(stylesheet))
        .layer(middleware::from_fn_with_state(service, secure_headers))
}

/// The security headers of every console answer.
async fn secure_headers(
    State(_svc): State<Shared>,
    req: axum::extract::Request,
    next: Next,
) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("../../assets/console.css"),
    )
        .into_response()
}

/// A page that went wrong: a plain sentence, no detail (the log has it).
pub(crate) struct ConsoleError(StatusCode, &'static str);

impl ConsoleError {
    fn internal(e: impl std::fmt::Display) -> ConsoleError {
        tracing::error!(error = %e, "console");
        ConsoleError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong; nothing was changed. Try again, or ask the engineer.",
        )
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let body = format!(
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Office console</title>\
             <link rel=\"stylesheet\" href=\"/console/assets/console.css\"></head><body><main>\
             <p class=\"notice bad\" role=\"alert\">{}</p><p><a href=\"/console/\">Back to the console</a></p>\
             </main></body></html>",
            self.1
        );
        (
            self.0,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response()
    }
}

impl From<handover_office::Error> for ConsoleError {
    fn from(e: handover_office::Error) -> ConsoleError {
        ConsoleError::internal(e)
    }
}

/// What every signed-in page shows around its content: the office, who is
/// signed in and their role, the session's CSRF token for the header's
/// forms, and which page of the navigation this is.
pub(crate) struct Chrome {
    pub office_id: String,
    pub staff: String,
    pub role: &'static str,
    pub csrf: String,
    pub nav: &'static str,
}

impl Chrome {
    /// The chrome of page `nav` for session `s`.
    pub(crate) fn of(svc: &Shared, s: Session, nav: &'static str) -> Chrome {
        Chrome {
            office_id: svc.office.office_id().to_owned(),
            staff: s.name,
            role: s.role.as_str(),
            csrf: s.csrf,
            nav,
        }
    }
}

/// Render a template as an HTML answer.
pub(crate) fn html(status: StatusCode, page: &impl Template) -> Result<Response, ConsoleError> {
    let body = page.render().map_err(ConsoleError::internal)?;
    Ok((
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response())
}

/// Office work on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> handover_office::Result<T> + Send + 'static,
) -> Result<T, ConsoleError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ConsoleError::internal)?
        .map_err(ConsoleError::from)
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value for the console's path: `HttpOnly`,
/// `SameSite=Strict`, `Secure` when the browser reached us over TLS;
/// `max_age` 0 removes it.
fn set_cookie(
    svc: &Shared,
    headers: &HeaderMap,
    name: &str,
    value: &str,
    max_age: Option<i64>,
) -> HeaderValue {
    let secure = svc.tls()
        || headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let mut c = format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    // Tokens are hex: always a valid header value.
    HeaderValue::from_str(&c).unwrap_or(HeaderValue::from_static(""))
}

/// The live session of the request, if any.
pub(crate) async fn session(
    svc: &Shared,
    headers: &HeaderMap,
) -> Result<Option<Session>, ConsoleError> {
    let Some(token) = cookie(headers, SESSION_COOKIE).map(str::to_owned) else {
        return Ok(None);
    };
    let office = svc.office.clone();
    blocking(move || office.session(&token, SESSION_IDLE, Utc::now())).await
}

/// A request with a live session; without one, the answer is the way to
/// the sign-in form.
pub(crate) struct SignedIn(pub Session);

impl axum::extract::FromRequestParts<Shared> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        svc: &Shared,
    ) -> Result<SignedIn, Response> {
        match session(svc, &parts.headers).await {
            Ok(Some(s)) => Ok(SignedIn(s)),
            Ok(None) => Err(Redirect::to("/console/login").into_response()),
            Err(e) => Err(e.into_response()),
        }
    }
}

/// Whether `given` is `expected`, in constant time; empty never matches.
fn same_token(given: &str, expected: &str) -> bool {
    !expected.is_empty()
        && handover_core::rules::constant_time_eq(given.as_bytes(), expected.as_bytes())
}

fn forbidden() -> ConsoleError {
    ConsoleError(
        StatusCode::FORBIDDEN,
        "This form has expired or did not come from the console. Go back, reload the page and try again.",
    )
}

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage<'a> {
    w: &'static words::Words,
    csrf: &'a str,
    name: &'a str,
    message: Option<String>,
}

/// `N` random bytes as hex: a sign-in token (32), an upload's or an
/// issue's id (16).
pub(crate) fn random_hex<const N: usize>() -> Result<String, ConsoleError> {
    let mut b = [0u8; N];
    handover_core::keys::fill_random(&mut b).map_err(ConsoleError::internal)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// The sign-in form, with a new sign-in token in a cookie and the form.
fn login_page(
    svc: &Shared,
    headers: &HeaderMap,
    status: StatusCode,
    name: &str,
    message: Option<String>,
) -> Result<Response, ConsoleError> {
    let csrf = random_hex::<32>()?;
    let mut resp = html(
        status,
        &LoginPage {
            w: &words::EN,
            csrf: &csrf,
            name,
            message,
        },
    )?;
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(svc, headers, SIGN_IN_COOKIE, &csrf, None),
    );
    Ok(resp)
}

async fn login_form(
    State(svc): State<Shared>,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    if session(&svc, &headers).await?.is_some() {
        return Ok(Redirect::to("/console/").into_response());
    }
    login_page(&svc, &headers, StatusCode::OK, "", None)
}

#[derive(serde::Deserialize)]
struct LoginForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf_token: String,
}

async fn login(
    State(svc): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, ConsoleError> {
    let expected = cookie(&headers, SIGN_IN_COOKIE).unwrap_or("");
    if !same_token(&form.csrf_token, expected) {
        return Err(forbidden());
    }
    let office = svc.office.clone();
    let (name, password) = (form.name.clone(), zeroize::Zeroizing::new(form.password));
    let outcome = blocking(move || {
        let now = Utc::now();
        match office.sign_in_limited(&name, &password, now)? {
            SignIn::Staff(staff) => Ok(Ok(office.start_session(&staff, now)?)),
            other => Ok(Err(other)),
        }
    })
    .await?;
    match outcome {
        Ok((token, session)) => {
            tracing::info!(staff = %session.name, "console sign-in");
            let mut resp = Redirect::to("/console/").into_response();
            let h = resp.headers_mut();
            h.append(
                header::SET_COOKIE,
                set_cookie(&svc, &headers, SESSION_COOKIE, &token, None),
            );
            h.append(
                header::SET_COOKIE,
                set_cookie(&svc, &headers, SIGN_IN_COOKIE, "", Some(0)),
            );
            Ok(resp)
        }
        Err(SignIn::Wait(until)) => {
            tracing::warn!("console sign-in refused: too many wrong passwords for one name");
            let wait = (until - Utc::now()).num_seconds().max(1);
            let mut resp = login_page(
                &svc,
                &headers,
                StatusCode::TOO_MANY_REQUESTS,
                &form.name,
                Some(format!(
                    "{} {} {}.",
                    words::EN.too_many,
                    (wait + 59) / 60,
                    words::EN.minutes
                )),
            )?;
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait as u64));
            Ok(resp)
        }
        Err(_) => {
            tracing::warn!("console sign-in refused");
            login_page(
                &svc,
                &headers,
                StatusCode::UNAUTHORIZED,
                &form.name,
                Some(words::EN.wrong_password.into()),
            )
        }
    }
}

#[derive(serde::Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    csrf_token: String,
}

/// The session of a form that changes something: a live session and its
/// CSRF token, else 403 (or the sign-in page).
pub(crate) async fn form_session(
    svc: &Shared,
    headers: &HeaderMap,
    csrf_token: &str,
) -> Result<Result<Session, Response>, ConsoleError> {
    let Some(s) = session(svc, headers).await? else {
        return Ok(Err(Redirect::to("/console/login").into_response()));
    };
    if !same_token(csrf_token, &s.csrf) {
        return Err(forbidden());
    }
    Ok(Ok(s))
}

async fn logout(
    State(svc): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    if let Err(to_sign_in) = form_session(&svc, &headers, &form.csrf_token).await? {
        return Ok(to_sign_in);
    }
    if let Some(token) = cookie(&headers, SESSION_COOKIE).map(str::to_owned) {
        let office = svc.office.clone();
        blocking(move || office.end_session(&token, Utc::now())).await?;
    }
    let mut resp = Redirect::to("/console/login").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&svc, &headers, SESSION_COOKIE, "", Some(0)),
    );
    Ok(resp)
}

#[derive(serde::Deserialize)]
struct LanguageForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    language: String,
}

/// Switch the console's language for the signed-in staff member.
async fn language(
    State(svc): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<LanguageForm>,
) -> Result<Response, ConsoleError> {
    let s = match form_session(&svc, &headers, &form.csrf_token).await? {
        Ok(s) => s,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let office = svc.office.clone();
    blocking(move || office.set_staff_language(&s.name, &form.language))
        .await
        .map_err(|_| {
            ConsoleError(
                StatusCode::BAD_REQUEST,
                "The console speaks English and Hindi.",
            )
        })?;
    Ok(Redirect::to("/console/").into_response())
}

/// `n` in Indian grouping: 1,23,45,678.
pub(crate) fn indian(n: u64) -> String {
    let digits = n.to_string();
    if digits.len() <= 3 {
        return digits;
    }
    let (head, last3) = digits.split_at(digits.len() - 3);
    let mut out = String::new();
    for (i, c) in head.chars().enumerate() {
        if i > 0 && (head.len() - i) % 2 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{out},{last3}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_indian_grouping() {
        for (n, s) in [
            (0, "0"),
            (999, "999"),
            (1_000, "1,000"),
            (12_345, "12,345"),
            (123_456, "1,23,456"),
            (1_234_567, "12,34,567"),
            (3_700_000, "37,00,000"),
            (123_456_789, "12,34,56,789"),
        ] {
            assert_eq!(indian(n), s);
        }
    }

    #[test]
    fn cookies_are_read_by_name() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; handover_session=abc"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
        assert!(!same_token("", ""));
        assert!(same_token("x", "x"));
    }
}
