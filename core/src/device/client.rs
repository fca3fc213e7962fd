//! The device's side of the office sync API, without I/O: it makes the
//! requests and takes the responses, and the caller moves the bytes (the
//! CLI with its HTTP client, an Android app with its own). Every request is
//! signed with the device key ([`crate::api::sign_request`]).
//!
//! A sync, step by step ([`SyncSession`]):
//!
//! 1. **Pull**: `POST /v1/manifests` with the manifests held; every newer
//!    revision that comes back is imported (a refused one is counted, and
//!    does not stop the sync).
//! 2. **Push**: while events wait, `POST /v1/batches` with the next batch;
//!    the answer is the sealed ack, applied only after its signature and
//!    chain check out. A batch is exported again from the outbox for every
//!    attempt, so a retry after a lost response is harmless.
//! 3. **Done** when nothing waits, or when an ack brings no progress.
//!
//! **Refill.** An office restored from a backup, or failed over to a
//! standby that was behind, no longer holds the end of this device's chain:
//! it answers the pull with `need_seq` (the device reports the seq it was
//! acknowledged through) and the next batch with `gap` and `need_seq`,
//! where its chain ends. The device then resends from there, acknowledged events included
//! (it keeps them for its retention period), with the acks the office
//! sealed for them the first time ([`Device::export_resend`]); the office
//! keeps its own signed verdicts and sends no second confirmation. When the
//! office holds everything again, the push goes on as usual.
//!
//! A `stale_request` answer (the device clock far from the office's) is
//! retried once with the office's time for the signature only; the events
//! keep the device's own clock. That time is taken only near the device's
//! own clock and never behind its high-water mark
//! ([`acceptable_server_time`]).
//!
//! Enrolment is two calls: [`Device::enrol_request`] and
//! [`Device::finish_enrolment`], which checks that the office key it is
//! given is the key the token binds before pinning it.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Device;
use crate::api::{
    self, ApiError, EnrolRequest, EnrolResponse, EnrolToken, ErrorCode, Held, ManifestsRequest,
};
use crate::error::{Error, Result};

/// A request to send: method, path, headers, body.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// Path under the office's base URL, e.g. `/v1/batches`.
    pub path: &'static str,
    /// Headers to send, the content type among them.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// A response received: status and body.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// An error body, or a stand-in when the body is not one.
fn office_error(resp: &HttpResponse) -> (ApiError, Error) {
    let body: ApiError = serde_json::from_slice(&resp.body).unwrap_or(ApiError {
        error: ErrorCode::Unknown,
        message: String::new(),
        server_time_ms: None,
        need_seq: None,
    });
    let err = Error::Office {
        status: resp.status,
        code: body.error,
    };
    (body, err)
}

impl Device {
    /// The signed request `method path` with `body`, at `time_ms`.
    pub fn signed_request(
        &self,
        method: &'static str,
        path: &'static str,
        body: Vec<u8>,
        content_type: &'static str,
        time_ms: i64,
    ) -> Result<HttpRequest> {
        let mut nonce = [0u8; 16];
        crate::keys::fill_random(&mut nonce)?;
        let mut headers = api::sign_request(&self.key, method, path, &body, time_ms, nonce);
        headers.push(("content-type", content_type.to_owned()));
        Ok(HttpRequest {
            method,
            path,
            headers,
            body,
        })
    }

    /// The enrolment request for `token` (`POST /v1/enrol`).
    pub fn enrol_request(&self, token: &EnrolToken, now: DateTime<Utc>) -> Result<HttpRequest> {
        let req = EnrolRequest::new(token, &self.key, now.timestamp_millis());
        Ok(HttpRequest {
            method: "POST",
            path: api::ENROL,
            headers: vec![("content-type", "application/json".to_owned())],
            body: serde_json::to_vec(&req).map_err(|_| Error::Encoding("enrolment request"))?,
        })
    }

    /// Check the office's answer to [`enrol_request`](Self::enrol_request):
    /// the office key must be the one `token` binds and the office must have
    /// known the token. Then pin the key.
    pub fn finish_enrolment(
        &self,
        token: &EnrolToken,
        response: &HttpResponse,
        now: DateTime<Utc>,
    ) -> Result<EnrolResponse> {
        if response.status != 200 {
            return Err(office_error(response).1);
        }
        let answer: EnrolResponse = serde_json::from_slice(&response.body)
            .map_err(|_| Error::malformed("enrolment response", "not the expected JSON"))?;
        answer.verify(token, &self.key.public_key())?;
        self.trust_office_key(answer.office_key, now)?;
        Ok(answer)
    }

