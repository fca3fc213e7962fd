//! Manifests: the office's signed list of a device's items for one working day.
//!
//! The payload is JSON ([`Manifest`]); the office seals it in an
//! [`envelope`](crate::envelope) and the device opens it with
//! [`Manifest::open`], which checks the signature against the pinned office
//! keys **before** the JSON is parsed, then validates every field
//! ([`Manifest::validate`]). Checking the device id, validity window and
//! revision against the device's state is the device store's job.
//!
//! Items carry only what the doorstep needs: the last digits of a mobile
//! number, never the whole of it, and a [`Verifier`], never a code.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use handover_core::codes::{derive_code, CodeKey, Policy, Programme};
//! use handover_core::keys::SigningKey;
//! use handover_core::manifest::*;
//! use handover_core::verifier::Verifier;
//!
//! let office = SigningKey::generate().unwrap();
//! let key = CodeKey::new("k1", [3; 32]);
//! let policy = Policy { digits: 6, tag_bits: 11, iterations: 100, max_attempts: 3 };
//! let reference = "RR287043775IN";
//! let code = derive_code(&key, Programme::Post, reference, 1, 6).unwrap();
//! let t = |h| Utc.with_ymd_and_hms(2026, 11, 23, h, 0, 0).unwrap();
//! let manifest = Manifest {
//!     format: MANIFEST_FORMAT.into(),
//!     manifest_id: "m-2026-11-23-beat7".into(),
//!     revision: 1,
//!     office_id: "PO-110001".into(),
//!     device_id: "0123456789abcdef".into(),
//!     assignee: "Postman 7".into(),
//!     programme: Programme::Post,
//!     code_key_id: key.id().into(),
//!     issued_at: t(6),
//!     valid_from: t(8),
//!     valid_until: t(20),
//!     policies: [("default".to_string(), policy)].into_iter().collect(),
//!     items: vec![Item {
//!         reference: reference.into(),
//!         code_version: 1,
//!         policy: "default".into(),
//!         verifier: Verifier::derive(&key, Programme::Post, reference, 1, &code, &policy).unwrap(),
//!         details: ItemDetails::Post(PostDetails {
//!             service: PostService::Registered,
//!             addressee: "A. Kumar".into(),
//!             address: "12 MG Road".into(),
//!             mobile_last_digits: "4321".into(),
//!             cod: None,
//!         }),
//!     }],
//! };
//! let sealed = manifest.seal(&office).unwrap();
//! let opened = Manifest::open(&sealed, &[office.public_key()]).unwrap();
//! assert_eq!(opened, manifest);
//! ```

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::codes::{check_reference, Policy, Programme};
use crate::envelope::{self, Kind};
use crate::error::{Error, Result};
use crate::keys::{PublicKey, SigningKey};
use crate::rules::{check_id, check_text, limits};
use crate::verifier::Verifier;
use crate::{s10, upi};

/// The `format` every v1 manifest carries.
pub const MANIFEST_FORMAT: &str = "handover/manifest/v1";
/// Most items one manifest may hold.
pub const MAX_ITEMS: usize = 5_000;
/// Most policies one manifest may define.
pub const MAX_POLICIES: usize = 16;

/// A device's list of items for one working day.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// Identifies the beat or session; stable across revisions.
    pub manifest_id: String,
    /// Rises with every re-issue; the device refuses older ones.
    pub revision: u32,
    /// The issuing office.
    pub office_id: String,
    /// The device it is for.
    pub device_id: String,
    /// The postman or vaccinator it is for.
    pub assignee: String,
    /// The programme of every item.
    pub programme: Programme,
    /// Which code key the codes were derived from.
    pub code_key_id: String,
    /// When the office issued it.
    pub issued_at: DateTime<Utc>,
    /// Start of the working window.
    pub valid_from: DateTime<Utc>,
    /// End of the working window.
    pub valid_until: DateTime<Utc>,
    /// Policies by name; items name theirs.
    pub policies: BTreeMap<String, Policy>,
    /// The items.
    pub items: Vec<Item>,
}

