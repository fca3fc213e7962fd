//! The CLI's error: the libraries' errors as they are, with the advice a
//! person at the command line needs added in one place ([`Error::advice`]).
//! Flag names live here, never in the libraries.

use std::path::PathBuf;

use handover_core::api::ErrorCode;
use thiserror::Error as ThisError;

/// Everything a `handover` command can fail at.
#[derive(Debug, ThisError)]
#[non_exhaustive]
pub enum Error {
    /// The office library refused or failed.
    #[error(transparent)]
    Office(#[from] handover_office::Error),
    /// The device store or a protocol check refused or failed.
    #[error(transparent)]
    Core(#[from] handover_core::Error),
    /// The office could not be reached (or kept answering "later").
    #[error("cannot reach the office at {url}: {why}")]
    Unreachable {
        /// The office's URL.
        url: String,
        /// The last failure.
        why: String,
    },
    /// SMS could not be sent; they are kept in the outbox.
    #[error("{failed} SMS could not be sent: {why}; they stay on record in the outbox")]
    SmsFailed {
        /// How many.
        failed: u64,
        /// Why.
        why: String,
    },
    /// The sync service could not start.
    #[error(transparent)]
    Serve(#[from] handover_server::ServeError),
    /// A command-line value is wrong.
    #[error("{0}")]
    Usage(String),
    /// The demo's report disagrees with what happened at the doors.
    #[error("the office's report disagrees with the day: {0}")]
    DemoMismatch(String),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The CLI's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}

impl Error {
    /// Lines to print before the error's own: every bad row of a bookings
    /// file, so that one round of fixing is enough.
    pub fn details(&self) -> Vec<String> {
        match self {
            Error::Office(handover_office::Error::BookingRows { problems, more })
                if problems.len() + more > 1 =>
            {
                let mut lines: Vec<String> = problems
                    .iter()
                    .map(|p| format!("line {}, column {}: {}", p.line, p.column, p.why))
                    .collect();
                if *more > 0 {
                    lines.push(format!("… and {more} more bad rows"));
                }
                lines
            }
            _ => Vec::new(),
        }
    }

    /// What to do about it, in the command line's terms.
    pub fn advice(&self) -> Option<String> {
        use handover_core::Error as C;
        use handover_office::Error as O;
        let core = |e: &C| -> Option<String> {
            Some(match e {
                C::DatabaseUnusable(_) => {
                    "the file was left exactly as it was; restore it from a backup or use another --dir".into()
                }
                C::SchemaTooNew { .. } => "use a newer handover for this directory".into(),
                C::ClockBehind => "set the device's date and time, then try again".into(),
                C::StaleRevision { .. } => {
                    "import the newest manifest file the office issued".into()
                }
                C::UntrustedKey => "pin the office key with `handover device init --office-key`".into(),
                C::ManifestExpired => "ask the office for today's manifest".into(),
                _ => return None,
            })
        };
        Some(match self {
            Error::SmsFailed { .. } => {
                "resend them with `handover office sms send --retry-failed`".into()
            }
            Error::Unreachable { .. } => {
                "nothing was lost: every event stays queued; sync again when there is coverage"
                    .into()
            }
            Error::Core(C::Office { code, .. }) if *code == ErrorCode::Revoked => {
                "this device is revoked at the office; ask the office".into()
            }
            Error::Core(C::Office { code, .. }) if *code == ErrorCode::UnknownDevice => {
                "enrol the device first with `handover device enrol`".into()
            }
            Error::Core(C::Office { code, status }) if *code == ErrorCode::Unknown => format!(
                "the server answered {status} but not as a handover office: check --server's host, port and path"
            ),
            Error::Serve(handover_server::ServeError::Listen { source, addr }) => match source.kind() {
                std::io::ErrorKind::AddrInUse => format!(
                    "another program (perhaps another `handover office serve`) listens on port {}: stop it, or give another --listen port",
                    addr.port()
                ),
                std::io::ErrorKind::PermissionDenied => {
                    "ports below 1024 need privileges: listen on 8443 (or 8080 behind a reverse proxy)".into()
                }
                std::io::ErrorKind::AddrNotAvailable => {
                    "that address is not one of this machine's: check --listen".into()
                }
                _ => return None,
            },
            Error::Io { source, .. } | Error::Office(O::Io { source, .. }) => match source.kind() {
                std::io::ErrorKind::NotFound => "no such file or directory: check the path".into(),
                std::io::ErrorKind::PermissionDenied => {
                    "this user may not use that path: check its owner and mode, or choose another".into()
                }
                std::io::ErrorKind::ReadOnlyFilesystem => {
                    "the file system is read-only there: choose a writable directory".into()
                }
                std::io::ErrorKind::AlreadyExists => "it exists already: choose another path".into(),
                _ => return None,
            },
            Error::Office(O::Core(e)) | Error::Core(e) => return core(e),
            Error::Office(O::NotInitialised(p)) => {
                format!("run `handover office init --dir {}` first", p.display())
            }
            Error::Office(O::AlreadyInitialised(_)) => "use another --dir for a new office".into(),
            Error::Office(O::UnknownDevice(_)) => {
                "enrol it with `handover office enroll --device-key KEY --assignee NAME`".into()
            }
            Error::Office(O::InvalidWindow) => "--valid-from must be before --valid-until".into(),
            Error::Office(O::ReissueNotBooked(_)) => {
                "--reissue must name a reference of the bookings file".into()
            }
            Error::Office(O::WouldWithdraw { .. }) => {
                "nothing was issued; give the whole day's list, or --add to add these items and keep the rest, or --withdraw-missing to withdraw the items left out".into()
            }
            Error::Office(O::SecretNotSet { var, .. }) => format!(
                "export {var}=… in this shell, or in the service's environment (systemd: /etc/handover/env, mode 0600)"
            ),
            Error::Office(O::UnsafeFile { .. }) => "choose another path, or fix the file".into(),
            Error::Office(O::DamagedKey { .. }) => {
                "restore the office's keys/ directory from its backup".into()
            }
            _ => return None,
        })
    }
}
