//! The office's error type.
//!
//! Messages say what is wrong, in one line, and never carry a code, a key, a
//! mobile number or a name. They speak of the office's domain; how to fix a
//! command line is the CLI's business.

use std::path::PathBuf;

use thiserror::Error as ThisError;

/// Everything the office side can refuse or fail at.
#[derive(Debug, ThisError)]
#[non_exhaustive]
pub enum Error {
    /// A protocol check failed (signature, format, validation).
    #[error(transparent)]
    Core(#[from] handover_core::Error),
    /// A bookings file row is wrong. `line` is 1-based, counting the header.
    #[error("bookings line {line}, column {column}: {why}; fix the file and issue again (nothing was issued)")]
    Bookings {
        /// Line in the file.
        line: u64,
        /// Column name.
        column: String,
        /// What is wrong.
        why: String,
    },
    /// Rows of a bookings file are wrong: each with its line, column and
    /// what to fix (up to [`crate::bookings::MAX_PROBLEMS`]; `more` counts
    /// the rest).
    #[error("{}", booking_rows(problems, *more))]
    BookingRows {
        /// The bad rows, in file order.
        problems: Vec<crate::bookings::Problem>,
        /// Bad rows beyond those listed.
        more: usize,
    },
    /// The directory holds no office.
    #[error("{} holds no office", .0.display())]
    NotInitialised(PathBuf),
    /// The directory already holds an office (keys are never overwritten).
    #[error("{} already holds an office; its keys are kept", .0.display())]
    AlreadyInitialised(PathBuf),
    /// The database already holds an office (one office per database).
    #[error("the database already holds an office; give another database")]
    DatabaseHoldsAnOffice,
    /// No enrolled device with that id.
    #[error("device {0} is not enrolled")]
    UnknownDevice(String),
    /// The device is revoked; its batches are refused.
    #[error("device {0} is revoked; its batches are refused")]
    DeviceRevoked(String),
    /// A validly signed, correctly chained event differs from the one held
    /// at its seq: a cloned device. Refused, the device flagged, the event
    /// kept as evidence.
    #[error("fork: device {device} signed a different event at seq {seq}, already held; batch refused, device flagged, evidence kept")]
    Fork {
        /// The device.
        device: String,
        /// The seq in question.
        seq: u64,
    },
    /// A batch does not continue from the head the office holds.
    #[error("batch from device {device} starts at seq {first}, but the office holds up to {head}; export from the device again")]
    Gap {
        /// The device.
        device: String,
        /// First seq of the batch.
        first: u64,
        /// Head the office holds.
        head: u64,
    },
    /// An event fails its signature or chain check, or differs from the
    /// event held at its seq without being validly signed and chained.
    /// Anyone can send bytes: the batch is refused, nothing is stored and
    /// the device is not flagged.
    #[error("batch from device {device} refused at seq {seq}: {why}; nothing stored, device not flagged")]
    BadEvent {
        /// The device.
        device: String,
        /// The event.
        seq: u64,
        /// What failed.
        why: String,
    },
    /// No enrolment token with that id (or not one this office made).
    #[error("unknown enrolment token")]
    UnknownToken,
    /// The enrolment token was already used by another device.
    #[error("this enrolment token was already used")]
    TokenUsed,
    /// The enrolment token has expired.
    #[error("this enrolment token has expired")]
    TokenExpired,
    /// The PostgreSQL connection string's TLS settings cannot be used.
    #[error("database connection: {0}")]
    DatabaseUrl(String),
    /// A PostgreSQL URL with a password was given other than through the
    /// environment.
    #[error("the database URL holds a password: give it in the environment variable HANDOVER_DATABASE_URL, or keep the password in PostgreSQL's password file (~/.pgpass), never on a command line or in a file")]
    PasswordInUrl,
    /// The device presenting a fresh token is enrolled (or revoked)
    /// already; the token stays usable for another device.
    #[error("this device is already enrolled at this office; the token was not used")]
    AlreadyEnrolled,
    /// A token's validity must be positive and at most 30 days.
    #[error("a token must be valid for more than nothing and at most 30 days")]
    TokenValidity,
    /// A signed request's time is too far from the office's clock.
    #[error("the request's time is more than five minutes from the office's clock")]
    StaleRequest {
        /// The office's clock, milliseconds since the epoch.
        server_time_ms: i64,
    },
    /// A signed request's nonce was seen before.
    #[error("this request was already received (replayed nonce)")]
    ReplayedRequest,
    /// `office.toml` cannot be used.
    #[error("{}: {why}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A setting the SMS sender needs is missing.
    #[error("SMS sender: {0}")]
    SmsSetting(&'static str),
    /// A secret's environment variable, which `office.toml` names, is not
    /// set in this process's environment.
    #[error(
        "SMS sender: the environment variable {var} (named by office.toml's {setting}) is not set"
    )]
    SecretNotSet {
        /// The variable's name (never its value).
        var: String,
        /// The `office.toml` key that names it.
        setting: &'static str,
    },
    /// The `template` sender's request cannot be made.
    #[error("SMS sender: {0}")]
    SmsTemplate(String),
    /// A template file is wrong.
    #[error("SMS templates: {0}")]
    Template(&'static str),
    /// A language other than en, hi or hi+en.
    #[error("language must be en, hi or hi+en")]
    Language,
    /// No item with that reference was issued.
    #[error("no item {0} was issued")]
    UnknownReference(String),
    /// A manifest's window must start before it ends.
    #[error("the validity window must start before it ends")]
    InvalidWindow,
    /// The bookings hold one reference twice.
    #[error("the bookings hold {0} twice")]
    BookedTwice(String),
    /// A revision would withdraw items the bookings leave out, and the
    /// request did not say to.
    #[error("the bookings leave out {count} of the {held} items of manifest {manifest_id}: issuing them would withdraw those items from the device")]
    WouldWithdraw {
        /// The manifest.
        manifest_id: String,
        /// Items it holds now.
        held: usize,
        /// Items the bookings leave out.
        count: usize,
    },
    /// A re-issue names a reference the bookings do not hold.
    #[error("a re-issue names {0}, which is not in the bookings")]
    ReissueNotBooked(String),
    /// A code was issued under a code key this office directory does not
    /// hold.
    #[error("code key '{id}' is not in this office's keys directory: copy keys/code-{id}.key from the office directory where it was made (after a rotation, to every server)")]
    CodeKeyMissing {
        /// The key's id.
        id: String,
    },
    /// This office directory's signing key is older than the newest the
    /// store records: the key was rotated elsewhere.
    #[error("the office's signing key was rotated: this directory's keys/office-signing.pk8 is an earlier key; copy keys/office-signing.pk8 from the office directory where the rotation ran")]
    SigningKeyOutdated,
    /// A report's filter that cannot be answered.
    #[error("{0}")]
    Report(&'static str),
    /// A staff account request that cannot be done (the reason, with no
    /// password in it).
    #[error("{0}")]
    Staff(&'static str),
    /// A grace period outside what a rotation allows.
    #[error("the grace period must be from 1 to 90 days")]
    GraceOutOfRange,
    /// A stored key file cannot be used.
    #[error("key file {} is damaged: {why}", path.display())]
    DamagedKey {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A file that holds personal data or codes is readable by others, or
    /// is not a regular file: refused rather than written.
    #[error("{}: {why}; refused to write personal data there", path.display())]
    UnsafeFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The office store holds a value out of range (damage, not input).
    #[error("office store: {0}")]
    Store(&'static str),
    /// Encoding an output (JSON, CSV) failed.
    #[error("could not encode {0}")]
    Encoding(&'static str),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A backup could not be made, opened or restored (why, without the
    /// passphrase or key).
    #[error("backup: {0}")]
    Backup(&'static str),
    /// SQLite reported an error.
    #[error("office store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database cannot be reached now (no connection within the
    /// pool's wait, or the connection closed): try again shortly.
    #[error("office store (PostgreSQL): {0}; try again shortly")]
    StoreUnavailable(&'static str),
    /// PostgreSQL reported an error (its message, never the values).
    #[error("office store (PostgreSQL): {message}")]
    Postgres {
        /// The server's message and SQLSTATE, or the client's.
        message: String,
        /// A serialization failure or deadlock: the transaction may run again.
        transient: bool,
    },
}

impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Error {
        use postgres::error::SqlState;
        match e.as_db_error() {
            // The server is shutting down, restarting or not yet taking
            // connections, or the connection failed (SQLSTATE class 08):
            // nothing was done; another connection, shortly, will do.
            Some(db)
                if db.code().code().starts_with("08")
                    || [
                        SqlState::ADMIN_SHUTDOWN,
                        SqlState::CRASH_SHUTDOWN,
                        SqlState::CANNOT_CONNECT_NOW,
                    ]
                    .contains(db.code()) =>
            {
                Error::StoreUnavailable("the database is restarting or unreachable")
            }
            Some(db) => Error::Postgres {
                message: format!("{} ({})", db.message(), db.code().code()),
                transient: [
                    SqlState::T_R_SERIALIZATION_FAILURE,
                    SqlState::T_R_DEADLOCK_DETECTED,
                ]
                .contains(db.code()),
            },
            // No answer from the server: the connection is closed, or
            // closed while it waited (a restart, a failover, the network).
            None if e.is_closed() || is_io(&e) => Error::StoreUnavailable(if e.is_closed() {
                "the connection is closed"
            } else {
                "cannot reach the database"
            }),
            None => Error::Postgres {
                message: "the database client failed".into(),
                transient: false,
            },
        }
    }
}

/// Whether a client error is a failure to talk to the server (a refused
/// or reset connection), not a refusal by it.
fn is_io(e: &postgres::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// The office's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}

/// The first bad row, and how many others.
fn booking_rows(problems: &[crate::bookings::Problem], more: usize) -> String {
    let others = problems.len().saturating_sub(1) + more;
    let first = problems.first().map_or_else(String::new, |p| {
        format!("bookings line {}, column {}: {}", p.line, p.column, p.why)
    });
    match others {
        0 => format!("{first}; fix the file and issue again (nothing was issued)"),
        n => format!(
            "{first}; and {n} more bad row(s); fix the file and issue again (nothing was issued)"
        ),
    }
}