/// One article to deliver or one appointment to serve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// Article number (post) or appointment id (vaccination).
    pub reference: String,
    /// Version of the code; starts at 1 and rises on re-issue.
    pub code_version: u32,
    /// Name of the item's policy in [`Manifest::policies`].
    pub policy: String,
    /// The truncated verifier of the code.
    pub verifier: Verifier,
    /// What the doorstep needs to know.
    pub details: ItemDetails,
}

/// Programme-specific details of an item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "programme", rename_all = "snake_case")]
pub enum ItemDetails {
    /// A postal article.
    Post(PostDetails),
    /// A vaccination appointment.
    Vaccination(VaccinationDetails),
}

impl ItemDetails {
    /// The programme of these details.
    pub fn programme(&self) -> Programme {
        match self {
            ItemDetails::Post(_) => Programme::Post,
            ItemDetails::Vaccination(_) => Programme::Vaccination,
        }
    }

    /// The cash-on-delivery request, if any.
    pub fn cod(&self) -> Option<&CashOnDelivery> {
        match self {
            ItemDetails::Post(p) => p.cod.as_ref(),
            ItemDetails::Vaccination(_) => None,
        }
    }
}

/// Postal services handed over against a code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum PostService {
    /// Registered post.
    Registered,
    /// Speed post.
    SpeedPost,
    /// Parcel.
    Parcel,
}

impl std::str::FromStr for PostService {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "registered" => Ok(PostService::Registered),
            "speed_post" => Ok(PostService::SpeedPost),
            "parcel" => Ok(PostService::Parcel),
            _ => Err(Error::invalid(
                "service",
                "expected registered, speed_post or parcel",
            )),
        }
    }
}

/// A postal article. `Debug` leaves out the addressee, address and mobile digits.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostDetails {
    /// Registered, speed post or parcel.
    pub service: PostService,
    /// Whom it is addressed to.
    pub addressee: String,
    /// Where.
    pub address: String,
    /// Last 2 to 4 digits of the mobile number the code went to.
    pub mobile_last_digits: String,
    /// Cash to collect, if any.
    pub cod: Option<CashOnDelivery>,
}

/// Cash to collect on delivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CashOnDelivery {
    /// Amount in paise.
    pub amount_paise: u64,
    /// Payee's UPI id; empty (with an empty name) when the office has not
    /// set up UPI, and the amount is collected in cash only.
    pub payee_upi: String,
    /// Payee's name as shown in the payer's UPI app; empty with `payee_upi`.
    pub payee_name: String,
}

/// A vaccination appointment. `Debug` leaves out the name, year of birth
/// and beneficiary reference.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaccinationDetails {
    /// The beneficiary's reference id.
    pub beneficiary_ref: String,
    /// The beneficiary's name.
    pub name: String,
    /// Year of birth, for the vaccinator's check.
    pub year_of_birth: u16,
    /// Vaccine.
    pub vaccine: String,
    /// Dose number, 1 to 9.
    pub dose: u8,
    /// Slot, e.g. `09:00-11:00`.
    pub slot: String,
}

