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
//!
//! Times cross the boundary as milliseconds since the Unix epoch (UTC),
//! which is what `System.currentTimeMillis()` gives; byte blobs (manifests,
//! batches, acks) as `ByteArray`.

#![deny(missing_docs)]

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use handover_core::api::EnrolToken;
use handover_core::codes::Programme;
use handover_core::device::{self, Device, ItemState};
use handover_core::event::{self, ExceptionReason, PaymentMethod};
use handover_core::manifest::{ItemDetails, PostService};

mod error;

pub use error::HandoverError;

uniffi::setup_scaffolding!();

type Result<T> = std::result::Result<T, HandoverError>;

fn time(ms: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms).ok_or(HandoverError::InvalidInput {
        reason: "time out of range".into(),
    })
}

/// Who this device is.
#[derive(Debug, Clone, uniffi::Record)]
pub struct DeviceIdentity {
    /// Short hash of the public key.
    pub device_id: String,
    /// The Ed25519 public key, hex, to enrol at the office.
    pub public_key_hex: String,
}

/// A postal article's details. (Rust `Debug` leaves out personal data.)
#[derive(Clone, uniffi::Record)]
pub struct PostInfo {
    /// Registered, speed post or parcel.
    pub service: PostService,
    /// Addressee.
    pub addressee: String,
    /// Address.
    pub address: String,
    /// Last digits of the mobile the code went to.
    pub mobile_last_digits: String,
    /// Cash on delivery, paise, if any.
    pub cod_amount_paise: Option<u64>,
}

/// A vaccination appointment's details. (Rust `Debug` leaves out personal data.)
#[derive(Clone, uniffi::Record)]
pub struct VaccinationInfo {
    /// Beneficiary reference.
    pub beneficiary_ref: String,
    /// Name.
    pub name: String,
    /// Year of birth.
    pub year_of_birth: u16,
    /// Vaccine.
    pub vaccine: String,
    /// Dose number.
    pub dose: u8,
    /// Slot.
    pub slot: String,
}

impl std::fmt::Debug for PostInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostInfo")
            .field("service", &self.service)
            .field("cod_amount_paise", &self.cod_amount_paise)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for VaccinationInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaccinationInfo")
            .field("vaccine", &self.vaccine)
            .field("dose", &self.dose)
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
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
    pub attempts_left: u32,
    /// Digits the code has (for the keypad).
    pub digits: u8,
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
                    addressee: p.addressee,
                    address: p.address,
                    mobile_last_digits: p.mobile_last_digits,
                    cod_amount_paise: p.cod.map(|c| c.amount_paise),
                }),
                None,
            ),
            ItemDetails::Vaccination(x) => (
                None,
                Some(VaccinationInfo {
                    beneficiary_ref: x.beneficiary_ref,
                    name: x.name,
                    year_of_birth: x.year_of_birth,
                    vaccine: x.vaccine,
                    dose: x.dose,
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
            attempts_left: v.attempts_left,
            digits: v.digits,
            paid: v.paid,
            valid_from_ms: v.valid_from.timestamp_millis(),
            valid_until_ms: v.valid_until.timestamp_millis(),
            post,
            vaccination,
        }
    }
}

/// A signed event: the reference to what was recorded. (Rust `Debug` leaves
/// out the body: a handover's body holds the code.)
#[derive(Clone, uniffi::Record)]
pub struct EventRecord {
    /// Position in the outbox.
    pub seq: u64,
    /// Chain hash, hex.
    pub hash_hex: String,
    /// Device signature of the hash, hex.
    pub signature_hex: String,
    /// The signed body (JSON).
    pub body_json: String,
}

impl std::fmt::Debug for EventRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRecord")
            .field("seq", &self.seq)
            .field("hash_hex", &self.hash_hex)
            .finish_non_exhaustive()
    }
}

