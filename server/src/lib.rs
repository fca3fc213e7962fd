//! # handover-server
//!
//! The office sync service: field devices enrol by token, pull their
//! manifests and push their outbox over HTTP(S) when they are back in
//! coverage. It is a thin layer over `handover-office`; the API is
//! `docs/sync-api.md`, its types and signatures are `handover_core::api`.
//!
//! A request's life:
//!
//! 1. The body is read, up to a limit per route (413 beyond it), within the
//!    request timeout (408).
//! 2. A signed request's headers are checked against the device's enrolled
//!    key, the office's clock and the nonces seen (401, or 403 for a revoked
//!    device); then the device's rate (429).
//! 3. The office does the work on a blocking thread: one writer for the
//!    database, readers beside it. A batch's answer is the sealed ack, the
//!    same bytes however often the batch is sent.
//! 4. The answer is counted in `/metrics` by route, status and latency.
//!
//! | file | concern |
//! |---|---|
//! | `lib.rs` | routes and handlers of the sync API |
//! | `console/` | the office console, pages for office staff in a browser |
//! | `run.rs` | listening, TLS, graceful shutdown |
//! | `error.rs` | refusals as statuses and JSON bodies |
//! | `limits.rs` | body sizes, timeouts, per-device and per-address rates |
//! | `conn.rs` | the connection cap, in all and per client address |
//! | `metrics.rs` | Prometheus text |

#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use handover_core::api::{self, EnrolRequest, ErrorCode, ManifestsRequest, SignedRequest};
use handover_core::sync::Batch;
use handover_office::Office;

mod conn;
mod console;
pub mod error;
pub mod limits;
pub mod metrics;
mod run;

pub use error::Failure;
pub use limits::Limits;
pub use run::{run, spawn, tls_config, Running, ServeError};

/// What the handlers share.
pub struct Service {
    office: Arc<Office>,
    metrics: metrics::Metrics,
    limiter: limits::RateLimiter,
    enrol_limiter: limits::RateLimiter,
    slots: conn::Slots,
    limits: Limits,
    /// Whether browsers reach this service over TLS (cookies are `Secure`).
    tls: std::sync::atomic::AtomicBool,
    /// The console's uploads between their preview and their issue.
    console: console::issue::Pending,
}

impl Service {
    /// A service over `office` with `limits`.
    pub fn new(office: Arc<Office>, limits: Limits) -> Arc<Service> {
        Arc::new(Service {
            limiter: limits::RateLimiter::new(
                limits.per_device_per_second,
                limits.per_device_burst,
            ),
            enrol_limiter: limits::RateLimiter::new(
                limits.enrol_per_address_per_second,
                limits.enrol_per_address_burst,
            ),
            slots: conn::Slots::new(limits.max_connections, limits.max_connections_per_address),
            office,
            metrics: metrics::Metrics::default(),
            limits,
            tls: std::sync::atomic::AtomicBool::new(false),
            console: Default::default(),
        })
    }

    /// Whether this service terminates TLS itself.
    pub(crate) fn tls(&self) -> bool {
        self.tls.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.slots.open()
    }

    /// The office behind the service.
    pub fn office(&self) -> &Arc<Office> {
        &self.office
    }
}

type Shared = Arc<Service>;

/// The service's routes.
pub fn router(service: Shared) -> Router {
    let small = DefaultBodyLimit::max(service.limits.small_bytes);
    let large = DefaultBodyLimit::max(service.limits.batch_bytes);
    Router::new()
        .route(api::HEALTH, get(health))
        .route(api::METRICS, get(metrics_text))
        .route(api::ENROL, post(enrol).layer(small))
        .route(api::MANIFESTS, post(manifests).layer(small))
        .route(api::BATCHES, post(batches).layer(large))
        .route(api::SMS_STATUS, post(sms_status).layer(small))
        .merge(console::routes(service.clone()).layer(small))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(service.clone(), observe))
        .with_state(service)
}

