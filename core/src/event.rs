//! Outbox events: the device's signed, hash-chained record of every outcome.
//!
//! ```text
//! hash      = SHA-256("handover/event/v1" || prev_hash || body)
//! signature = Ed25519(device key, hash)
//! ```
//!
//! `body` is the JSON of an [`EventBody`] (device id, `seq`, device UTC time,
//! a monotonic counter, the clock-suspect flag and the [`EventKind`]), stored
//! and sent as the exact bytes first written, never re-serialised, so the hash
//! and signature stay checkable forever. The first event's `prev_hash` is 32
//! zero bytes. A signed `handed_over` event is the recipient's receipt.
//!
//! The counter is a hybrid logical clock in milliseconds:
//! `max(previous + 1, device time)`. It tracks real time while the clock is
//! sane and still rises when someone sets the clock back.
//!
//! ```
//! use chrono::Utc;
//! use handover_core::event::*;
//! use handover_core::keys::SigningKey;
//! let key = SigningKey::generate().unwrap();
//! let body = EventBody {
//!     device_id: key.public_key().device_id(),
//!     seq: 1,
//!     time: Utc::now(),
//!     counter: 1,
//!     clock_suspect: false,
//!     kind: EventKind::ManifestImported { manifest_id: "m1".into(), revision: 1, items: 0 },
//!     at: None,
//! };
//! let event = Event::create(GENESIS, &body, &key).unwrap();
//! assert_eq!(event.verify(&key.public_key()).unwrap(), body);
//! ```

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::codes::Code;
use crate::error::{Error, Result};
use crate::hexser;
use crate::keys::{sha256, PublicKey, SigningKey};

/// Domain label of the event hash.
pub const EVENT_LABEL: &[u8] = b"handover/event/v1";
/// `prev_hash` of the first event.
pub const GENESIS: [u8; 32] = [0; 32];
/// Largest event body accepted (bytes).
pub const MAX_BODY: usize = 8 * 1024;

/// Why an item was not handed over at this visit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum ExceptionReason {
    /// Nobody at home.
    NotHome,
    /// The recipient refused the item.
    Refused,
    /// The address could not be found.
    AddressNotFound,
    /// The recipient did not receive the code.
    CodeNotReceived,
}

impl ExceptionReason {
    /// Every reason.
    pub const ALL: [ExceptionReason; 4] = [
        ExceptionReason::NotHome,
        ExceptionReason::Refused,
        ExceptionReason::AddressNotFound,
        ExceptionReason::CodeNotReceived,
    ];

    /// Parse the snake_case name.
    pub fn parse(s: &str) -> Option<ExceptionReason> {
        ExceptionReason::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ExceptionReason::NotHome => "not_home",
            ExceptionReason::Refused => "refused",
            ExceptionReason::AddressNotFound => "address_not_found",
            ExceptionReason::CodeNotReceived => "code_not_received",
        }
    }
}

/// How cash on delivery was paid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    /// Cash in hand.
    Cash,
    /// UPI, with the payer app's transaction reference (UTR).
    Upi {
        /// The UPI transaction reference.
        txn_ref: String,
    },
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum EventKind {
    /// The right code was given and the item handed over.
    HandedOver {
        /// Manifest of the item.
        manifest_id: String,
        /// Revision of the manifest in force.
        revision: u32,
        /// The item.
        reference: String,
        /// Code version checked.
        code_version: u32,
        /// The code as entered, for the office to re-verify exactly.
        code: Code,
    },
    /// A wrong code was entered.
    AttemptFailed {
        /// Manifest of the item.
        manifest_id: String,
        /// The item.
        reference: String,
        /// Code version checked.
        code_version: u32,
        /// Attempts left after this one.
        attempts_left: u32,
    },
    /// Too many wrong codes: the item is locked until re-issued.
    Locked {
        /// Manifest of the item.
        manifest_id: String,
        /// The item.
        reference: String,
        /// Code version that locked.
        code_version: u32,
    },
    /// Not handed over at this visit.
    Exception {
        /// Manifest of the item.
        manifest_id: String,
        /// The item.
        reference: String,
        /// Why.
        reason: ExceptionReason,
    },
    /// Cash on delivery collected.
    Payment {
        /// Manifest of the item.
        manifest_id: String,
        /// The item.
        reference: String,
        /// Amount in paise.
        amount_paise: u64,
        /// How.
        method: PaymentMethod,
    },
    /// A manifest revision was imported.
    ManifestImported {
        /// The manifest.
        manifest_id: String,
        /// Its revision.
        revision: u32,
        /// Items it holds.
        items: u32,
    },
    /// The device clock read earlier than the high-water mark of time (the
    /// hybrid logical clock) by more than the tolerance.
    ClockAnomaly {
        /// The high-water mark: the latest time the device had seen.
        mark: DateTime<Utc>,
        /// The clock's reading now.
        now: DateTime<Utc>,
    },
    /// Acknowledged events and finished manifests were purged. Manifests
    /// leave a tombstone (revision, each item's final state and attempts).
    Purged {
        /// Events and manifests older than this were purged.
        cutoff: DateTime<Utc>,
        /// Events removed.
        events: u64,
        /// Manifests reduced to tombstones.
        manifests: u64,
    },
}

