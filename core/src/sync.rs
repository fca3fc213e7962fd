//! Sync formats: the device's batch and the office's signed ack.
//!
//! A **batch** is JSON: the device id and public key, and a contiguous run of
//! [`Event`]s from the first unacknowledged `seq`. It needs no signature of its
//! own: every event is signed and chained.
//!
//! An **ack** is the office's answer, sealed in an
//! [`envelope`](crate::envelope) under the office key: the device id, the seq
//! it acknowledges through, the hash of that event, and a [`Verdict`] per
//! event of the batch. The device checks the signature before parsing, then
//! that the ack is for it and that the head hash is its own.
//!
//! ```
//! use handover_core::keys::SigningKey;
//! use handover_core::sync::*;
//! let office = SigningKey::generate().unwrap();
//! let ack = Ack {
//!     format: ACK_FORMAT.into(),
//!     device_id: "0123456789abcdef".into(),
//!     through_seq: 2,
//!     head_hash: [7; 32],
//!     verdicts: vec![EventVerdict { seq: 1, verdict: Verdict::Recorded },
//!                    EventVerdict { seq: 2, verdict: Verdict::Verified }],
//! };
//! let sealed = ack.seal(&office).unwrap();
//! assert_eq!(Ack::open(&sealed, &[office.public_key()]).unwrap(), ack);
//! ```

use serde::{Deserialize, Serialize};

use crate::envelope::{self, Kind};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::hexser;
use crate::keys::{PublicKey, SigningKey};

/// The `format` of a v1 batch.
pub const BATCH_FORMAT: &str = "handover/batch/v1";
/// The `format` of a v1 ack.
pub const ACK_FORMAT: &str = "handover/ack/v1";
/// Most events one batch may carry.
pub const MAX_BATCH_EVENTS: usize = 10_000;
/// Largest batch file accepted (bytes).
pub const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;
/// Most sealed acks one batch may carry (a resend's proof, [`Batch::acks`]).
pub const MAX_BATCH_ACKS: usize = 1_000;

/// A run of a device's events for the office.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// Always [`BATCH_FORMAT`].
    pub format: String,
    /// The sending device.
    pub device_id: String,
    /// Its public key (the office checks it against the enrolled one).
    pub device_key: PublicKey,
    /// Contiguous events, oldest first.
    pub events: Vec<Event>,
    /// Only on a **resend** (the office lost events it had acknowledged,
    /// and answered `gap` with the seq it needs): the acks the office sealed
    /// for these events the first time, base64. They are the office's own
    /// signed verdicts; it keeps them instead of judging the events again,
    /// and queues no second confirmation SMS. Empty, and absent on the wire,
    /// otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acks: Vec<String>,
}

impl Batch {
    /// JSON bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|_| Error::Encoding("batch to JSON"))
    }

    /// Parse and check the structure (format, size, contiguous seqs). The
    /// signatures and chain are the office's to check against what it holds.
    pub fn from_bytes(bytes: &[u8]) -> Result<Batch> {
        if bytes.len() > MAX_BATCH_BYTES {
            return Err(Error::malformed("batch", "too large"));
        }
        let batch: Batch = serde_json::from_slice(bytes)
            .map_err(|_| Error::malformed("batch", "not a v1 batch"))?;
        if batch.format != BATCH_FORMAT {
            return Err(Error::malformed("batch", "unknown format"));
        }
        if batch.events.len() > MAX_BATCH_EVENTS {
            return Err(Error::malformed("batch", "too many events"));
        }
        if batch.acks.len() > MAX_BATCH_ACKS {
            return Err(Error::malformed("batch", "too many acks"));
        }
        if batch.device_key.device_id() != batch.device_id {
            return Err(Error::malformed(
                "batch",
                "device id does not match its key",
            ));
        }
        for pair in batch.events.windows(2) {
            if pair[1].seq != pair[0].seq.wrapping_add(1) {
                return Err(Error::malformed("batch", "events are not contiguous"));
            }
        }
        if batch.events.first().is_some_and(|e| e.seq == 0) {
            return Err(Error::malformed("batch", "seq starts at 1"));
        }
        Ok(batch)
    }
}

