//! Enrolment and the sync session, for the app's own HTTP client.

use handover_core::device::{self};
use std::sync::Arc;

use crate::*;

/// One header of a request.
#[derive(Debug, Clone, uniffi::Record)]
pub struct HttpHeader {
    /// Name (lowercase).
    pub name: String,
    /// Value.
    pub value: String,
}

/// A request for the app's HTTP client to send to the office: POST `path`
/// (under the office's base URL) with these headers and body.
#[derive(Clone, uniffi::Record)]
pub struct OfficeRequest {
    /// `POST` (or `GET`).
    pub method: String,
    /// e.g. `/v1/batches`.
    pub path: String,
    /// Headers, the signature's among them.
    pub headers: Vec<HttpHeader>,
    /// The body (a batch holds entered codes: never log it).
    pub body: Vec<u8>,
}

impl std::fmt::Debug for OfficeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfficeRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl From<device::HttpRequest> for OfficeRequest {
    fn from(r: device::HttpRequest) -> Self {
        OfficeRequest {
            method: r.method.to_owned(),
            path: r.path.to_owned(),
            headers: r
                .headers
                .into_iter()
                .map(|(name, value)| HttpHeader {
                    name: name.to_owned(),
                    value,
                })
                .collect(),
            body: r.body,
        }
    }
}

/// Who the device was enrolled as.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Enrolment {
    /// The device id at the office.
    pub device_id: String,
    /// Who carries it.
    pub assignee: Sensitive,
    /// The office.
    pub office_id: String,
    /// The office key now pinned, hex.
    pub office_key_hex: String,
}

/// What a sync did.
#[derive(Debug, Clone, uniffi::Record)]
pub struct SyncProgress {
    /// Manifest revisions imported.
    pub manifests_imported: i64,
    /// Manifests offered and refused.
    pub manifests_refused: i64,
    /// Events the office acknowledged in this sync.
    pub events_sent: i64,
    /// The office holds everything up to this seq.
    pub acknowledged_through: i64,
    /// Events flagged by the office.
    pub flagged: i64,
    /// Events still waiting.
    pub pending: i64,
    /// Acknowledged events sent again to an office that had lost them
    /// (restored from a backup); 0 when it lost nothing.
    #[uniffi(default = 0)]
    pub events_resent: i64,
    /// The seq this sync resent from, when the office had lost events.
    #[uniffi(default = None)]
    pub resent_from: Option<i64>,
}

impl From<&device::SyncSummary> for SyncProgress {
    fn from(p: &device::SyncSummary) -> Self {
        SyncProgress {
            manifests_imported: signed(p.manifests_imported),
            manifests_refused: signed(p.manifests_refused),
            events_sent: signed(p.events_sent),
            acknowledged_through: signed(p.acknowledged_through),
            flagged: signed(p.flagged),
            pending: signed(p.pending),
            events_resent: signed(p.events_resent),
            resent_from: p.resent_from.map(signed),
        }
    }
}

/// The office's error answer to a request (`docs/sync-api.md`): what an app
/// needs to tell a failure to retry (`rate_limited`, `internal`) from one
/// that no retry fixes (`revoked`, `unknown_device`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct OfficeAnswer {
    /// HTTP status.
    pub status: i32,
    /// The error code, e.g. `revoked`.
    pub code: String,
}

/// One sync with the office, driven by the app's HTTP client: ask for the
/// next request, send it, hand back the answer; until there is no request.
#[derive(uniffi::Object)]
pub struct SyncSession {
    pub(crate) device: Arc<HandoverDevice>,
    pub(crate) inner: std::sync::Mutex<device::SyncSession>,
    pub(crate) refusal: std::sync::Mutex<Option<OfficeAnswer>>,
}

#[uniffi::export]
impl SyncSession {
    /// The next request to send, or null when the sync is done. Asking
    /// again without an answer (a network failure) signs the same step anew.
    pub fn next_request(&self, now_ms: i64) -> Result<Option<OfficeRequest>> {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Ok(s.next_request(&self.device.inner, time(now_ms)?)?
            .map(OfficeRequest::from))
    }

    /// The office's answer to the last request.
    pub fn handle_response(&self, status: i32, body: Vec<u8>, now_ms: i64) -> Result<()> {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let response = device::HttpResponse {
            status: u16::try_from(status).map_err(|_| HandoverError::InvalidInput {
                reason: "HTTP status out of range".into(),
            })?,
            body,
        };
        let handled = s.handle_response(&self.device.inner, &response, time(now_ms)?);
        if let Err(handover_core::Error::Office { status, code }) = &handled {
            *self.refusal.lock().unwrap_or_else(|p| p.into_inner()) = Some(OfficeAnswer {
                status: i32::from(*status),
                code: code.as_str().to_owned(),
            });
        }
        Ok(handled?)
    }

    /// The office's last error answer in this session, if it refused.
    pub fn last_office_answer(&self) -> Option<OfficeAnswer> {
        self.refusal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// What the sync has done so far.
    pub fn progress(&self) -> SyncProgress {
        let s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        SyncProgress::from(s.summary())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_of_a_sync_reaches_the_app() {
        let summary = device::SyncSummary {
            manifests_imported: 1,
            manifests_refused: 2,
            events_sent: 3,
            acknowledged_through: 4,
            flagged: 5,
            pending: 6,
            resent_from: Some(7),
            events_resent: 8,
        };
        let p = SyncProgress::from(&summary);
        assert_eq!(
            [
                p.manifests_imported,
                p.manifests_refused,
                p.events_sent,
                p.acknowledged_through,
                p.flagged,
                p.pending,
                p.resent_from.unwrap_or(0),
                p.events_resent,
            ],
            [1, 2, 3, 4, 5, 6, 7, 8]
        );
        let nothing_lost = SyncProgress::from(&device::SyncSummary {
            events_sent: u64::MAX,
            ..device::SyncSummary::default()
        });
        assert_eq!(nothing_lost.resent_from, None);
        assert_eq!(nothing_lost.events_sent, i64::MAX);
    }
}
