//! Listening: plain HTTP on loopback (behind a reverse proxy that
//! terminates TLS), or HTTPS with rustls on any address; graceful shutdown
//! on SIGTERM or Ctrl-C that lets requests in flight finish.
//!
//! What a connection may hold ([`Limits`]): a slot of the connection cap
//! (`conn.rs`), taken before anything is read; `handshake_timeout` for the
//! TLS handshake; `header_timeout` for the first request's headers, for
//! every later request's headers, and for the idle wait between requests
//! on a kept-alive connection; `request_timeout` for a whole request,
//! body included. A client that holds connections open without sending
//! loses them.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum_server::accept::DefaultAcceptor;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use axum_server::Handle;
use handover_office::Office;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::conn::Capped;
use crate::{router, Limits, Service};

/// How long requests in flight may take to finish after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(30);

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The address could not be bound, or the runtime could not start.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The certificate or key could not be used.
    #[error("TLS: {0}")]
    Tls(String),
    /// Plain HTTP was asked for on an address other machines can reach.
    #[error("plain HTTP only on a loopback address ({0} is not); give a TLS certificate and key, or listen on 127.0.0.1 behind a reverse proxy")]
    PlainHttpOffLoopback(SocketAddr),
    /// The service stopped with an error.
    #[error("the service stopped: {0}")]
    Stopped(std::io::Error),
}