impl EventKind {
    /// The manifest and the item the event is about, where it names them.
    pub fn subject(&self) -> (Option<&str>, Option<&str>) {
        match self {
            EventKind::HandedOver {
                manifest_id,
                reference,
                ..
            }
            | EventKind::AttemptFailed {
                manifest_id,
                reference,
                ..
            }
            | EventKind::Locked {
                manifest_id,
                reference,
                ..
            }
            | EventKind::Exception {
                manifest_id,
                reference,
                ..
            }
            | EventKind::Payment {
                manifest_id,
                reference,
                ..
            } => (Some(manifest_id), Some(reference)),
            EventKind::ManifestImported { manifest_id, .. } => (Some(manifest_id), None),
            EventKind::ClockAnomaly { .. } | EventKind::Purged { .. } => (None, None),
        }
    }

    /// The snake_case type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            EventKind::HandedOver { .. } => "handed_over",
            EventKind::AttemptFailed { .. } => "attempt_failed",
            EventKind::Locked { .. } => "locked",
            EventKind::Exception { .. } => "exception",
            EventKind::Payment { .. } => "payment",
            EventKind::ManifestImported { .. } => "manifest_imported",
            EventKind::ClockAnomaly { .. } => "clock_anomaly",
            EventKind::Purged { .. } => "purged",
        }
    }
}

/// Where the device was when it recorded a doorstep event, as the phone's
/// location provider gave it at that moment (issue 21: presence evidence).
/// Inside the signed body: it cannot be changed after the fact. It is the
/// device's claim, not proof: a rooted phone can lie. `Debug` leaves out
/// the position (a home's location is personal data).
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Fix {
    /// Latitude in 1e-7 degrees (north positive).
    pub lat_e7: i32,
    /// Longitude in 1e-7 degrees (east positive).
    pub lon_e7: i32,
    /// The provider's accuracy radius, metres.
    pub accuracy_m: u32,
    /// When the provider took the fix, Unix milliseconds (not when it was
    /// attached: a stale fix shows).
    pub time_ms: i64,
    /// The platform flagged it as a mock location.
    pub mock: bool,
}

impl std::fmt::Debug for Fix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fix")
            .field("accuracy_m", &self.accuracy_m)
            .field("mock", &self.mock)
            .finish_non_exhaustive()
    }
}

impl Fix {
    /// Worst accuracy a fix may claim: 100 km (a cell tower's guess).
    pub const MAX_ACCURACY_M: u32 = 100_000;