impl std::fmt::Debug for PostDetails {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostDetails")
            .field("service", &self.service)
            .field("cod", &self.cod)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for VaccinationDetails {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaccinationDetails")
            .field("vaccine", &self.vaccine)
            .field("dose", &self.dose)
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

impl Manifest {
    /// Serialise and seal under the office key.
    pub fn seal(&self, office: &SigningKey) -> Result<Vec<u8>> {
        self.validate()?;
        let payload = serde_json::to_vec(self).map_err(|_| Error::Encoding("manifest to JSON"))?;
        envelope::seal(Kind::Manifest, office, &payload)
    }

    /// Check the envelope against `trusted` office keys, then parse and
    /// validate. Device id, window and revision are checked by the store.
    pub fn open(bytes: &[u8], trusted: &[PublicKey]) -> Result<Manifest> {
        let payload = envelope::open(Kind::Manifest, bytes, trusted)?;
        let manifest: Manifest = serde_json::from_slice(payload)
            .map_err(|_| Error::malformed("manifest", "payload is not a v1 manifest"))?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Validate every field against the protocol's rules.
    pub fn validate(&self) -> Result<()> {
        if self.format != MANIFEST_FORMAT {
            return Err(Error::malformed("manifest", "unknown format"));
        }
        check_id("manifest_id", &self.manifest_id)?;
        check_id("office_id", &self.office_id)?;
        check_id("device_id", &self.device_id)?;
        check_id("code_key_id", &self.code_key_id)?;
        check_text("assignee", &self.assignee, limits::ASSIGNEE)?;
        if self.revision == 0 {
            return Err(Error::invalid("revision", "starts at 1"));
        }
        if self.valid_from >= self.valid_until {
            return Err(Error::invalid(
                "validity",
                "valid_from must be before valid_until",
            ));
        }
        if self.policies.is_empty() || self.policies.len() > MAX_POLICIES {
            return Err(Error::invalid("policies", "1 to 16 policies"));
        }
        for (name, p) in &self.policies {
            check_id("policy name", name)?;
            p.validate()?;
        }
        if self.items.len() > MAX_ITEMS {
            return Err(Error::invalid("items", "more than 5000 items"));
        }
        let mut seen = HashSet::with_capacity(self.items.len());
        for item in &self.items {
            item.validate(self.programme, &self.policies)?;
            if !seen.insert(item.reference.as_str()) {
                return Err(Error::invalid("items", "a reference appears twice"));
            }
        }
        Ok(())
    }
}

impl Item {
    fn validate(&self, programme: Programme, policies: &BTreeMap<String, Policy>) -> Result<()> {
        check_reference(&self.reference)?;
        if self.details.programme() != programme {
            return Err(Error::invalid(
                "item",
                "programme differs from the manifest's",
            ));
        }
        if self.code_version == 0 {
            return Err(Error::invalid("code_version", "starts at 1"));
        }
        let policy = policies.get(&self.policy).ok_or(Error::invalid(
            "item policy",
            "names no policy of the manifest",
        ))?;
        self.verifier.fits(policy)?;
        match &self.details {
            ItemDetails::Post(p) => {
                s10::validate(&self.reference)?;
                check_text("addressee", &p.addressee, limits::ADDRESSEE)?;
                check_text("address", &p.address, limits::ADDRESS)?;
                let m = &p.mobile_last_digits;
                if !(2..=4).contains(&m.len()) || !m.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Error::invalid("mobile_last_digits", "2 to 4 digits"));
                }
                if let Some(cod) = &p.cod {
                    if cod.amount_paise == 0 || cod.amount_paise > upi::MAX_AMOUNT_PAISE {
                        return Err(Error::invalid("cod amount", "1 paisa to 1 crore rupees"));
                    }
                    // No payee at all: the office has not set up UPI, and
                    // the amount is collected in cash.
                    if !(cod.payee_upi.is_empty() && cod.payee_name.is_empty()) {
                        upi::validate_vpa(&cod.payee_upi)?;
                        check_text("payee_name", &cod.payee_name, limits::PAYEE_NAME)?;
                    }
                }
            }
            ItemDetails::Vaccination(v) => {
                check_text(
                    "beneficiary_ref",
                    &v.beneficiary_ref,
                    limits::BENEFICIARY_REF,
                )?;
                check_text("name", &v.name, limits::NAME)?;
                check_text("vaccine", &v.vaccine, limits::VACCINE)?;
                check_text("slot", &v.slot, limits::SLOT)?;
                if !(1900..=2100).contains(&v.year_of_birth) {
                    return Err(Error::invalid("year_of_birth", "must be 1900 to 2100"));
                }
                if !(1..=9).contains(&v.dose) {
                    return Err(Error::invalid("dose", "must be 1 to 9"));
                }
            }
        }
        Ok(())
    }

    /// The item's policy within `manifest`.
    pub fn policy_in<'a>(&self, manifest: &'a Manifest) -> Result<&'a Policy> {
        manifest.policies.get(&self.policy).ok_or(Error::invalid(
            "item policy",
            "names no policy of the manifest",
        ))
    }
}
