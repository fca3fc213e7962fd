//! The office's error type.
//!
//! Messages say what is wrong and what to do, in one line, and never carry a
//! code, a key, a mobile number or a name.

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
    /// The directory holds no office.
    #[error("{p} holds no office; run `handover office init --dir {p}` first", p = .0.display())]
    NotInitialised(PathBuf),
    /// The directory already holds an office (keys are never overwritten).
    #[error("{p} already holds an office; its keys are kept, use another --dir for a new one", p = .0.display())]
    AlreadyInitialised(PathBuf),
    /// No enrolled device with that id.
    #[error("device {0} is not enrolled; enrol it with `handover office enroll`")]
    UnknownDevice(String),
    /// The device is revoked; its batches are refused.
    #[error("device {0} is revoked; its batches are refused")]
    DeviceRevoked(String),
    /// A batch holds a different event at a seq already held: refused, device flagged.
    #[error("fork: device {device} sent a different event at seq {seq}, already held; batch refused and device flagged")]
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
    /// An event failed its signature or chain check: batch refused, device flagged.
    #[error("batch from device {device} failed verification at seq {seq}: {why}; batch refused and device flagged")]
    Tampered {
        /// The device.
        device: String,
        /// The event.
        seq: u64,
        /// What failed.
        why: String,
    },
    /// A usage error with its advice.
    #[error("{0}")]
    Usage(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// SQLite reported an error.
    #[error("office store: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// The office's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