/// The office's finding on one event. Only `verified` and `recorded` are
/// clean; every other verdict flags the event for review.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum Verdict {
    /// A handover whose code the office re-derived and matched.
    Verified,
    /// A handover whose code is not the item's code: flagged.
    CodeMismatch,
    /// A handover outside the manifest's validity window, or for an item the
    /// office never issued to this device.
    OutsideValidity,
    /// A handover recorded while the device clock was suspect, by the
    /// device's own flag or by what the office derives from the signed body.
    ClockSuspect,
    /// A second handover of an item already confirmed.
    Duplicate,
    /// A handover with a code version the office has since replaced: the
    /// right code of an older version (e.g. before a re-issue).
    Superseded,
    /// A handover after the item locked at the same code version.
    AfterLock,
    /// A wrong code beyond the policy's `max_attempts` for one code version.
    AttemptsExceeded,
    /// A manifest revision imported a second time (e.g. after a purge).
    Reimported,
    /// A payment that does not match the item's cash on delivery: another
    /// amount, an item without one, a second payment, or a UPI transaction
    /// reference that is not 12 digits.
    PaymentMismatch,
    /// Any other event, stored as received.
    Recorded,
}

impl Verdict {
    /// Every verdict, in the order reports list them.
    pub const ALL: [Verdict; 11] = [
        Verdict::Verified,
        Verdict::CodeMismatch,
        Verdict::OutsideValidity,
        Verdict::ClockSuspect,
        Verdict::Duplicate,
        Verdict::Superseded,
        Verdict::AfterLock,
        Verdict::AttemptsExceeded,
        Verdict::Reimported,
        Verdict::PaymentMismatch,
        Verdict::Recorded,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Verified => "verified",
            Verdict::CodeMismatch => "code_mismatch",
            Verdict::OutsideValidity => "outside_validity",
            Verdict::ClockSuspect => "clock_suspect",
            Verdict::Duplicate => "duplicate",
            Verdict::Superseded => "superseded",
            Verdict::AfterLock => "after_lock",
            Verdict::AttemptsExceeded => "attempts_exceeded",
            Verdict::Reimported => "reimported",
            Verdict::PaymentMismatch => "payment_mismatch",
            Verdict::Recorded => "recorded",
        }
    }

    /// Parse the snake_case name.
    pub fn parse(s: &str) -> Result<Verdict> {
        Verdict::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or(Error::malformed("verdict", "unknown verdict"))
    }

    /// Whether the event needs review: anything but `verified` and `recorded`.
    pub fn is_flagged(self) -> bool {
        !matches!(self, Verdict::Verified | Verdict::Recorded)
    }
}

/// One event's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventVerdict {
    /// The event.
    pub seq: u64,
    /// The finding.
    pub verdict: Verdict,
}

/// The office's signed answer to a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    /// Always [`ACK_FORMAT`].
    pub format: String,
    /// The device acknowledged.
    pub device_id: String,
    /// Every event up to and including this seq is held by the office.
    pub through_seq: u64,
    /// Hash of the event at `through_seq`.
    #[serde(with = "hexser::array")]
    pub head_hash: [u8; 32],
    /// Verdicts for the events of the batch answered.
    pub verdicts: Vec<EventVerdict>,
}

impl Ack {
    /// Serialise and seal under the office key.
    pub fn seal(&self, office: &SigningKey) -> Result<Vec<u8>> {
        let payload = serde_json::to_vec(self).map_err(|_| Error::Encoding("ack to JSON"))?;
        envelope::seal(Kind::Ack, office, &payload)
    }

    /// Check the signature against `trusted` keys, then parse.
    pub fn open(bytes: &[u8], trusted: &[PublicKey]) -> Result<Ack> {
        let payload = envelope::open(Kind::Ack, bytes, trusted)?;
        let ack: Ack = serde_json::from_slice(payload)
            .map_err(|_| Error::malformed("ack", "payload is not a v1 ack"))?;
        if ack.format != ACK_FORMAT {
            return Err(Error::malformed("ack", "unknown format"));
        }
        if ack
            .verdicts
            .iter()
            .any(|v| v.seq == 0 || v.seq > ack.through_seq)
        {
            return Err(Error::malformed(
                "ack",
                "verdict for an event beyond through_seq",
            ));
        }
        Ok(ack)
    }
}
