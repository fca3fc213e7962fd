//! # handover-ffi
//!
//! uniffi bindings of [`handover_core`] for Android: a thin adapter that
//! converts types and errors and holds no logic of its own. Kotlin is
//! generated from this library (library mode) by the `uniffi-bindgen` crate;
//! the idiomatic Kotlin facade lives in `android/`.
//!
//! | file | concern |
//! |---|---|
//! | `lib.rs` | conversions every file shares (times, counts, `Sensitive`) |
//! | `device.rs` | the `HandoverDevice` object, and `RetiredOutbox` for a store whose key is lost |
//! | `records.rs` | the records and enums it returns |
//! | `sync.rs` | enrolment and the sync session |
//! | `error.rs` | `HandoverError` and the one mapping from core errors |
//! | `key_wrapper.rs` | `KeyWrapper`, the host's wrapping of the device key at rest |
//!
//! Times cross the boundary as milliseconds since the Unix epoch (UTC),
//! which is what `System.currentTimeMillis()` gives; byte blobs (manifests,
//! batches, acks) as `ByteArray`. Numbers are signed (`Int`, `Long` in
//! Kotlin), and arguments out of range are `InvalidInput`, never a panic.
//! Personal data and text holding a code cross as [`Sensitive`], whose
//! Kotlin `toString()` shows nothing of it.

#![deny(missing_docs)]

use chrono::{DateTime, Utc};

mod device;
mod error;
mod key_wrapper;
mod records;
mod sync;

pub use device::{HandoverDevice, RetiredOutbox};
pub use error::HandoverError;
pub use key_wrapper::{KeyWrapError, KeyWrapper};
pub use records::*;
pub use sync::*;

uniffi::setup_scaffolding!();

pub(crate) type Result<T> = std::result::Result<T, HandoverError>;

pub(crate) fn time(ms: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms).ok_or(HandoverError::InvalidInput {
        reason: "time out of range".into(),
    })
}

pub(crate) fn out_of_range(what: &str) -> HandoverError {
    HandoverError::InvalidInput {
        reason: format!("{what} out of range"),
    }
}

/// Events per batch: 1 or more.
pub(crate) fn batch_size(max: i32) -> Result<u64> {
    u64::try_from(max)
        .ok()
        .filter(|m| *m > 0)
        .ok_or_else(|| out_of_range("batch size"))
}

/// A count or number as Kotlin's `Long`.
pub(crate) fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Personal data (names, addresses, numbers), or text that holds a code
/// (an event's body). Kotlin gets `app.handover.Sensitive`, whose
/// `toString()` shows nothing of it; Rust's `Debug` neither.
#[derive(Clone, PartialEq, Eq)]
pub struct Sensitive(pub String);

uniffi::custom_newtype!(Sensitive, String);

impl std::fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sensitive(..)")
    }
}