    /// The manifests held (tombstones included), with their revisions.
    pub fn held_manifests(&self) -> Result<Vec<Held>> {
        let conn = self.lock();
        let mut stmt =
            conn.prepare("SELECT manifest_id, revision FROM manifests ORDER BY manifest_id")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>("manifest_id")?,
                r.get::<_, i64>("revision")?,
            ))
        })?;
        rows.map(|r| {
            let (manifest_id, revision) = r?;
            Ok(Held {
                manifest_id,
                revision: u32::try_from(revision).map_err(|_| {
                    Error::DatabaseUnusable("a manifest revision is out of range".into())
                })?,
            })
        })
        .collect()
    }
}

/// The farthest one `stale_request` answer may move the time the device
/// signs its requests with, from its own clock: one hour.
pub const MAX_SERVER_TIME_CORRECTION_MS: i64 = 60 * 60 * 1000;

/// Whether the device takes `server_ms`, the office's time from a
/// `stale_request` answer, to sign its next requests with. That answer is
/// not authenticated (anyone on the path can send a 401), so it is taken
/// only within [`MAX_SERVER_TIME_CORRECTION_MS`] of the device's clock, and
/// never behind the device's high-water mark of time by more than the clock
/// tolerance: otherwise someone on the path could make an honest device
/// sign requests dated far from now, to replay them when their time comes.
pub fn acceptable_server_time(server_ms: i64, now: DateTime<Utc>, mark: Option<i64>) -> bool {
    let tolerance = crate::rules::clock_tolerance().num_milliseconds();
    let near =
        server_ms.abs_diff(now.timestamp_millis()) <= MAX_SERVER_TIME_CORRECTION_MS.unsigned_abs();
    let not_behind = mark.is_none_or(|m| server_ms >= m.saturating_sub(tolerance));
    near && not_behind
}

/// What a sync did. Its JSON (`handover device sync --json`) is a stable
/// interface: fields are only ever added.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SyncSummary {
    /// Manifest revisions imported.
    pub manifests_imported: u64,
    /// Manifests the office offered that this device refused (expired,
    /// changed verifiers, …); the sync went on.
    pub manifests_refused: u64,
    /// Events the office acknowledged in this sync.
    pub events_sent: u64,
    /// The office holds everything up to this seq.
    pub acknowledged_through: u64,
    /// Events the office flagged (anything but verified or recorded).
    pub flagged: u64,
    /// Events still waiting.
    pub pending: u64,
    /// The office had lost acknowledged events (`gap` with `need_seq`): the
    /// seq this sync resent them from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resent_from: Option<u64>,
    /// Acknowledged events sent again to an office that had lost them.
    pub events_resent: u64,
}

/// Most `gap` answers one sync follows with a resend.
const MAX_GAPS: u32 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Pull,
    Push,
    Done,
}

/// One sync with the office (see the module docs). Drive it with
/// [`next_request`](Self::next_request) and
/// [`handle_response`](Self::handle_response) until there is no request.
#[derive(Debug)]
pub struct SyncSession {
    phase: Phase,
    max_events: u64,
    offset_ms: i64,
    stale_retried: bool,
    in_flight: u64,
    /// Resending acknowledged events from this seq (the office lost them).
    resend_from: Option<u64>,
    /// Last seq of the batch in flight.
    in_flight_last: u64,
    /// `gap` answers taken this session: a bound, so that an office that
    /// keeps asking for the same events cannot keep the device busy.
    gaps: u32,
    summary: SyncSummary,
}

impl SyncSession {
    /// A sync that sends at most `max_events` per batch.
    pub fn new(max_events: u64) -> SyncSession {
        SyncSession {
            phase: Phase::Pull,
            max_events: max_events.clamp(1, crate::sync::MAX_BATCH_EVENTS as u64),
            offset_ms: 0,
            stale_retried: false,
            in_flight: 0,
            resend_from: None,
            in_flight_last: 0,
            gaps: 0,
            summary: SyncSummary::default(),
        }
    }

    /// What the sync has done so far.
    pub fn summary(&self) -> &SyncSummary {
        &self.summary
    }

    /// The next request to send, or `None` when the sync is done. Asking
    /// again without a response (after a network failure) gives a freshly
    /// signed request for the same step.
    pub fn next_request(
        &mut self,
        device: &Device,
        now: DateTime<Utc>,
    ) -> Result<Option<HttpRequest>> {
        let time_ms = now.timestamp_millis().saturating_add(self.offset_ms);
        match self.phase {
            Phase::Done => Ok(None),
            Phase::Pull => {
                let body = serde_json::to_vec(&ManifestsRequest {
                    held: device.held_manifests()?,
                    acknowledged_through: Some(device.acknowledged_through()?),
                    office_keys: Some(
                        device
                            .office_keys_at(now)?
                            .iter()
                            .map(|k| k.key_id())
                            .collect(),
                    ),
                })
                .map_err(|_| Error::Encoding("manifest request"))?;
                Ok(Some(device.signed_request(
                    "POST",
                    api::MANIFESTS,
                    body,
                    "application/json",
                    time_ms,
                )?))
            }
            Phase::Push => {
                let batch = match self.resend_from {
                    Some(from) => device.export_resend(from, self.max_events)?,
                    None => {
                        if device.pending_count()? == 0 {
                            self.phase = Phase::Done;
                            self.summary.pending = 0;
                            return Ok(None);
                        }
                        device.export_batch(self.max_events)?
                    }
                };
                self.in_flight = batch.events.len() as u64;
                self.in_flight_last = batch.events.last().map_or(0, |e| e.seq);
                Ok(Some(device.signed_request(
                    "POST",
                    api::BATCHES,
                    batch.to_bytes()?,
                    "application/json",
                    time_ms,
                )?))
            }
        }
    }

