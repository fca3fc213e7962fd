//! A stand-in SMS gateway on a loopback port, for the `http` sender's tests:
//! it records every request and answers as it is told: fail the first N,
//! never answer, or accept with a message id.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};

/// What the gateway does with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Accept it with a message id.
    Accept,
    /// Answer 503 to the first `n` requests, then accept.
    FailFirst(usize),
    /// Hold the request and never answer (the sender times out).
    Hang,
    /// Refuse with 400.
    Refuse,
}

/// A request as the gateway saw it.
#[derive(Clone, Debug)]
pub struct Received {
    /// The JSON body.
    pub body: serde_json::Value,
    /// The authorization header.
    pub authorization: Option<String>,
}

struct Inner {
    mode: Mutex<Mode>,
    seen: AtomicUsize,
    received: Mutex<Vec<Received>>,
    accepted: Mutex<Vec<Received>>,
}

/// The running stand-in.
pub struct Gateway {
    inner: Arc<Inner>,
    url: String,
    _runtime: tokio::runtime::Runtime,
}

async fn receive(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> axum::response::Response {
    let n = inner.seen.fetch_add(1, Ordering::SeqCst);
    let received = Received {
        body,
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    inner.received.lock().unwrap().push(received.clone());
    let mode = *inner.mode.lock().unwrap();
    match mode {
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        Mode::Refuse => (StatusCode::BAD_REQUEST, "bad template").into_response(),
        Mode::FailFirst(k) if n < k => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        _ => {
            let mut accepted = inner.accepted.lock().unwrap();
            accepted.push(received);
            Json(serde_json::json!({ "message_id": format!("gw-{}", accepted.len()) }))
                .into_response()
        }
    }
}

impl Gateway {
    /// Start a gateway in `mode`.
    pub fn start(mode: Mode) -> Gateway {
        let inner = Arc::new(Inner {
            mode: Mutex::new(mode),
            seen: AtomicUsize::new(0),
            received: Mutex::new(Vec::new()),
            accepted: Mutex::new(Vec::new()),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!(
            "http://{}/v1/messages",
            listener.local_addr().expect("addr")
        );
        let app = Router::new()
            .route("/v1/messages", post(receive))
            .with_state(inner.clone());
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let _ = axum::serve(listener, app).await;
        });
        Gateway {
            inner,
            url,
            _runtime: runtime,
        }
    }

    /// The URL to configure as `sms.url`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Change what it does.
    pub fn set_mode(&self, mode: Mode) {
        *self.inner.mode.lock().unwrap() = mode;
        self.inner.seen.store(0, Ordering::SeqCst);
    }

    /// Every request received.
    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().unwrap().clone()
    }

    /// The requests it accepted (the messages delivered).
    pub fn accepted(&self) -> Vec<Received> {
        self.inner.accepted.lock().unwrap().clone()
    }
}