/// Every route's name in the metrics: a fixed set, never a raw path.
fn route_name(path: Option<&str>) -> &'static str {
    [
        api::HEALTH,
        api::METRICS,
        api::ENROL,
        api::MANIFESTS,
        api::BATCHES,
        api::SMS_STATUS,
    ]
    .into_iter()
    .find(|r| Some(*r) == path)
    .unwrap_or("other")
}

/// The timeout, the metrics and the log line of every answer.
async fn observe(State(svc): State<Shared>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = route_name(req.extensions().get::<MatchedPath>().map(|p| p.as_str()));
    let method = req.method().clone();
    // The device the request claims to be (a signed request's header):
    // an id, never a code, name or number; logged only if it looks like one.
    let device = req
        .headers()
        .get(api::H_DEVICE)
        .and_then(|v| v.to_str().ok())
        .filter(|d| handover_core::rules::check_id("device id", d).is_ok())
        .map(str::to_owned);
    let resp = match tokio::time::timeout(svc.limits.request_timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => Failure::new(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::Timeout,
            "the request took too long; try again",
        )
        .into_response(),
    };
    let status = resp.status().as_u16();
    let elapsed = started.elapsed();
    svc.metrics.record(route, status, elapsed);
    let ms = elapsed.as_secs_f64() * 1e3;
    let device = device.as_deref().unwrap_or("-");
    match status {
        401 | 403 | 429 => tracing::warn!(%method, route, status, ms, device, "refused"),
        500.. => tracing::error!(%method, route, status, ms, device, "failed"),
        _ => tracing::info!(%method, route, status, ms, device, "request"),
    }
    resp
}

/// Run office work on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> handover_office::Result<T> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(Failure::internal)?
        .map_err(Failure::from)
}

/// The body, or 413 / 400 as JSON.
fn body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, Failure> {
    body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Failure::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::TooLarge,
                "the body is larger than this route takes",
            )
        } else {
            Failure::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::Malformed,
                "the body could not be read",
            )
        }
    })
}

fn malformed(what: &str) -> Failure {
    Failure::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::Malformed,
        format!("the body is not {what}"),
    )
}

/// The signing headers of a request, or 401 `missing_signature`.
fn signed_request(headers: &HeaderMap) -> Result<SignedRequest, Failure> {
    SignedRequest::from_headers(|h| headers.get(h).and_then(|v| v.to_str().ok())).map_err(|e| {
        Failure::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::MissingSignature,
            e.to_string(),
        )
    })
}

/// Check a signed request that only reads, spend its nonce, and check the
/// device's rate; returns the device id.
async fn authenticated(
    svc: &Shared,
    headers: &HeaderMap,
    path: &'static str,
    body: &Bytes,
) -> Result<String, Failure> {
    let signed = signed_request(headers)?;
    let office = svc.office.clone();
    let body = body.clone();
    let device =
        blocking(move || office.authenticate("POST", path, &body, &signed, Utc::now())).await?;
    svc.limiter
        .check(&device, Instant::now())
        .map_err(Failure::rate_limited)?;
    Ok(device)
}

async fn health(State(svc): State<Shared>) -> Response {
    Json(serde_json::json!({
        "status": "ok",
        "office_id": svc.office.office_id(),
        "version": env!("CARGO_PKG_VERSION"),
    }))
    .into_response()
}

async fn metrics_text(State(svc): State<Shared>) -> Result<Response, Failure> {
    let office = svc.office.clone();
    let figures = blocking(move || office.store_figures()).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        svc.metrics.render(&figures),
    )
        .into_response())
}

async fn enrol(
    State(svc): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<api::EnrolResponse>, Failure> {
    // Unauthenticated: limited per client address before any work.
    svc.enrol_limiter
        .check(&peer.ip().to_string(), Instant::now())
        .map_err(Failure::rate_limited)?;
    let raw = body(raw)?;
    let req: EnrolRequest =
        serde_json::from_slice(&raw).map_err(|_| malformed("an enrolment request"))?;
    let office = svc.office.clone();
    let resp = blocking(move || office.enrol_by_token(&req, Utc::now()))
        .await
        .map_err(|f| match f.status() {
            // A proof that does not check out: the token is not the caller's.
            StatusCode::UNAUTHORIZED => Failure::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::UnknownToken,
                "unknown enrolment token",
            ),
            _ => f,
        })?;
    tracing::info!(device = %resp.device_id, "enrolled");
    Ok(Json(resp))
}