    /// Resend from `need` (the first seq the office says it no longer
    /// holds) if this device has acknowledged events from there; whether
    /// it will.
    fn resend(&mut self, device: &Device, need: u64) -> Result<bool> {
        if need == 0 || need > device.acknowledged_through()? {
            return Ok(false);
        }
        // Purged, with nothing held after the purge to send from a
        // checkpoint: nothing to resend yet (the next events will carry
        // the checkpoint).
        match device.export_resend(need, 1) {
            Err(Error::NotAllowed(_)) => return Ok(false),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        self.resend_from = Some(need);
        self.summary.resent_from = Some(need);
        Ok(true)
    }

    /// Take the office's answer to the last request. An error leaves the
    /// step to be tried again; nothing is lost.
    pub fn handle_response(
        &mut self,
        device: &Device,
        response: &HttpResponse,
        now: DateTime<Utc>,
    ) -> Result<()> {
        if response.status != 200 {
            let (body, err) = office_error(response);
            if body.error == ErrorCode::StaleRequest && !self.stale_retried {
                if let Some(server) = body.server_time_ms {
                    if acceptable_server_time(server, now, device.clock_mark()?) {
                        // Sign with the office's clock from now on; events keep ours.
                        self.offset_ms = server.saturating_sub(now.timestamp_millis());
                        self.stale_retried = true;
                        return Ok(());
                    }
                }
            }
            if body.error == ErrorCode::Gap && self.phase == Phase::Push {
                // The office lost events it had acknowledged (a restore,
                // a failover to a standby that was behind): resend them
                // from where its chain ends, with its own acks.
                if let Some(need) = body.need_seq {
                    if self.gaps < MAX_GAPS && self.resend(device, need)? {
                        self.gaps += 1;
                        return Ok(());
                    }
                }
            }
            return Err(err);
        }
        match self.phase {
            Phase::Done => {}
            Phase::Pull => {
                let answer: api::ManifestsResponse = serde_json::from_slice(&response.body)
                    .map_err(|_| Error::malformed("manifest response", "not the expected JSON"))?;
                // The office's key changed: pin the new key before the
                // manifests it signed. A refused statement fails the sync.
                for s in &answer.key_statements {
                    device.accept_key_statement(&api::from_base64(s)?, now)?;
                }
                for m in &answer.manifests {
                    let imported = api::from_base64(&m.sealed)
                        .and_then(|sealed| device.import_manifest(&sealed, now));
                    match imported {
                        Ok(super::ImportOutcome::Imported { .. }) => {
                            self.summary.manifests_imported += 1
                        }
                        Ok(_) => {}
                        Err(Error::Sqlite(e)) => return Err(Error::Sqlite(e)),
                        Err(_) => self.summary.manifests_refused += 1,
                    }
                }
                self.phase = Phase::Push;
                // The office lost events it had acknowledged: resend them
                // first (see the module docs).
                if let Some(need) = answer.need_seq {
                    self.resend(device, need)?;
                }
                // The acknowledged head, even when nothing new is sent.
                self.summary.acknowledged_through = device.acknowledged_through()?;
            }
            Phase::Push => {
                let before = self.summary.acknowledged_through;
                let applied = device.apply_ack(&response.body, now)?;
                if let Some(from) = self.resend_from {
                    // A resend: go on from after its last event until the
                    // office holds every acknowledged event again.
                    self.summary.events_resent += self.in_flight;
                    self.in_flight = 0;
                    self.resend_from = (self.in_flight_last >= from
                        && self.in_flight_last < applied.through_seq)
                        .then_some(self.in_flight_last + 1);
                    self.summary.pending = device.pending_count()?;
                    return Ok(());
                }
                self.summary.events_sent += applied.newly_acked;
                self.summary.acknowledged_through = applied.through_seq;
                self.summary.flagged += applied.flagged;
                if applied.newly_acked == 0 && applied.through_seq <= before {
                    // The office acknowledges nothing new: stop, try later.
                    self.phase = Phase::Done;
                }
                self.in_flight = 0;
            }
        }
        self.summary.pending = device.pending_count()?;
        Ok(())
    }
}