    /// A fix from degrees, as a platform gives them.
    pub fn from_degrees(
        lat: f64,
        lon: f64,
        accuracy_m: u32,
        time_ms: i64,
        mock: bool,
    ) -> Result<Fix> {
        let e7 = |v: f64, max: f64, what: &'static str| -> Result<i32> {
            if !v.is_finite() || v.abs() > max {
                return Err(Error::invalid(what, "out of range"));
            }
            Ok((v * 1e7).round() as i32)
        };
        let fix = Fix {
            lat_e7: e7(lat, 90.0, "latitude")?,
            lon_e7: e7(lon, 180.0, "longitude")?,
            accuracy_m,
            time_ms,
            mock,
        };
        fix.validate()?;
        Ok(fix)
    }

    /// Check the ranges: latitude ±90°, longitude ±180°, accuracy at most
    /// [`MAX_ACCURACY_M`](Self::MAX_ACCURACY_M), a time after 2020.
    pub fn validate(&self) -> Result<()> {
        if self.lat_e7.unsigned_abs() > 900_000_000 {
            return Err(Error::invalid("latitude", "beyond ±90 degrees"));
        }
        if self.lon_e7.unsigned_abs() > 1_800_000_000 {
            return Err(Error::invalid("longitude", "beyond ±180 degrees"));
        }
        if self.accuracy_m > Self::MAX_ACCURACY_M {
            return Err(Error::invalid("accuracy", "worse than 100 km"));
        }
        if self.time_ms < 1_577_836_800_000 {
            return Err(Error::invalid("fix time", "before 2020"));
        }
        Ok(())
    }

    /// Latitude and longitude in degrees.
    pub fn degrees(&self) -> (f64, f64) {
        (f64::from(self.lat_e7) / 1e7, f64::from(self.lon_e7) / 1e7)
    }
}

/// The signed content of an event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventBody {
    /// The device that recorded it.
    pub device_id: String,
    /// Position in the device's outbox: 1, 2, 3 … with no gaps.
    pub seq: u64,
    /// Device UTC time.
    pub time: DateTime<Utc>,
    /// Hybrid logical clock, milliseconds.
    pub counter: i64,
    /// Recorded after a clock anomaly and before the next ack.
    pub clock_suspect: bool,
    /// What happened.
    pub kind: EventKind,
    /// Where, for a doorstep event (handover, wrong code, exception,
    /// payment) when the app gave a fix; absent otherwise, and absent from
    /// the bytes (bodies written before fixes existed read the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Fix>,
}

/// A stored event: body bytes as first written, with chain hash and signature.
/// `Debug` shows seq and hashes, not the body (a handover's body holds the code).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Position in the outbox.
    pub seq: u64,
    /// Hash of the previous event ([`GENESIS`] for the first).
    #[serde(with = "hexser::array")]
    pub prev_hash: [u8; 32],
    /// The body's JSON bytes, exactly as signed.
    #[serde(with = "body_text")]
    pub body: Vec<u8>,
    /// `SHA-256(label || prev_hash || body)`.
    #[serde(with = "hexser::array")]
    pub hash: [u8; 32],
    /// Device signature of `hash`.
    #[serde(with = "hexser::array")]
    pub signature: [u8; 64],
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("seq", &self.seq)
            .field("prev_hash", &hex::encode(self.prev_hash))
            .field("hash", &hex::encode(self.hash))
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// Event bodies travel as JSON strings holding the exact body text.
mod body_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let text = std::str::from_utf8(v).map_err(serde::ser::Error::custom)?;
        s.serialize_str(text)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        if text.len() > super::MAX_BODY {
            return Err(serde::de::Error::custom("event body too large"));
        }
        Ok(text.into_bytes())
    }
}

/// The chain hash of `body` after `prev_hash`.
pub fn chain_hash(prev_hash: &[u8; 32], body: &[u8]) -> [u8; 32] {
    sha256(&[EVENT_LABEL, prev_hash, body])
}

impl Event {
    /// Serialise `body`, chain it after `prev_hash` and sign it.
    pub fn create(prev_hash: [u8; 32], body: &EventBody, key: &SigningKey) -> Result<Event> {
        let bytes = serde_json::to_vec(body).map_err(|_| Error::Encoding("event body to JSON"))?;
        let hash = chain_hash(&prev_hash, &bytes);
        Ok(Event {
            seq: body.seq,
            prev_hash,
            body: bytes,
            hash,
            signature: key.sign(&hash),
        })
    }

