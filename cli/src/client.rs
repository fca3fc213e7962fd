//! The device's HTTP client: it moves the bytes of the sans-IO sync session
//! of `handover_core::device` over HTTPS (or HTTP on loopback), with
//! retries and backoff. Nothing is lost when the office cannot be reached:
//! the outbox stays as it was, every event still queued.
//!
//! An office that takes the connection and never answers costs a step at
//! most a minute: 10 s to connect, 20 s for the answer to begin, and no new
//! attempt once [`STEP_DEADLINE`] has passed since the step's first.

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use handover_core::api::{EnrolResponse, EnrolToken};
use handover_core::device::{Device, HttpRequest, HttpResponse, SyncSession, SyncSummary};
use ureq::tls::{Certificate, RootCerts, TlsConfig};

use crate::error::{Error, Result};

/// Largest answer taken from the office (a day's manifests).
const MAX_RESPONSE: u64 = 64 * 1024 * 1024;
/// Events per batch.
pub const BATCH_EVENTS: u64 = 500;
/// Attempts of one request before the office counts as unreachable.
const ATTEMPTS: u32 = 5;
/// Longest wait for an answer to begin once a request is sent.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// No new attempt of a step starts this long after its first: with the
/// timeouts above, a step gives up within a minute.
pub const STEP_DEADLINE: Duration = Duration::from_secs(25);

/// The office, as a device reaches it.
pub struct OfficeLink {
    agent: ureq::Agent,
    base: String,
    backoff: Duration,
}

impl OfficeLink {
    /// The office at `server` (`https://…`, or `http://` for loopback),
    /// trusting `ca` in addition to the system's roots when given.
    pub fn new(server: &str, ca: Option<&Path>) -> Result<OfficeLink> {
        let base = server.trim_end_matches('/').to_owned();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(Error::Usage(format!(
                "--server: expected an http:// or https:// URL, got {base}"
            )));
        }
        let mut tls = TlsConfig::builder();
        if let Some(ca) = ca {
            let pem = std::fs::read(ca).map_err(crate::error::io(ca))?;
            let cert = Certificate::from_pem(&pem).map_err(|_| {
                Error::Usage(format!(
                    "--ca-cert: {} is not a PEM certificate",
                    ca.display()
                ))
            })?;
            tls = tls.root_certs(RootCerts::new_with_certs(&[cert]));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_recv_response(Some(ANSWER_TIMEOUT))
            .timeout_global(Some(Duration::from_secs(120)))
            .tls_config(tls.build())
            .build()
            .into();
        Ok(OfficeLink {
            agent,
            base,
            backoff: Duration::from_millis(250),
        })
    }

    /// The same link with another first backoff (tests).
    pub fn with_backoff(mut self, first: Duration) -> OfficeLink {
        self.backoff = first;
        self
    }

    /// The office's base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Send one request once. `Err` is a transport failure (no answer).
    pub fn send(&self, req: &HttpRequest) -> std::result::Result<HttpResponse, String> {
        self.send_once(req).map_err(|(why, _)| why)
    }

    /// [`send`](Self::send); a failure says whether trying again can help
    /// (a certificate will not change in the next second).
    fn send_once(&self, req: &HttpRequest) -> std::result::Result<HttpResponse, (String, bool)> {
        let url = format!("{}{}", self.base, req.path);
        let mut builder = match req.method {
            "GET" => {
                let mut b = self.agent.get(&url);
                for (k, v) in &req.headers {
                    b = b.header(*k, v);
                }
                return read(b.call()).map_err(|e| explain(e, &self.base));
            }
            _ => self.agent.post(&url),
        };
        for (k, v) in &req.headers {
            builder = builder.header(*k, v);
        }
        read(builder.send(&req.body[..])).map_err(|e| explain(e, &self.base))
    }

    /// Send, retrying transport failures and the statuses that say "later"
    /// (408, 429, 500, 502, 503, 504) with doubling waits; `make` signs a
    /// fresh request for every attempt.
    fn send_with_retries(
        &self,
        mut make: impl FnMut() -> Result<Option<HttpRequest>>,
    ) -> Result<Option<HttpResponse>> {
        let mut wait = self.backoff;
        let mut last = String::new();
        let started = std::time::Instant::now();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                if started.elapsed() + wait > STEP_DEADLINE {
                    break;
                }
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(8));
            }
            let Some(req) = make()? else {
                return Ok(None);
            };
            match self.send_once(&req) {
                Ok(resp) if handover_core::api::retry_later(resp.status) => {
                    last = format!("the office answered {}", resp.status);
                }
                Ok(resp) => return Ok(Some(resp)),
                Err((why, true)) => {
                    last = why;
                    break;
                }
                Err((why, false)) => last = why,
            }
        }
        Err(Error::Unreachable {
            url: self.base.clone(),
            why: last,
        })
    }
}