async fn manifests(
    State(svc): State<Shared>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<api::ManifestsResponse>, Failure> {
    let raw = body(raw)?;
    let device = authenticated(&svc, &headers, api::MANIFESTS, &raw).await?;
    let req: ManifestsRequest =
        serde_json::from_slice(&raw).map_err(|_| malformed("a manifest request"))?;
    let office = svc.office.clone();
    let resp = blocking(move || office.manifests_for(&device, &req, Utc::now())).await?;
    Ok(Json(resp))
}

async fn batches(
    State(svc): State<Shared>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, Failure> {
    let raw = body(raw)?;
    let signed = signed_request(&headers)?;
    // On one blocking thread: the signature and time (no write), the
    // device's rate, then the batch, whose transaction also spends the
    // request's nonce and reads the device's revocation
    // (`Office::ingest_request`): one transaction a batch.
    let service = svc.clone();
    let ingested = tokio::task::spawn_blocking(move || -> Result<_, Failure> {
        let office = &service.office;
        let checked = office.check_request("POST", api::BATCHES, &raw, &signed, Utc::now())?;
        service
            .limiter
            .check(checked.device_id(), Instant::now())
            .map_err(Failure::rate_limited)?;
        let batch = Batch::from_bytes(&raw).map_err(|_| malformed("a v1 batch"))?;
        if batch.device_id != checked.device_id() {
            return Err(Failure::new(
                StatusCode::FORBIDDEN,
                ErrorCode::WrongDevice,
                "a device may send only its own batches",
            ));
        }
        service.metrics.events_received(batch.events.len() as u64);
        Ok(office.ingest_request(&checked, &batch, Utc::now())?)
    })
    .await
    .map_err(Failure::internal)??;
    let summary = &ingested.summary;
    tracing::info!(
        device = %summary.device_id,
        events = summary.received,
        new = summary.new,
        through_seq = summary.through_seq,
        verdicts = ?summary.verdicts,
        "batch"
    );
    let mut resp = Response::new(Body::from(ingested.ack));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/octet-stream"),
    );
    Ok(resp)
}

/// A gateway's delivery report.
#[derive(serde::Deserialize)]
struct DeliveryReport {
    message_id: String,
    status: String,
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /v1/sms/status`: the SMS gateway reports a delivery, with the
/// shared secret (from the environment variable `office.toml` names) in
/// the `handover-sms-secret` header.
async fn sms_status(
    State(svc): State<Shared>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, Failure> {
    let raw = body(raw)?;
    let Ok(secret) = std::env::var(&svc.office.config().sms.callback_secret_env) else {
        return Err(Failure::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "delivery reports are not configured at this office",
        ));
    };
    let given = headers
        .get("handover-sms-secret")
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if secret.is_empty() || !handover_core::rules::constant_time_eq(given, secret.as_bytes()) {
        return Err(Failure::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::BadSecret,
            "the delivery report's secret is wrong",
        ));
    }
    let report: DeliveryReport =
        serde_json::from_slice(&raw).map_err(|_| malformed("a delivery report"))?;
    let delivered = match report.status.as_str() {
        "delivered" => true,
        "failed" | "undelivered" | "rejected" | "expired" => false,
        _ => return Err(malformed("a delivery report (status: delivered or failed)")),
    };
    let office = svc.office.clone();
    let updated = blocking(move || {
        office.sms_delivery(
            &report.message_id,
            delivered,
            report.reason.as_deref(),
            Utc::now(),
        )
    })
    .await?;
    Ok(Json(serde_json::json!({ "updated": updated })))
}

async fn not_found() -> Failure {
    Failure::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such route")
}

async fn method_not_allowed() -> Failure {
    Failure::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "this route does not take that method",
    )
}