    /// Check hash and signature against `device_key`, parse the body, and
    /// check that its seq and device id agree with the envelope.
    pub fn verify(&self, device_key: &PublicKey) -> Result<EventBody> {
        if self.body.len() > MAX_BODY {
            return Err(Error::malformed("event", "body too large"));
        }
        if chain_hash(&self.prev_hash, &self.body) != self.hash {
            return Err(Error::ChainBroken("event hash does not match its body"));
        }
        device_key
            .verify(&self.hash, &self.signature)
            .map_err(|_| Error::BadSignature("event"))?;
        let body = self.parse_body()?;
        if body.seq != self.seq {
            return Err(Error::ChainBroken("event seq differs from its body"));
        }
        if body.device_id != device_key.device_id() {
            return Err(Error::WrongDevice);
        }
        Ok(body)
    }

    /// [`verify`](Self::verify), keeping the event with its body.
    pub fn verified(&self, device_key: &PublicKey) -> Result<Verified<'_>> {
        Ok(Verified {
            body: self.verify(device_key)?,
            event: self,
        })
    }

    /// Parse the body without checking anything (for the device's own events).
    pub fn parse_body(&self) -> Result<EventBody> {
        serde_json::from_slice(&self.body)
            .map_err(|_| Error::malformed("event", "body is not a v1 event"))
    }
}

/// An event whose hash, signature and body checked out against a device
/// key ([`Event::verified`]); its place in a chain is still to be checked
/// ([`ChainCursor::link`]).
#[derive(Debug)]
pub struct Verified<'a> {
    event: &'a Event,
    body: EventBody,
}

impl<'a> Verified<'a> {
    /// The event.
    pub fn event(&self) -> &'a Event {
        self.event
    }

    /// Its parsed body.
    pub fn body(&self) -> &EventBody {
        &self.body
    }
}

/// Where a device's chain stands: the last seq and its hash. The device
/// appends its own events at it; the office accepts a device's events at
/// it. One definition of "continues the chain" for both.
///
/// ```
/// use chrono::Utc;
/// use handover_core::event::*;
/// use handover_core::keys::SigningKey;
/// let key = SigningKey::generate().unwrap();
/// let mut device = ChainCursor::genesis();
/// let body = EventBody {
///     device_id: key.public_key().device_id(),
///     seq: device.next_seq(),
///     time: Utc::now(),
///     counter: 1,
///     clock_suspect: false,
///     kind: EventKind::ManifestImported { manifest_id: "m1".into(), revision: 1, items: 0 },
///     at: None,
/// };
/// let event = device.append(&body, &key).unwrap();
/// let mut office = ChainCursor::genesis();
/// assert_eq!(office.accept(&event, &key.public_key()).unwrap(), body);
/// assert_eq!(office, device);
/// // The same event cannot be accepted twice.
/// assert!(office.accept(&event, &key.public_key()).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainCursor {
    seq: u64,
    hash: [u8; 32],
}

impl ChainCursor {
    /// Before the first event.
    pub fn genesis() -> ChainCursor {
        ChainCursor {
            seq: 0,
            hash: GENESIS,
        }
    }

    /// After the event `seq` whose hash is `hash`.
    pub fn at(seq: u64, hash: [u8; 32]) -> ChainCursor {
        ChainCursor { seq, hash }
    }

    /// The last seq (0 before the first event).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The hash of the last event ([`GENESIS`] before the first).
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    /// The seq the next event must carry.
    pub fn next_seq(&self) -> u64 {
        self.seq.saturating_add(1)
    }

    /// Check that `event` is the next event of the chain (seq, prev hash),
    /// that its hash matches its body and that `device_key` signed it; then
    /// move past it and return its body.
    pub fn accept(&mut self, event: &Event, device_key: &PublicKey) -> Result<EventBody> {
        self.check_link(event)?;
        let body = event.verify(device_key)?;
        self.advance(event);
        Ok(body)
    }

    /// [`accept`](Self::accept) for an event whose hash, signature and body
    /// were already checked by [`Event::verify`] (the office verifies a
    /// batch's signatures before it takes its writer lock): only its place
    /// in the chain is checked here.
    pub fn link(&mut self, verified: &Verified<'_>) -> Result<()> {
        self.check_link(verified.event)?;
        self.advance(verified.event);
        Ok(())
    }

