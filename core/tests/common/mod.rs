//! Shared fixtures: an office that issues manifests and acks in memory.
#![allow(dead_code)]

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use handover_core::codes::{derive_code, CodeKey, Policy, Programme};
use handover_core::device::Device;
use handover_core::keys::SigningKey;
use handover_core::manifest::*;
use handover_core::s10;
use handover_core::sync::{Ack, EventVerdict, Verdict, ACK_FORMAT};
use handover_core::verifier::Verifier;

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap()
}

/// Cheap to compute, and with 64-bit tags a wrong code never collides, so
/// refusal tests are deterministic.
pub fn fast_policy() -> Policy {
    Policy {
        digits: 6,
        tag_bits: 64,
        iterations: 50,
        max_attempts: 3,
    }
}

pub struct Office {
    pub key: SigningKey,
    pub code_key: CodeKey,
}

impl Office {
    pub fn new() -> Office {
        Office {
            key: SigningKey::generate().unwrap(),
            code_key: CodeKey::new("k1", [42; 32]),
        }
    }

    pub fn code(&self, reference: &str, version: u32) -> String {
        self.code_with(reference, version, fast_policy().digits)
    }

    pub fn code_with(&self, reference: &str, version: u32, digits: u8) -> String {
        derive_code(&self.code_key, Programme::Post, reference, version, digits)
            .unwrap()
            .as_str()
            .to_owned()
    }

    pub fn item(&self, reference: &str, version: u32, policy: &Policy, cod: Option<u64>) -> Item {
        let code = derive_code(
            &self.code_key,
            Programme::Post,
            reference,
            version,
            policy.digits,
        )
        .unwrap();
        Item {
            reference: reference.into(),
            code_version: version,
            policy: "default".into(),
            verifier: Verifier::derive(
                &self.code_key,
                Programme::Post,
                reference,
                version,
                &code,
                policy,
            )
            .unwrap(),
            details: ItemDetails::Post(PostDetails {
                service: PostService::SpeedPost,
                addressee: "Asha Verma".into(),
                address: "14 Park Street, Kolkata".into(),
                mobile_last_digits: "1234".into(),
                cod: cod.map(|amount_paise| CashOnDelivery {
                    amount_paise,
                    payee_upi: "indiapost.cod@sbi".into(),
                    payee_name: "India Post".into(),
                }),
            }),
        }
    }

    pub fn manifest(&self, device_id: &str, revision: u32, items: Vec<Item>) -> Manifest {
        self.manifest_with(device_id, revision, items, fast_policy())
    }

    pub fn manifest_with(
        &self,
        device_id: &str,
        revision: u32,
        items: Vec<Item>,
        policy: Policy,
    ) -> Manifest {
        Manifest {
            format: MANIFEST_FORMAT.into(),
            manifest_id: "beat-7-2026-11-23".into(),
            revision,
            office_id: "PO-700001".into(),
            device_id: device_id.into(),
            assignee: "Postman 7".into(),
            programme: Programme::Post,
            code_key_id: self.code_key.id().into(),
            issued_at: t0() - Duration::hours(3),
            valid_from: t0() - Duration::hours(1),
            valid_until: t0() + Duration::hours(10),
            policies: BTreeMap::from([("default".to_string(), policy)]),
            items,
        }
    }

    pub fn ack(
        &self,
        device_id: &str,
        through_seq: u64,
        head_hash: [u8; 32],
        verdicts: Vec<(u64, Verdict)>,
    ) -> Vec<u8> {
        Ack {
            format: ACK_FORMAT.into(),
            device_id: device_id.into(),
            through_seq,
            head_hash,
            verdicts: verdicts
                .into_iter()
                .map(|(seq, verdict)| EventVerdict { seq, verdict })
                .collect(),
        }
        .seal(&self.key)
        .unwrap()
    }
}

pub fn article(n: u32) -> String {
    s10::make("EE", 10_000_000 + n, "IN").unwrap()
}

/// A device that trusts `office` and holds a manifest of `n` items.
pub fn loaded_device(dir: &std::path::Path, office: &Office, n: u32) -> Device {
    let device = Device::open(dir.join("device.db")).unwrap();
    device
        .trust_office_key(office.key.public_key(), t0())
        .unwrap();
    let id = device.identity().device_id;
    let items = (0..n)
        .map(|i| {
            office.item(
                &article(i),
                1,
                &fast_policy(),
                (i % 3 == 0).then_some(25_000),
            )
        })
        .collect();
    let sealed = office.manifest(&id, 1, items).seal(&office.key).unwrap();
    device.import_manifest(&sealed, t0()).unwrap();
    device
}

/// A code for `reference` that is not the right one.
pub fn wrong_code(right: &str) -> String {
    let n: u32 = right.parse().unwrap();
    format!(
        "{:0width$}",
        (n + 1) % 10u32.pow(right.len() as u32),
        width = right.len()
    )
}
