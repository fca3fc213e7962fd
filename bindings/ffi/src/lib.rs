//! # handover-ffi
//!
//! uniffi bindings of [`handover_core`] for Android: a thin adapter that
//! converts types and errors and holds no logic of its own. Kotlin is
//! generated from this library (library mode) by the `uniffi-bindgen` crate;
//! the idiomatic Kotlin facade lives in `android/`.
//!
//! | file | concern |
//! |---|---|
//! | `lib.rs` | the `HandoverDevice` object and the records it returns |
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

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use handover_core::api::EnrolToken;
use handover_core::codes::Programme;
use handover_core::device::{self, Device, ItemState};
use handover_core::event::{self, ExceptionReason, PaymentMethod};
use handover_core::manifest::{ItemDetails, PostService};

mod error;
mod key_wrapper;

pub use error::HandoverError;
pub use key_wrapper::{KeyWrapError, KeyWrapper};

uniffi::setup_scaffolding!();

type Result<T> = std::result::Result<T, HandoverError>;

fn time(ms: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms).ok_or(HandoverError::InvalidInput {
        reason: "time out of range".into(),
    })
}

fn out_of_range(what: &str) -> HandoverError {
    HandoverError::InvalidInput {
        reason: format!("{what} out of range"),
    }
}

/// Events per batch: 1 or more.
fn batch_size(max: i32) -> Result<u64> {
    u64::try_from(max)
        .ok()
        .filter(|m| *m > 0)
        .ok_or_else(|| out_of_range("batch size"))
}

/// A count or number as Kotlin's `Long`.
fn signed(v: u64) -> i64 {
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

/// Who this device is.
#[derive(Debug, Clone, uniffi::Record)]
pub struct DeviceIdentity {
    /// Short hash of the public key.
    pub device_id: String,
    /// The Ed25519 public key, hex, to enrol at the office.
    pub public_key_hex: String,
}

/// A postal article's details.
#[derive(Debug, Clone, uniffi::Record)]
pub struct PostInfo {
    /// Registered, speed post or parcel.
    pub service: PostService,
    /// Addressee.
    pub addressee: Sensitive,
    /// Address.
    pub address: Sensitive,
    /// Last digits of the mobile the code went to.
    pub mobile_last_digits: Sensitive,
    /// Cash on delivery, paise, if any.
    pub cod_amount_paise: Option<i64>,
}

/// A vaccination appointment's details.
#[derive(Debug, Clone, uniffi::Record)]
pub struct VaccinationInfo {
    /// Beneficiary reference.
    pub beneficiary_ref: Sensitive,
    /// Name.
    pub name: Sensitive,
    /// Year of birth.
    pub year_of_birth: i32,
    /// Vaccine.
    pub vaccine: String,
    /// Dose number.
    pub dose: i32,
    /// Slot.
    pub slot: String,
}

/// An item as the UI shows it.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Item {
    /// Article number or appointment id.
    pub reference: String,
    /// Manifest holding it.
    pub manifest_id: String,
    /// Programme.
    pub programme: Programme,
    /// State.
    pub state: ItemState,
    /// Set when `state` is `Exception`.
    pub exception_reason: Option<ExceptionReason>,
    /// Wrong codes still allowed.
    pub attempts_left: i32,
    /// Digits the code has (for the keypad).
    pub digits: i32,
    /// Whether cash on delivery was recorded as paid.
    pub paid: bool,
    /// Window start, epoch ms.
    pub valid_from_ms: i64,
    /// Window end, epoch ms.
    pub valid_until_ms: i64,
    /// Set for post items.
    pub post: Option<PostInfo>,
    /// Set for vaccination items.
    pub vaccination: Option<VaccinationInfo>,
}

impl From<device::ItemView> for Item {
    fn from(v: device::ItemView) -> Self {
        let (post, vaccination) = match v.details {
            ItemDetails::Post(p) => (
                Some(PostInfo {
                    service: p.service,
                    addressee: Sensitive(p.addressee),
                    address: Sensitive(p.address),
                    mobile_last_digits: Sensitive(p.mobile_last_digits),
                    cod_amount_paise: p.cod.map(|c| signed(c.amount_paise)),
                }),
                None,
            ),
            ItemDetails::Vaccination(x) => (
                None,
                Some(VaccinationInfo {
                    beneficiary_ref: Sensitive(x.beneficiary_ref),
                    name: Sensitive(x.name),
                    year_of_birth: i32::from(x.year_of_birth),
                    vaccine: x.vaccine,
                    dose: i32::from(x.dose),
                    slot: x.slot,
                }),
            ),
        };
        Item {
            reference: v.reference,
            manifest_id: v.manifest_id,
            programme: v.programme,
            state: v.state,
            exception_reason: v.reason,
            attempts_left: i32::try_from(v.attempts_left).unwrap_or(i32::MAX),
            digits: i32::from(v.digits),
            paid: v.paid,
            valid_from_ms: v.valid_from.timestamp_millis(),
            valid_until_ms: v.valid_until.timestamp_millis(),
            post,
            vaccination,
        }
    }
}

