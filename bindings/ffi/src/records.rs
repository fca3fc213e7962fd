//! The records and enums the device returns: its identity, items, events,
//! verify outcomes, imports, payments and acks.

use handover_core::codes::Programme;
use handover_core::device::{self, ItemState};
use handover_core::event::{self, ExceptionReason};
use handover_core::manifest::{ItemDetails, PostService};

use crate::*;

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

impl From<handover_core::device::AckSummary> for AckResult {
    fn from(s: handover_core::device::AckSummary) -> Self {
        AckResult {
            through_seq: signed(s.through_seq),
            newly_acked: signed(s.newly_acked),
            verified: signed(s.verified),
            flagged: signed(s.flagged),
        }
    }
}
