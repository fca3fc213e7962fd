//! Every refusal of the service as an HTTP status and a JSON body with a
//! stable code (`docs/sync-api.md` lists them), mapped from the office's
//! errors in one place. Messages are the office's one-line messages, which
//! carry no codes, keys or personal data; internal failures say only
//! `internal`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use handover_core::api::{ApiError, ErrorCode};
use handover_office::Error as Office;

/// A refused or failed request.
#[derive(Debug)]
pub struct Failure {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    server_time_ms: Option<i64>,
    need_seq: Option<u64>,
    retry_after: Option<u64>,
}

impl Failure {
    /// A failure with `status`, a stable `code` and a message.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Failure {
        Failure {
            status,
            code,
            message: message.into(),
            server_time_ms: None,
            need_seq: None,
            retry_after: None,
        }
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// 429, to try again after `seconds`.
    pub fn rate_limited(seconds: u64) -> Failure {
        Failure {
            retry_after: Some(seconds),
            ..Failure::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                "too many requests; try again shortly",
            )
        }
    }

    /// 503: the database cannot be reached now; try again after a second.
    pub fn unavailable(message: impl Into<String>) -> Failure {
        Failure {
            retry_after: Some(1),
            ..Failure::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                message,
            )
        }
    }

    /// 500 for a failure of the service itself; the detail goes to the
    /// service's log (it names no person or code), not to the client.
    pub fn internal(e: impl std::fmt::Display) -> Failure {
        tracing::error!(error = %e, "internal error");
        Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "the office could not complete the request; try again later",
        )
    }
}

impl From<Office> for Failure {
    fn from(e: Office) -> Failure {
        use handover_core::Error as C;
        let message = e.to_string();
        let (status, code) = match &e {
            Office::Core(C::BadSignature(_)) => (StatusCode::UNAUTHORIZED, ErrorCode::BadSignature),
            Office::Core(C::WrongDevice) => (StatusCode::UNAUTHORIZED, ErrorCode::BadSignature),
            Office::Core(
                C::Malformed { .. }
                | C::Invalid { .. }
                | C::InvalidPolicy(_)
                | C::InvalidS10(_)
                | C::ChainBroken(_),
            ) => (StatusCode::BAD_REQUEST, ErrorCode::Malformed),
            Office::UnknownDevice(_) => (StatusCode::UNAUTHORIZED, ErrorCode::UnknownDevice),
            Office::DeviceRevoked(_) => (StatusCode::FORBIDDEN, ErrorCode::Revoked),
            Office::StaleRequest { server_time_ms } => {
                return Failure {
                    server_time_ms: Some(*server_time_ms),
                    ..Failure::new(StatusCode::UNAUTHORIZED, ErrorCode::StaleRequest, message)
                }
            }
            Office::ReplayedRequest => (StatusCode::UNAUTHORIZED, ErrorCode::ReplayedRequest),
            Office::UnknownToken => (StatusCode::UNAUTHORIZED, ErrorCode::UnknownToken),
            Office::TokenUsed => (StatusCode::CONFLICT, ErrorCode::TokenUsed),
            Office::TokenExpired => (StatusCode::GONE, ErrorCode::TokenExpired),
            Office::AlreadyEnrolled => (StatusCode::CONFLICT, ErrorCode::AlreadyEnrolled),
            Office::Fork { .. } => (StatusCode::CONFLICT, ErrorCode::Fork),
            Office::Gap { head, .. } => {
                return Failure {
                    need_seq: Some(head.saturating_add(1)),
                    ..Failure::new(StatusCode::CONFLICT, ErrorCode::Gap, message)
                }
            }
            Office::BadEvent { .. } => (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::BadEvent),
            Office::StoreUnavailable(_) => {
                tracing::warn!(error = %e, "database unavailable");
                return Failure::unavailable(message);
            }
            _ => return Failure::internal(&e),
        };
        Failure::new(status, code, message)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = ApiError {
            error: self.code,
            message: self.message,
            server_time_ms: self.server_time_ms,
            need_seq: self.need_seq,
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}