/// A signed event: the reference to what was recorded.
#[derive(Debug, Clone, uniffi::Record)]
pub struct EventRecord {
    /// Position in the outbox.
    pub seq: i64,
    /// Chain hash, hex.
    pub hash_hex: String,
    /// Device signature of the hash, hex.
    pub signature_hex: String,
    /// The signed body (JSON): a handover's holds the code entered.
    pub body_json: Sensitive,
}

impl From<event::Event> for EventRecord {
    fn from(e: event::Event) -> Self {
        EventRecord {
            seq: signed(e.seq),
            hash_hex: hex::encode(e.hash),
            signature_hex: hex::encode(e.signature),
            body_json: Sensitive(String::from_utf8_lossy(&e.body).into_owned()),
        }
    }
}

/// The answer to a code entered at the door.
#[derive(Debug, Clone, uniffi::Enum)]
pub enum VerifyResult {
    /// Right code: hand over. The receipt is on disk already.
    Accepted {
        /// The signed handover event (the recipient's receipt).
        receipt: EventRecord,
    },
    /// Wrong code.
    Refused {
        /// Wrong codes still allowed.
        attempts_left: i32,
    },
    /// No more attempts.
    Locked,
    /// Already handed over.
    AlreadyDone,
    /// The manifest's window has not opened.
    NotYetValid,
    /// The manifest's window has closed.
    Expired,
    /// No such item.
    UnknownItem,
    /// Wrong length or not digits; no attempt counted.
    Malformed {
        /// Digits expected.
        digits: i32,
    },
}

