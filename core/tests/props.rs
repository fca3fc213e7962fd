//! Property tests: risk figures against brute force, round trips of the wire
//! formats, and parsers of outside bytes fed arbitrary and mutated input.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use handover_core::codes::{derive_salt, Code, CodeKey, Policy, Programme};
use handover_core::event::*;
use handover_core::keys::SigningKey;
use handover_core::manifest::*;
use handover_core::sync::{Ack, Batch};
use handover_core::verifier::Verifier;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Enumerate all 10^4 codes against real verifiers and compare what an
    /// insider would find with the closed-form figures.
    #[test]
    fn risk_figures_match_brute_force(tag_bits in 3u16..=8, seed_code in 0u32..10_000) {
        let policy = Policy { digits: 4, tag_bits, iterations: 1, max_attempts: 3 };
        let samples = 8;
        let n = 10_000u32;
        let mut candidates = Vec::new();
        for s in 0..samples {
            let right = Code::parse(&format!("{:04}", (seed_code + s * 1237) % n), 4).unwrap();
            let salt = derive_salt(&CodeKey::new("k", [s as u8; 32]), Programme::Vaccination, "APPT-1", seed_code + 1).unwrap();
            let v = Verifier::with_salt(&right, "APPT-1", &policy, salt).unwrap();
            let k = (0..n)
                .filter(|c| v.check(&Code::parse(&format!("{c:04}"), 4).unwrap(), "APPT-1", &policy))
                .count();
            prop_assert!(k >= 1, "the right code always matches");
            candidates.push(k as f64);
        }
        let mean_k = candidates.iter().sum::<f64>() / f64::from(samples);
        let expected = policy.expected_candidates();
        // Binomial spread of the mean over `samples` draws: allow 5 sigma.
        let sigma = (expected * (1.0 - policy.collision_probability()) / f64::from(samples)).sqrt();
        prop_assert!((mean_k - expected).abs() < 5.0 * sigma + 1.0, "mean {mean_k} vs {expected}");
        // One random guess passes with probability E[K]/N.
        prop_assert!((policy.impostor_acceptance(1) * f64::from(n) - expected).abs() < 1e-6);
        // The insider's pick is right with probability E[1/K].
        let mean_inv = candidates.iter().map(|k| 1.0 / k).sum::<f64>() / f64::from(samples);
        let figure = policy.insider_undetected();
        prop_assert!((mean_inv - figure).abs() < 0.3 * figure, "1/K {mean_inv} vs {figure}");
    }
}

fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[A-Za-z0-9 ,.'/-]{{1,{max}}}"))
        .unwrap()
        .prop_filter("not blank", |s| !s.trim().is_empty())
}

fn post_details() -> impl Strategy<Value = ItemDetails> {
    (
        prop_oneof![
            Just(PostService::Registered),
            Just(PostService::SpeedPost),
            Just(PostService::Parcel)
        ],
        text(40),
        text(100),
        "[0-9]{2,4}",
        proptest::option::of((1u64..=1_000_000_000, text(30))),
    )
        .prop_map(|(service, addressee, address, mobile_last_digits, cod)| {
            ItemDetails::Post(PostDetails {
                service,
                addressee,
                address,
                mobile_last_digits,
                cod: cod.map(|(amount_paise, payee_name)| CashOnDelivery {
                    amount_paise,
                    payee_upi: "cod.office@sbi".into(),
                    payee_name,
                }),
            })
        })
}

fn manifest() -> impl Strategy<Value = Manifest> {
    let item = (
        0u32..99_999_999,
        1u32..5,
        any::<[u8; 16]>(),
        any::<[u8; 2]>(),
        post_details(),
    );
    (
        proptest::collection::vec(item, 0..20),
        1u32..1000,
        text(40),
        0i64..2_000_000_000,
    )
        .prop_map(|(items, revision, assignee, from)| {
            let mut seen = std::collections::HashSet::new();
            let items = items
                .into_iter()
                .filter(|(n, ..)| seen.insert(*n))
                .map(|(n, code_version, salt, tag, details)| Item {
                    reference: handover_core::s10::make("CP", n, "IN").unwrap(),
                    code_version,
                    policy: "p".into(),
                    verifier: Verifier {
                        salt,
                        tag: vec![tag[0], tag[1] & 0xe0],
                    },
                    details,
                })
                .collect();
            let t = |s| DateTime::<Utc>::from_timestamp(s, 0).unwrap();
            Manifest {
                format: MANIFEST_FORMAT.into(),
                manifest_id: format!("m-{revision}"),
                revision,
                office_id: "PO-1".into(),
                device_id: "00112233aabbccdd".into(),
                assignee,
                programme: Programme::Post,
                code_key_id: "k1".into(),
                issued_at: t(from),
                valid_from: t(from),
                valid_until: t(from + 36_000),
                policies: BTreeMap::from([(
                    "p".to_string(),
                    Policy {
                        digits: 6,
                        tag_bits: 11,
                        iterations: 100,
                        max_attempts: 3,
                    },
                )]),
                items,
            }
        })
}