fn read(
    result: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> std::result::Result<HttpResponse, ureq::Error> {
    let mut resp = result?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(MAX_RESPONSE)
        .read_to_vec()?;
    Ok(HttpResponse { status, body })
}

/// A transport failure in one line, with what to do about it: the TLS and
/// connection mistakes people make when pointing a device at the office;
/// and whether it is permanent (trying again the same way cannot help).
pub fn explain(e: ureq::Error, base: &str) -> (String, bool) {
    let (why, permanent) = explain_why(&e, base);
    (why.unwrap_or_else(|| e.to_string()), permanent)
}

fn explain_why(e: &ureq::Error, base: &str) -> (Option<String>, bool) {
    let fixed = |s: &str| (Some(s.to_owned()), true);
    let detail = format!("{e:?} {e}");
    let has = |s: &str| detail.contains(s);
    let https = base.starts_with("https://");
    if has("UnknownIssuer") {
        return fixed(
            "the office's certificate is signed by an authority this machine does not trust: \
                give --ca-cert with the office's CA certificate (PEM)",
        );
    }
    if has("CaUsedAsEndEntity") {
        return fixed("the office presents a CA certificate as its own: serve the server certificate \
                that CA signed (office serve --tls-cert), and give the CA to devices with --ca-cert");
    }
    if has("NotValidForName") {
        return fixed(
            "the office's certificate is not made for this host name: use in --server the \
                name the certificate names",
        );
    }
    if has("Expired") && has("Certificate") {
        return fixed(
            "the office's certificate has expired (or this machine's clock is wrong): \
                renew the certificate, or set the date",
        );
    }
    if https && (has("InvalidContentType") || has("CorruptMessage") || has("InvalidMessage")) {
        return fixed(
            "the office answers plain HTTP on this port, not HTTPS: use http:// (only on \
                loopback) or the office's HTTPS port",
        );
    }
    // Nothing listening, no such host: a person is waiting, and WorkManager
    // (or the next tap) tries again later; retrying now only delays the
    // line that says what to fix.
    match e {
        ureq::Error::HostNotFound => {
            fixed("the host name is not known: check --server (and the network)")
        }
        ureq::Error::Timeout(_) => (
            Some("no answer in time: the office is slow or unreachable; try again later".into()),
            false,
        ),
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => fixed(
            "nothing listens there: is `handover office serve` running, and are --server's \
             host and port right?",
        ),
        ureq::Error::Io(io)
            if !https
                && matches!(
                    io.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof
                ) =>
        {
            (
                Some(
                    "the connection was closed without an answer: if the office serves HTTPS on \
                     this port, use https://"
                        .into(),
                ),
                false,
            )
        }
        ureq::Error::Protocol(_) if !https => {
            fixed("the answer is not HTTP: if the office serves HTTPS on this port, use https://")
        }
        _ => (None, false),
    }
}

/// Enrol `device` at the office with `token`; pins the office key.
pub fn enrol(device: &Device, link: &OfficeLink, token: &EnrolToken) -> Result<EnrolResponse> {
    let resp = link
        .send_with_retries(|| Ok(Some(device.enrol_request(token, Utc::now())?)))?
        .ok_or(Error::Usage("nothing to send".into()))?;
    Ok(device.finish_enrolment(token, &resp, Utc::now())?)
}

/// Pull new manifests, then push the outbox until it is drained, applying
/// every ack. On an error everything not acknowledged stays queued.
pub fn sync(device: &Device, link: &OfficeLink) -> Result<SyncSummary> {
    let mut session = SyncSession::new(BATCH_EVENTS);
    loop {
        let resp = link.send_with_retries(|| Ok(session.next_request(device, Utc::now())?))?;
        let Some(resp) = resp else {
            return Ok(session.summary().clone());
        };
        session.handle_response(device, &resp, Utc::now())?;
    }
}