    fn check_link(&self, event: &Event) -> Result<()> {
        if event.seq != self.next_seq() {
            return Err(Error::ChainBroken("seq is not contiguous"));
        }
        if event.prev_hash != self.hash {
            return Err(Error::ChainBroken("prev_hash does not continue the chain"));
        }
        Ok(())
    }

    fn advance(&mut self, event: &Event) {
        self.seq = event.seq;
        self.hash = event.hash;
    }

    /// Seal `body`, which must carry the next seq, as the next event, signed
    /// by `key`; then move past it.
    pub fn append(&mut self, body: &EventBody, key: &SigningKey) -> Result<Event> {
        if body.seq != self.next_seq() {
            return Err(Error::ChainBroken("seq is not contiguous"));
        }
        let event = Event::create(self.hash, body, key)?;
        self.seq = event.seq;
        self.hash = event.hash;
        Ok(event)
    }
}

/// Verify a run of events: each signed by `device_key`, seqs contiguous from
/// `first_seq`, each chained onto the one before, the first onto `prev_hash`.
pub fn verify_chain(
    events: &[Event],
    first_seq: u64,
    prev_hash: [u8; 32],
    device_key: &PublicKey,
) -> Result<Vec<EventBody>> {
    let mut cursor = ChainCursor::at(first_seq.saturating_sub(1), prev_hash);
    if first_seq == 0 {
        return Err(Error::ChainBroken("seq starts at 1"));
    }
    events
        .iter()
        .map(|e| cursor.accept(e, device_key))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(seq: u64, device_id: &str) -> EventBody {
        EventBody {
            device_id: device_id.into(),
            seq,
            time: DateTime::from_timestamp(1_800_000_000 + seq as i64, 0).unwrap(),
            counter: seq as i64,
            clock_suspect: false,
            kind: EventKind::Exception {
                manifest_id: "m".into(),
                reference: "R".into(),
                reason: ExceptionReason::NotHome,
            },
            at: None,
        }
    }

    fn chain(n: u64, key: &SigningKey) -> Vec<Event> {
        let id = key.public_key().device_id();
        let mut prev = GENESIS;
        (1..=n)
            .map(|s| {
                let e = Event::create(prev, &body(s, &id), key).unwrap();
                prev = e.hash;
                e
            })
            .collect()
    }

    #[test]
    fn chain_verifies_and_detects_every_bit_flip_in_bodies() {
        let key = SigningKey::generate().unwrap();
        let events = chain(3, &key);
        verify_chain(&events, 1, GENESIS, &key.public_key()).unwrap();
        for i in 0..events[1].body.len() {
            let mut t = events.clone();
            t[1].body[i] ^= 0x01;
            assert!(verify_chain(&t, 1, GENESIS, &key.public_key()).is_err());
        }
        let mut t = events.clone();
        t[2].signature[5] ^= 0x80;
        assert!(verify_chain(&t, 1, GENESIS, &key.public_key()).is_err());
    }

    #[test]
    fn reordering_dropping_and_foreign_keys_are_refused() {
        let key = SigningKey::generate().unwrap();
        let events = chain(3, &key);
        let pk = key.public_key();
        assert!(verify_chain(&[events[0].clone(), events[2].clone()], 1, GENESIS, &pk).is_err());
        assert!(verify_chain(&[events[1].clone(), events[0].clone()], 1, GENESIS, &pk).is_err());
        assert!(verify_chain(&events[1..], 2, events[0].hash, &pk).is_ok());
        let other = SigningKey::generate().unwrap();
        assert!(verify_chain(&events, 1, GENESIS, &other.public_key()).is_err());
    }

    #[test]
    fn event_json_keeps_body_bytes() {
        let key = SigningKey::generate().unwrap();
        let e = &chain(1, &key)[0];
        let json = serde_json::to_string(e).unwrap();
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, e);
        back.verify(&key.public_key()).unwrap();
    }

    #[test]
    fn handed_over_debug_redacts_code() {
        let k = EventKind::HandedOver {
            manifest_id: "m".into(),
            revision: 1,
            reference: "R".into(),
            code_version: 1,
            code: Code::parse("987654", 6).unwrap(),
        };
        assert!(!format!("{k:?}").contains("987654"));
        assert!(serde_json::to_string(&k).unwrap().contains("987654"));
    }
}