fn event_kind() -> impl Strategy<Value = EventKind> {
    let reason = prop_oneof![
        Just(ExceptionReason::NotHome),
        Just(ExceptionReason::Refused),
        Just(ExceptionReason::AddressNotFound),
        Just(ExceptionReason::CodeNotReceived)
    ];
    prop_oneof![
        ("[A-Z0-9-]{1,20}", 1u32..9, "[0-9]{4,8}").prop_map(|(reference, code_version, code)| {
            EventKind::HandedOver {
                manifest_id: "m".into(),
                revision: 1,
                reference,
                code_version,
                code: Code::parse_any(&code).unwrap(),
            }
        }),
        ("[A-Z0-9-]{1,20}", 0u32..10).prop_map(|(reference, attempts_left)| {
            EventKind::AttemptFailed {
                manifest_id: "m".into(),
                reference,
                code_version: 1,
                attempts_left,
            }
        }),
        ("[A-Z0-9-]{1,20}", reason).prop_map(|(reference, reason)| EventKind::Exception {
            manifest_id: "m".into(),
            reference,
            reason,
        }),
        (
            "[A-Z0-9-]{1,20}",
            1u64..1_000_000,
            proptest::option::of("[0-9]{12}")
        )
            .prop_map(|(reference, amount_paise, utr)| EventKind::Payment {
                manifest_id: "m".into(),
                reference,
                amount_paise,
                method: utr.map_or(PaymentMethod::Cash, |txn_ref| PaymentMethod::Upi {
                    txn_ref
                }),
            }),
        (0i64..2_000_000_000, 1i64..1_000_000).prop_map(|(t, back)| EventKind::ClockAnomaly {
            mark: DateTime::from_timestamp(t + back, 0).unwrap(),
            now: DateTime::from_timestamp(t, 0).unwrap(),
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn manifest_round_trips_through_the_envelope(m in manifest()) {
        let office = SigningKey::generate().unwrap();
        let sealed = m.seal(&office).unwrap();
        prop_assert_eq!(Manifest::open(&sealed, &[office.public_key()]).unwrap(), m);
    }

    #[test]
    fn event_chain_round_trips_through_a_batch(kinds in proptest::collection::vec(event_kind(), 1..12)) {
        let key = SigningKey::generate().unwrap();
        let device_id = key.public_key().device_id();
        let mut prev = GENESIS;
        let mut bodies = Vec::new();
        let mut events = Vec::new();
        for (i, kind) in kinds.into_iter().enumerate() {
            let body = EventBody {
                device_id: device_id.clone(),
                seq: i as u64 + 1,
                time: DateTime::from_timestamp(1_800_000_000 + i as i64, 0).unwrap(),
                counter: i as i64,
                clock_suspect: i % 2 == 1,
                kind,
                at: None,
            };
            let e = Event::create(prev, &body, &key).unwrap();
            prev = e.hash;
            bodies.push(body);
            events.push(e);
        }
        let batch = Batch {
            format: handover_core::sync::BATCH_FORMAT.into(),
            device_id,
            device_key: key.public_key(),
            events,
            acks: Vec::new(),
        };
        let back = Batch::from_bytes(&batch.to_bytes().unwrap()).unwrap();
        prop_assert_eq!(&back, &batch);
        prop_assert_eq!(verify_chain(&back.events, 1, GENESIS, &key.public_key()).unwrap(), bodies);
    }

    #[test]
    fn policy_specs_round_trip(digits in 4u8..=8, tag_bits in 1u16..=256, iterations in 1u32..=1_000_000, max_attempts in 1u32..=10) {
        let p = Policy { digits, tag_bits, iterations, max_attempts };
        prop_assert_eq!(p.to_string().parse::<Policy>().unwrap(), p);
        let r = p.risk();
        for x in [r.impostor_acceptance, r.insider_undetected, r.typo_caught] {
            prop_assert!((0.0..=1.0).contains(&x));
        }
    }

    /// Arbitrary bytes: every parser of outside bytes answers with an
    /// error (never a panic, never a value).
    #[test]
    fn parsers_refuse_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let key = SigningKey::generate().unwrap().public_key();
        prop_assert!(Manifest::open(&bytes, &[key]).is_err());
        prop_assert!(Ack::open(&bytes, &[key]).is_err());
        prop_assert!(Batch::from_bytes(&bytes).is_err());
        prop_assert!(handover_core::statement::KeyStatement::open(&bytes, &[key]).is_err());
    }

    /// A key statement with any byte changed is refused: the seal, the
    /// old key's identity and the new key's endorsement cover all of it.
    #[test]
    fn mutated_key_statements_are_refused(pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        use handover_core::statement::KeyStatement;
        let (old, new) = (SigningKey::generate().unwrap(), SigningKey::generate().unwrap());
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let mut bytes = KeyStatement::make(&old, &new, "PO-1", at, at).unwrap();
        let i = pos.index(bytes.len());
        prop_assume!(bytes[i] != byte);
        bytes[i] = byte;
        prop_assert!(KeyStatement::open(&bytes, &[old.public_key()]).is_err());
    }

    /// Mutated valid input: a batch with random bytes changed parses to an
    /// error or to a batch whose chain check reports the change.
    #[test]
    fn mutated_batches_are_caught(pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let key = SigningKey::generate().unwrap();
        let body = EventBody {
            device_id: key.public_key().device_id(),
            seq: 1,
            time: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            counter: 1,
            clock_suspect: false,
            kind: EventKind::ManifestImported { manifest_id: "m".into(), revision: 1, items: 3 },
            at: None,
        };
        let batch = Batch {
            format: handover_core::sync::BATCH_FORMAT.into(),
            device_id: key.public_key().device_id(),
            device_key: key.public_key(),
            events: vec![Event::create(GENESIS, &body, &key).unwrap()],
            acks: Vec::new(),
        };
        let mut bytes = batch.to_bytes().unwrap();
        let i = pos.index(bytes.len());
        prop_assume!(bytes[i] != byte);
        bytes[i] = byte;
        if let Ok(b) = Batch::from_bytes(&bytes) {
            // Whatever still parses must either equal the original (a change
            // JSON ignores, such as whitespace) or fail verification.
            let checked = verify_chain(&b.events, 1, GENESIS, &key.public_key());
            prop_assert!(b == batch || checked.is_err() || b.device_key != batch.device_key);
        }
    }
}

proptest! {
    /// Any point of the DIGIPIN box encodes to ten symbols whose cell holds
    /// it: the cell's centre is within the cell's half-diagonal (under 3 m
    /// at India's latitudes), and encodes to the same DIGIPIN.
    #[test]
    fn digipin_round_trips_inside_the_box(lat in 2.5f64..38.5, lon in 63.5f64..99.5) {
        use handover_core::digipin;
        let pin = digipin::encode(lat, lon).unwrap();
        prop_assert_eq!(pin.len(), 12);
        let (clat, clon) = digipin::decode(&pin).unwrap();
        prop_assert!(digipin::distance_m((lat, lon), (clat, clon)) < 3.0);
        prop_assert_eq!(digipin::encode(clat, clon).unwrap(), pin);
    }

    /// Outside the box is refused, never a wrong code; any text is either a
    /// DIGIPIN or a typed error.
    #[test]
    fn digipin_refuses_outside_and_never_panics(lat in -90f64..90.0, lon in -180f64..180.0, text in ".{0,16}") {
        use handover_core::digipin;
        let inside = (2.5..=38.5).contains(&lat) && (63.5..=99.5).contains(&lon);
        prop_assert_eq!(digipin::encode(lat, lon).is_ok(), inside);
        if let Ok((la, lo)) = digipin::decode(&text) {
            prop_assert!((2.5..=38.5).contains(&la) && (63.5..=99.5).contains(&lo));
        }
    }
}
