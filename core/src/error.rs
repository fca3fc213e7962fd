//! The crate's error type.
//!
//! One rich enum, [`Error`], for everything `handover-core` can refuse. Its
//! messages are written for an operator's log: they say *what* went wrong and
//! never carry a code, a verifier, a key, a name, an address or a reference.
//! Callers that need the offending value already have it.

use thiserror::Error as ThisError;

/// Everything `handover-core` can refuse or fail at.
#[derive(Debug, ThisError)]
#[non_exhaustive]
pub enum Error {
    /// Input bytes or fields did not have the expected shape. `what` names the
    /// field or structure, never its value.
    #[error("malformed {what}: {why}")]
    Malformed {
        /// The structure or field that was malformed.
        what: &'static str,
        /// Why it was refused.
        why: &'static str,
    },
    /// A text field failed validation (length, characters, range).
    #[error("invalid {field}: {why}")]
    Invalid {
        /// The field that was refused.
        field: &'static str,
        /// Why it was refused.
        why: &'static str,
    },
    /// A policy's parameters are outside what the protocol allows.
    #[error("invalid policy: {0}")]
    InvalidPolicy(&'static str),
    /// An S10 article number failed its format or check digit.
    #[error("invalid S10 article number: {0}")]
    InvalidS10(&'static str),
    /// A signature did not verify.
    #[error("signature check failed for {0}")]
    BadSignature(&'static str),
    /// The envelope names an office key this device has not pinned.
    #[error("signed by an office key that is not trusted here")]
    UntrustedKey,
    /// A manifest or ack addressed to another device.
    #[error("addressed to another device")]
    WrongDevice,
    /// A manifest whose validity window has already closed.
    #[error("manifest has expired")]
    ManifestExpired,
    /// A manifest revision not newer than the one held (and not identical).
    #[error("manifest revision {offered} is not newer than the held revision {held}")]
    StaleRevision {
        /// The revision this device holds.
        held: u32,
        /// The revision that was offered.
        offered: u32,
    },
    /// A manifest revision changes the verifier, policy or digits of an item
    /// without raising its code version. Two verifiers of one code would
    /// narrow an insider's brute force; the office must raise the version.
    #[error("a manifest revision changes an item's verifier or policy without a new code version")]
    VerifierChanged,
    /// The device clock reads earlier than the latest time the device has
    /// seen (its high-water mark) by more than the tolerance.
    #[error("the device clock is behind the latest time this device has seen; check the date and time settings")]
    ClockBehind,
    /// An event's hash chain or sequence did not continue as it must.
    #[error("hash chain broken: {0}")]
    ChainBroken(&'static str),
    /// An ack that does not match this device's outbox.
    #[error("ack does not match this device's outbox: {0}")]
    AckMismatch(&'static str),
    /// No item with that reference on this device.
    #[error("no such item on this device")]
    UnknownItem,
    /// The operation does not apply to the item in its current state.
    #[error("not allowed for this item: {0}")]
    NotAllowed(&'static str),
    /// The database file could not be opened or failed its integrity check.
    /// It is left untouched: it may hold the only copy of a signed receipt.
    #[error("database cannot be used and was left untouched: {0}")]
    DatabaseUnusable(String),
    /// The device key is wrapped at rest and could not be unwrapped (the
    /// wrapping key is gone or refused), or the store was opened without its
    /// key wrapper. The database is left untouched.
    #[error("the device key cannot be used: {0}")]
    KeyUnavailable(String),
    /// The database was written by a newer version of this library.
    #[error("database schema version {found} is newer than this library supports ({supported})")]
    SchemaTooNew {
        /// `user_version` found in the file.
        found: i64,
        /// Highest version this build knows.
        supported: i64,
    },
    /// The office answered a sync request with an error.
    #[error("the office answered {status} ({code})")]
    Office {
        /// HTTP status.
        status: u16,
        /// The error code of its answer (`docs/sync-api.md`).
        code: crate::api::ErrorCode,
    },
    /// SQLite reported an error.
    #[error("storage error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The platform's random number generator or key generation failed.
    #[error("cryptographic failure: {0}")]
    Crypto(&'static str),
    /// Encoding a value failed (should not happen for well-formed values).
    #[error("encoding failed: {0}")]
    Encoding(&'static str),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn malformed(what: &'static str, why: &'static str) -> Self {
        Error::Malformed { what, why }
    }
    pub(crate) fn invalid(field: &'static str, why: &'static str) -> Self {
        Error::Invalid { field, why }
    }
}