impl From<device::VerifyOutcome> for VerifyResult {
    fn from(o: device::VerifyOutcome) -> Self {
        use device::VerifyOutcome as O;
        match o {
            O::Accepted { receipt } => VerifyResult::Accepted {
                receipt: receipt.event.into(),
            },
            O::Refused { attempts_left } => VerifyResult::Refused {
                attempts_left: i32::try_from(attempts_left).unwrap_or(i32::MAX),
            },
            O::Locked => VerifyResult::Locked,
            O::AlreadyDone => VerifyResult::AlreadyDone,
            O::NotYetValid => VerifyResult::NotYetValid,
            O::Expired => VerifyResult::Expired,
            O::Malformed { digits } => VerifyResult::Malformed {
                digits: i32::from(digits),
            },
            _ => VerifyResult::UnknownItem,
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ImportResult {
    /// Manifest id.
    pub manifest_id: String,
    /// Revision held now.
    pub revision: i64,
    /// Items in it (0 when unchanged).
    pub items: i64,
    /// False when the identical manifest was already held.
    pub changed: bool,
}

/// How cash on delivery was paid.
#[derive(Debug, Clone, uniffi::Enum)]
pub enum Payment {
    /// Cash.
    Cash,
    /// UPI, with the transaction reference (UTR).
    Upi {
        /// The UTR.
        txn_ref: String,
    },
}

/// A UPI payment request to show as a QR code.
#[derive(Debug, Clone, uniffi::Record)]
pub struct UpiPayment {
    /// The `upi://pay` deep link.
    pub uri: String,
    /// Amount, paise.
    pub amount_paise: i64,
    /// Transaction reference of this request.
    pub txn_ref: String,
    /// QR modules per side.
    pub qr_width: i32,
    /// `qr_width²` modules, row-major, true = dark.
    pub qr_modules: Vec<bool>,
}

/// What applying an ack did.
#[derive(Debug, Clone, uniffi::Record)]
pub struct AckResult {
    /// Acknowledged through this seq.
    pub through_seq: i64,
    /// Newly acknowledged events.
    pub newly_acked: i64,
    /// Handovers the office verified.
    pub verified: i64,
    /// Events the office flagged.
    pub flagged: i64,
}

/// One header of a request.
#[derive(Debug, Clone, uniffi::Record)]
pub struct HttpHeader {
    /// Name (lowercase).
    pub name: String,
    /// Value.
    pub value: String,
}

/// A request for the app's HTTP client to send to the office: POST `path`
/// (under the office's base URL) with these headers and body.
#[derive(Clone, uniffi::Record)]
pub struct OfficeRequest {
    /// `POST` (or `GET`).
    pub method: String,
    /// e.g. `/v1/batches`.
    pub path: String,
    /// Headers, the signature's among them.
    pub headers: Vec<HttpHeader>,
    /// The body (a batch holds entered codes: never log it).
    pub body: Vec<u8>,
}

impl std::fmt::Debug for OfficeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfficeRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl From<device::HttpRequest> for OfficeRequest {
    fn from(r: device::HttpRequest) -> Self {
        OfficeRequest {
            method: r.method.to_owned(),
            path: r.path.to_owned(),
            headers: r
                .headers
                .into_iter()
                .map(|(name, value)| HttpHeader {
                    name: name.to_owned(),
                    value,
                })
                .collect(),
            body: r.body,
        }
    }
}

/// Who the device was enrolled as.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Enrolment {
    /// The device id at the office.
    pub device_id: String,
    /// Who carries it.
    pub assignee: Sensitive,
    /// The office.
    pub office_id: String,
    /// The office key now pinned, hex.
    pub office_key_hex: String,
}

/// What a sync did.
#[derive(Debug, Clone, uniffi::Record)]
pub struct SyncProgress {
    /// Manifest revisions imported.
    pub manifests_imported: i64,
    /// Manifests offered and refused.
    pub manifests_refused: i64,
    /// Events the office acknowledged in this sync.
    pub events_sent: i64,
    /// The office holds everything up to this seq.
    pub acknowledged_through: i64,
    /// Events flagged by the office.
    pub flagged: i64,
    /// Events still waiting.
    pub pending: i64,
}

/// One sync with the office, driven by the app's HTTP client: ask for the
/// next request, send it, hand back the answer; until there is no request.
#[derive(uniffi::Object)]
pub struct SyncSession {
    device: Arc<HandoverDevice>,
    inner: std::sync::Mutex<device::SyncSession>,
}

#[uniffi::export]
impl SyncSession {
    /// The next request to send, or null when the sync is done. Asking
    /// again without an answer (a network failure) signs the same step anew.
    pub fn next_request(&self, now_ms: i64) -> Result<Option<OfficeRequest>> {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Ok(s.next_request(&self.device.inner, time(now_ms)?)?
            .map(OfficeRequest::from))
    }

    /// The office's answer to the last request.
    pub fn handle_response(&self, status: i32, body: Vec<u8>, now_ms: i64) -> Result<()> {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let response = device::HttpResponse {
            status: u16::try_from(status).map_err(|_| HandoverError::InvalidInput {
                reason: "HTTP status out of range".into(),
            })?,
            body,
        };
        Ok(s.handle_response(&self.device.inner, &response, time(now_ms)?)?)
    }

    /// What the sync has done so far.
    pub fn progress(&self) -> SyncProgress {
        let s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let p = s.summary();
        SyncProgress {
            manifests_imported: signed(p.manifests_imported),
            manifests_refused: signed(p.manifests_refused),
            events_sent: signed(p.events_sent),
            acknowledged_through: signed(p.acknowledged_through),
            flagged: signed(p.flagged),
            pending: signed(p.pending),
        }
    }
}

/// The device store, for one app process. Calls are serialised inside;
/// call from a background dispatcher (they touch the disk).
#[derive(uniffi::Object)]
pub struct HandoverDevice {
    inner: Device,
}

#[uniffi::export]
impl HandoverDevice {
    /// Open (creating or migrating) the database at `path`. A file that is
    /// not a usable database is reported and left untouched.
    #[uniffi::constructor]
    pub fn open(path: String) -> Result<Arc<Self>> {
        Ok(Arc::new(HandoverDevice {
            inner: Device::open(path)?,
        }))
    }

    /// Open with the device key wrapped at rest by `wrapper` (on Android,
    /// an AES-256-GCM key in the Android Keystore): the database never
    /// holds the key in the clear. A store made by [`open`](Self::open) has
    /// its key wrapped on the first such open. A key the wrapper cannot
    /// unwrap is `KeyUnavailable`, and the database is left untouched.
    #[uniffi::constructor]
    pub fn open_wrapped(path: String, wrapper: Arc<dyn KeyWrapper>) -> Result<Arc<Self>> {
        let wrap = key_wrapper::Adapter(wrapper);
        Ok(Arc::new(HandoverDevice {
            inner: Device::open_wrapped(path, device::DeviceOptions::default(), &wrap)?,
        }))
    }

    /// This device's id and public key.
    pub fn identity(&self) -> DeviceIdentity {
        let id = self.inner.identity();
        DeviceIdentity {
            device_id: id.device_id,
            public_key_hex: id.public_key.to_hex(),
        }
    }

    /// Pin an office signing key (hex).
    pub fn trust_office_key(&self, public_key_hex: String, now_ms: i64) -> Result<()> {
        Ok(self
            .inner
            .trust_office_key(public_key_hex.parse()?, time(now_ms)?)?)
    }

    /// Import a signed manifest.
    pub fn import_manifest(&self, manifest: Vec<u8>, now_ms: i64) -> Result<ImportResult> {
        Ok(
            match self.inner.import_manifest(&manifest, time(now_ms)?)? {
                device::ImportOutcome::Imported {
                    manifest_id,
                    revision,
                    items,
                    ..
                } => ImportResult {
                    manifest_id,
                    revision: i64::from(revision),
                    items: i64::from(items),
                    changed: true,
                },
                device::ImportOutcome::Unchanged {
                    manifest_id,
                    revision,
                } => ImportResult {
                    manifest_id,
                    revision: i64::from(revision),
                    items: 0,
                    changed: false,
                },
                _ => {
                    return Err(HandoverError::Storage {
                        reason: "unexpected import outcome".into(),
                    })
                }
            },
        )
    }

    /// The live items.
    pub fn items(&self) -> Result<Vec<Item>> {
        Ok(self.inner.items()?.into_iter().map(Item::from).collect())
    }

    /// One item by reference.
    pub fn item(&self, reference: String) -> Result<Option<Item>> {
        Ok(self.inner.item(&reference)?.map(Item::from))
    }

    /// The receipt of an item that was handed over, as `verify` returned
    /// it: to show it again after the app was closed. Null if the item was
    /// not handed over (or its event was purged).
    pub fn receipt(&self, reference: String) -> Result<Option<EventRecord>> {
        Ok(self.inner.receipt(&reference)?.map(|r| r.event.into()))
    }

    /// Check a code at the door; committed before it returns.
    pub fn verify(&self, reference: String, code: String, now_ms: i64) -> Result<VerifyResult> {
        Ok(self.inner.verify(&reference, &code, time(now_ms)?)?.into())
    }

    /// Record why an item was not handed over.
    pub fn record_exception(
        &self,
        reference: String,
        reason: ExceptionReason,
        now_ms: i64,
    ) -> Result<EventRecord> {
        Ok(self
            .inner
            .record_exception(&reference, reason, time(now_ms)?)?
            .into())
    }

    /// Record a cash-on-delivery payment.
    pub fn record_payment(
        &self,
        reference: String,
        payment: Payment,
        now_ms: i64,
    ) -> Result<EventRecord> {
        let method = match payment {
            Payment::Cash => PaymentMethod::Cash,
            Payment::Upi { txn_ref } => PaymentMethod::Upi { txn_ref },
        };
        Ok(self
            .inner
            .record_payment(&reference, method, time(now_ms)?)?
            .into())
    }

    /// A fresh UPI request for an item's cash on delivery.
    pub fn upi_request(&self, reference: String, now_ms: i64) -> Result<UpiPayment> {
        let r = self.inner.upi_request(&reference, time(now_ms)?)?;
        let qr = r.qr_modules()?;
        Ok(UpiPayment {
            uri: r.uri(),
            amount_paise: signed(r.amount_paise),
            txn_ref: r.txn_ref,
            qr_width: i32::try_from(qr.width).map_err(|_| out_of_range("QR width"))?,
            qr_modules: qr.modules,
        })
    }

    /// The next batch (JSON bytes) of at most `max` (1 or more)
    /// unacknowledged events.
    pub fn export_batch(&self, max: i32) -> Result<Vec<u8>> {
        let max = batch_size(max)?;
        Ok(self.inner.export_batch(max)?.to_bytes()?)
    }

    /// Apply the office's signed ack.
    pub fn apply_ack(&self, ack: Vec<u8>, now_ms: i64) -> Result<AckResult> {
        let s = self.inner.apply_ack(&ack, time(now_ms)?)?;
        Ok(AckResult {
            through_seq: signed(s.through_seq),
            newly_acked: signed(s.newly_acked),
            verified: signed(s.verified),
            flagged: signed(s.flagged),
        })
    }

    /// The enrolment request for a token from `handover office enrol-token`.
    pub fn enrol_request(&self, token: String, now_ms: i64) -> Result<OfficeRequest> {
        let token: EnrolToken = token.parse()?;
        Ok(self.inner.enrol_request(&token, time(now_ms)?)?.into())
    }

    /// Check the office's answer to the enrolment request (the office key
    /// must be the one the token binds) and pin the key.
    pub fn finish_enrolment(
        &self,
        token: String,
        status: i32,
        body: Vec<u8>,
        now_ms: i64,
    ) -> Result<Enrolment> {
        let token: EnrolToken = token.parse()?;
        let response = device::HttpResponse {
            status: u16::try_from(status).map_err(|_| HandoverError::InvalidInput {
                reason: "HTTP status out of range".into(),
            })?,
            body,
        };
        let e = self
            .inner
            .finish_enrolment(&token, &response, time(now_ms)?)?;
        Ok(Enrolment {
            device_id: e.device_id,
            assignee: Sensitive(e.assignee),
            office_id: e.office_id,
            office_key_hex: e.office_key.to_hex(),
        })
    }

    /// A sync with the office, at most `max_events` (1 or more) per batch.
    pub fn sync_session(self: Arc<Self>, max_events: i32) -> Result<Arc<SyncSession>> {
        let max = batch_size(max_events)?;
        Ok(Arc::new(SyncSession {
            inner: std::sync::Mutex::new(device::SyncSession::new(max)),
            device: self,
        }))
    }

    /// Events not yet acknowledged.
    pub fn pending_count(&self) -> Result<i64> {
        Ok(signed(self.inner.pending_count()?))
    }

    /// Remove acknowledged events older than `retention_days`, and reduce
    /// finished manifests to tombstones; returns how many of each went.
    pub fn purge(&self, retention_days: i32, now_ms: i64) -> Result<i64> {
        if retention_days < 0 {
            return Err(out_of_range("retention"));
        }
        let retention = Duration::try_days(i64::from(retention_days))
            .ok_or_else(|| out_of_range("retention"))?;
        let s = self.inner.purge(retention, time(now_ms)?)?;
        Ok(signed(s.events + s.manifests))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_identity_and_errors_cross_the_adapter() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let path = dir.join("d.db").to_string_lossy().into_owned();
        let d = HandoverDevice::open(path.clone()).unwrap();
        let id = d.identity();
        assert_eq!(id.public_key_hex.len(), 64);
        assert!(matches!(
            d.import_manifest(vec![1, 2, 3], 0),
            Err(HandoverError::Refused { .. })
        ));
        assert!(matches!(
            d.trust_office_key("zz".into(), 0),
            Err(HandoverError::InvalidInput { .. })
        ));
        assert!(matches!(
            d.record_exception("X".into(), ExceptionReason::NotHome, 0),
            Err(HandoverError::UnknownItem)
        ));
        assert!(matches!(
            d.verify("X".into(), "1234".into(), 0),
            Ok(VerifyResult::UnknownItem)
        ));
        assert!(matches!(
            d.verify("X".into(), "1".into(), i64::MAX),
            Err(HandoverError::InvalidInput { .. })
        ));
        // Extreme times and retentions are typed errors, never panics (a
        // panic would reach Kotlin as an undocumented InternalException).
        for now_ms in [i64::MIN, i64::MAX, -1, 0, 8_210_266_876_799_999] {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                (
                    d.purge(i32::MAX, now_ms).is_err(),
                    d.purge(-1, now_ms).is_err(),
                    d.export_batch(-1).is_err(),
                    d.verify("X".into(), "1234".into(), now_ms),
                )
            }));
            assert!(r.is_ok(), "panicked at now_ms {now_ms}");
        }
        for (what, r) in [
            ("purge(-1)", d.purge(-1, 0)),
            ("purge(MAX)", d.purge(i32::MAX, 0)),
            ("export_batch(0)", d.export_batch(0).map(|_| 0)),
            ("export_batch(-5)", d.export_batch(-5).map(|_| 0)),
        ] {
            assert!(
                matches!(r, Err(HandoverError::InvalidInput { .. })),
                "{what}: {r:?}"
            );
        }
        drop(d);
        std::fs::write(dir.join("junk.db"), b"not a database, not at all, no").unwrap();
        let junk = dir.join("junk.db").to_string_lossy().into_owned();
        assert!(matches!(
            HandoverDevice::open(junk),
            Err(HandoverError::Storage { .. })
        ));
    }
}