/// A rustls configuration from a PEM certificate chain and a PEM key.
pub fn tls_config(cert: &Path, key: &Path) -> Result<RustlsConfig, ServeError> {
    let tls = |what: &str, e: &dyn std::fmt::Display| ServeError::Tls(format!("{what}: {e}"));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| tls("certificate", &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls("certificate", &e))?;
    if certs.is_empty() {
        return Err(ServeError::Tls(
            "the certificate file holds no certificate".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| tls("key", &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls("protocol versions", &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| tls("certificate and key", &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(RustlsConfig::from_config(Arc::new(config)))
}

/// A service running on its own thread (the demo, tests).
pub struct Running {
    addr: SocketAddr,
    handle: Handle<SocketAddr>,
    thread: Option<std::thread::JoinHandle<Result<(), ServeError>>>,
}

impl Running {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop accepting, let requests in flight finish, and wait.
    pub fn stop(mut self) -> Result<(), ServeError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), ServeError> {
        self.handle.graceful_shutdown(Some(DRAIN));
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| {
                Err(ServeError::Stopped(std::io::Error::other(
                    "the service thread panicked",
                )))
            }),
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

fn bind(listen: SocketAddr, tls: bool) -> Result<TcpListener, ServeError> {
    if !tls && !listen.ip().is_loopback() {
        return Err(ServeError::PlainHttpOffLoopback(listen));
    }
    let listener = TcpListener::bind(listen).map_err(|source| ServeError::Listen {
        addr: listen,
        source,
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| ServeError::Listen {
            addr: listen,
            source,
        })?;
    Ok(listener)
}

/// Send the SMS outbox every `every`, on a blocking thread, until the
/// service stops. A sender that cannot be made (an http sender without its
/// API key) is reported once and the loop stops.
async fn send_sms(service: Arc<Service>, every: Duration) {
    let sender = match service.office().sender() {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::error!(error = %e, "not sending SMS in the background");
            return;
        }
    };
    loop {
        tokio::time::sleep(every).await;
        let (office, sender) = (service.office().clone(), sender.clone());
        let sent =
            tokio::task::spawn_blocking(move || office.sms_send(&**sender, chrono::Utc::now()))
                .await;
        match sent {
            Ok(Ok(s)) if s.failed > 0 => tracing::warn!(
                sent = s.sent,
                failed = s.failed,
                segments = s.segments,
                "SMS sent, some failed (see `handover office sms list`)"
            ),
            Ok(Ok(s)) if s.sent > 0 => {
                tracing::info!(sent = s.sent, segments = s.segments, "SMS sent")
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "sending SMS"),
            Err(_) => tracing::error!("the SMS sender stopped"),
        }
    }
}

/// How often the service refreshes the planner's statistics (PostgreSQL).
const STATISTICS_EVERY: Duration = Duration::from_secs(60);

/// Refresh the PostgreSQL planner's statistics every [`STATISTICS_EVERY`]
/// ([`handover_office::Office::refresh_statistics`]), on a blocking thread,
/// until the service stops.
async fn refresh_statistics(service: Arc<Service>) {
    loop {
        tokio::time::sleep(STATISTICS_EVERY).await;
        let office = service.office().clone();
        match tokio::task::spawn_blocking(move || office.refresh_statistics()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "refreshing the planner's statistics"),
            Err(_) => tracing::error!("the statistics refresh stopped"),
        }
    }
}

async fn serve(
    service: Arc<Service>,
    listener: TcpListener,
    tls: Option<RustlsConfig>,
    handle: Handle<SocketAddr>,
) -> Result<(), ServeError> {
    let sms = service
        .limits
        .sms_send_every
        .map(|every| tokio::spawn(send_sms(service.clone(), every)));
    let statistics = service
        .office()
        .on_postgres()
        .then(|| tokio::spawn(refresh_statistics(service.clone())));
    let limits = service.limits;
    let slots = service.slots.clone();
    service
        .tls
        .store(tls.is_some(), std::sync::atomic::Ordering::Relaxed);
    let app = router(service).into_make_service_with_connect_info::<SocketAddr>();
    let server = axum_server::from_tcp(listener).map_err(ServeError::Stopped)?;
    // HTTP/1.1 only: no protocol detection to wait on. A request's headers,
    // and the wait for the next request on a kept-alive connection, each
    // get `header_timeout`; the first request too.
    let server = server
        .http1_only()
        .first_request_timeout(limits.header_timeout)
        .handle(handle);
    let result = match tls {
        Some(config) => {
            let acceptor = RustlsAcceptor::new(config)
                .handshake_timeout(limits.handshake_timeout)
                .acceptor(Capped::new(DefaultAcceptor::new(), slots));
            let mut server = server.acceptor(acceptor);
            server
                .http_builder()
                .http1()
                .header_read_timeout(limits.header_timeout);
            server.serve(app).await
        }
        None => {
            let mut server = server.acceptor(Capped::new(DefaultAcceptor::new(), slots));
            server
                .http_builder()
                .http1()
                .header_read_timeout(limits.header_timeout);
            server.serve(app).await
        }
    };
    for task in [sms, statistics].into_iter().flatten() {
        task.abort();
    }
    result.map_err(ServeError::Stopped)
}

/// Raise this process's open-file limit to its hard limit, and keep the
/// connection cap below it (with room for the database's files), so that
/// a full house of connections is refused by the cap rather than by
/// `accept` failing.
fn fit_open_files(limits: &mut Limits) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write only `lim`.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    let room = usize::try_from(lim.rlim_cur)
        .unwrap_or(usize::MAX)
        .saturating_sub(256)
        .max(64);
    limits.max_connections = limits.max_connections.min(room);
}

fn runtime(addr: SocketAddr) -> Result<tokio::runtime::Runtime, ServeError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("handover-server")
        .build()
        .map_err(|source| ServeError::Listen { addr, source })
}

/// Bind `listen`, and the runtime to serve it on: the listener, the address
/// it got (port 0 picks one) and the runtime.
fn bound(
    listen: SocketAddr,
    tls: bool,
) -> Result<(TcpListener, SocketAddr, tokio::runtime::Runtime), ServeError> {
    let listener = bind(listen, tls)?;
    let addr = listener.local_addr().map_err(|source| ServeError::Listen {
        addr: listen,
        source,
    })?;
    Ok((listener, addr, runtime(addr)?))
}

/// Start the service on its own thread; it runs until [`Running::stop`].
pub fn spawn(
    office: Arc<Office>,
    listen: SocketAddr,
    tls: Option<RustlsConfig>,
    limits: Limits,
) -> Result<Running, ServeError> {
    let (listener, addr, rt) = bound(listen, tls.is_some())?;
    let handle = Handle::new();
    let h = handle.clone();
    let thread = std::thread::Builder::new()
        .name("handover-server".into())
        .spawn(move || rt.block_on(serve(Service::new(office, limits), listener, tls, h)))
        .map_err(|source| ServeError::Listen { addr, source })?;
    Ok(Running {
        addr,
        handle,
        thread: Some(thread),
    })
}

/// Run the service in this thread until SIGTERM or Ctrl-C, then drain the
/// requests in flight. `on_ready` gets the bound address (port 0 picks one).
pub fn run(
    office: Arc<Office>,
    listen: SocketAddr,
    tls: Option<RustlsConfig>,
    mut limits: Limits,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    fit_open_files(&mut limits);
    let (listener, addr, rt) = bound(listen, tls.is_some())?;
    let handle = Handle::new();
    on_ready(addr);
    rt.block_on(async move {
        let signals = {
            let handle = handle.clone();
            async move {
                let mut term =
                    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    {
                        Ok(s) => s,
                        Err(_) => return,
                    };
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
                tracing::warn!("shutting down; letting requests in flight finish");
                handle.graceful_shutdown(Some(DRAIN));
            }
        };
        tokio::spawn(signals);
        serve(Service::new(office, limits), listener, tls, handle).await
    })
}