impl From<event::Event> for EventRecord {
    fn from(e: event::Event) -> Self {
        EventRecord {
            seq: e.seq,
            hash_hex: hex::encode(e.hash),
            signature_hex: hex::encode(e.signature),
            body_json: String::from_utf8_lossy(&e.body).into_owned(),
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
        attempts_left: u32,
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
        digits: u8,
    },
}

impl From<device::VerifyOutcome> for VerifyResult {
    fn from(o: device::VerifyOutcome) -> Self {
        use device::VerifyOutcome as O;
        match o {
            O::Accepted { receipt } => VerifyResult::Accepted {
                receipt: receipt.event.into(),
            },
            O::Refused { attempts_left } => VerifyResult::Refused { attempts_left },
            O::Locked => VerifyResult::Locked,
            O::AlreadyDone => VerifyResult::AlreadyDone,
            O::NotYetValid => VerifyResult::NotYetValid,
            O::Expired => VerifyResult::Expired,
            O::Malformed { digits } => VerifyResult::Malformed { digits },
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
    pub revision: u32,
    /// Items in it (0 when unchanged).
    pub items: u32,
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
    pub amount_paise: u64,
    /// Transaction reference of this request.
    pub txn_ref: String,
    /// QR modules per side.
    pub qr_width: u32,
    /// `qr_width²` modules, row-major, true = dark.
    pub qr_modules: Vec<bool>,
}

/// What applying an ack did.
#[derive(Debug, Clone, uniffi::Record)]
pub struct AckResult {
    /// Acknowledged through this seq.
    pub through_seq: u64,
    /// Newly acknowledged events.
    pub newly_acked: u64,
    /// Handovers the office verified.
    pub verified: u64,
    /// Events the office flagged.
    pub flagged: u64,
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
    pub assignee: String,
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

fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
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
                    revision,
                    items,
                    changed: true,
                },
                device::ImportOutcome::Unchanged {
                    manifest_id,
                    revision,
                } => ImportResult {
                    manifest_id,
                    revision,
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
            amount_paise: r.amount_paise,
            txn_ref: r.txn_ref,
            qr_width: qr.width as u32,
            qr_modules: qr.modules,
        })
    }

    /// The next batch (JSON bytes) of at most `max` unacknowledged events.
    pub fn export_batch(&self, max: u32) -> Result<Vec<u8>> {
        Ok(self.inner.export_batch(u64::from(max))?.to_bytes()?)
    }

    /// Apply the office's signed ack.
    pub fn apply_ack(&self, ack: Vec<u8>, now_ms: i64) -> Result<AckResult> {
        let s = self.inner.apply_ack(&ack, time(now_ms)?)?;
        Ok(AckResult {
            through_seq: s.through_seq,
            newly_acked: s.newly_acked,
            verified: s.verified,
            flagged: s.flagged,
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
            assignee: e.assignee,
            office_id: e.office_id,
            office_key_hex: e.office_key.to_hex(),
        })
    }

    /// A sync with the office, at most `max_events` per batch.
    pub fn sync_session(self: Arc<Self>, max_events: i32) -> Arc<SyncSession> {
        Arc::new(SyncSession {
            inner: std::sync::Mutex::new(device::SyncSession::new(
                u64::try_from(max_events.max(1)).unwrap_or(1),
            )),
            device: self,
        })
    }

    /// Events not yet acknowledged.
    pub fn pending_count(&self) -> Result<u64> {
        Ok(self.inner.pending_count()?)
    }

    /// Remove acknowledged events older than `retention_days`, and reduce
    /// finished manifests to tombstones; returns how many of each went.
    pub fn purge(&self, retention_days: u32, now_ms: i64) -> Result<u64> {
        let retention =
            Duration::try_days(i64::from(retention_days)).ok_or(HandoverError::InvalidInput {
                reason: "retention out of range".into(),
            })?;
        let s = self.inner.purge(retention, time(now_ms)?)?;
        Ok(s.events + s.manifests)
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
                    d.purge(u32::MAX, now_ms).is_err(),
                    d.verify("X".into(), "1234".into(), now_ms),
                )
            }));
            assert!(r.is_ok(), "panicked at now_ms {now_ms}");
        }
        assert!(matches!(
            d.purge(u32::MAX, 0),
            Err(HandoverError::InvalidInput { .. })
        ));
        drop(d);
        std::fs::write(dir.join("junk.db"), b"not a database, not at all, no").unwrap();
        let junk = dir.join("junk.db").to_string_lossy().into_owned();
        assert!(matches!(
            HandoverDevice::open(junk),
            Err(HandoverError::Storage { .. })
        ));
    }
}
