//! The device store end to end: import rules, verify, lockout, durability,
//! the outbox chain, export and ack, purge, clock anomalies, migrations.

mod common;

use chrono::Duration;
use common::*;
use handover_core::device::{Device, ImportOutcome, ItemState, VerifyOutcome};
use handover_core::event::{verify_chain, EventKind, ExceptionReason, PaymentMethod, GENESIS};
use handover_core::sync::{Batch, Verdict};
use handover_core::Error;

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn right_code_is_accepted_with_a_signed_receipt() {
    let d = dir();
    let office = Office::new();
    let device = loaded_device(d.path(), &office, 3);
    let r = article(1);
    let out = device.verify(&r, &office.code(&r, 1), t0()).unwrap();
    let VerifyOutcome::Accepted { receipt } = out else {
        panic!("expected accepted, got {out:?}")
    };
    let body = receipt.verify(&device.identity().public_key).unwrap();
    match body.kind {
        EventKind::HandedOver {
            reference, code, ..
        } => {
            assert_eq!(reference, r);
            assert_eq!(code.as_str(), office.code(&r, 1));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        device.item(&r).unwrap().unwrap().state,
        ItemState::HandedOver
    );
    assert_eq!(
        device.verify(&r, &office.code(&r, 1), t0()).unwrap(),
        VerifyOutcome::AlreadyDone
    );
}

#[test]
fn wrong_codes_count_down_and_lock_and_lockout_survives_reopening() {
    let d = dir();
    let office = Office::new();
    let r = article(0);
    let right = office.code(&r, 1);
    let bad = wrong_code(&right);
    {
        let device = loaded_device(d.path(), &office, 1);
        assert_eq!(
            device.verify(&r, &bad, t0()).unwrap(),
            VerifyOutcome::Refused { attempts_left: 2 }
        );
        assert_eq!(
            device.verify(&r, &bad, t0()).unwrap(),
            VerifyOutcome::Refused { attempts_left: 1 }
        );
    }
    // Restart between attempts: the count is on disk.
    let device = Device::open(d.path().join("device.db")).unwrap();
    assert_eq!(device.item(&r).unwrap().unwrap().attempts_left, 1);
    assert_eq!(
        device.verify(&r, &bad, t0()).unwrap(),
        VerifyOutcome::Locked
    );
    drop(device);
    let device = Device::open(d.path().join("device.db")).unwrap();
    // Even the right code is refused once locked.
    assert_eq!(
        device.verify(&r, &right, t0()).unwrap(),
        VerifyOutcome::Locked
    );
    assert_eq!(device.item(&r).unwrap().unwrap().state, ItemState::Locked);
    let kinds: Vec<_> = device
        .events()
        .unwrap()
        .iter()
        .map(|e| e.parse_body().unwrap().kind.type_name())
        .collect();
    assert_eq!(
        kinds,
        [
            "manifest_imported",
            "attempt_failed",
            "attempt_failed",
            "attempt_failed",
            "locked"
        ]
    );
}

#[test]
fn malformed_codes_cost_no_attempt() {
    let d = dir();
    let office = Office::new();
    let device = loaded_device(d.path(), &office, 1);
    let r = article(0);
    for bad in ["12345", "1234567", "12a456", ""] {
        assert_eq!(
            device.verify(&r, bad, t0()).unwrap(),
            VerifyOutcome::Malformed { digits: 6 }
        );
    }
    assert_eq!(device.item(&r).unwrap().unwrap().attempts_left, 3);
    assert_eq!(
        device.verify("EE999999990IN", "123456", t0()).unwrap(),
        VerifyOutcome::UnknownItem
    );
}

#[test]
fn every_verify_is_visible_after_reopening() {
    let d = dir();
    let office = Office::new();
    let n = 12;
    let mut expected = Vec::new();
    {
        let device = loaded_device(d.path(), &office, n);
        for i in 0..n {
            let r = article(i);
            let right = office.code(&r, 1);
            let out = if i % 2 == 0 {
                device.verify(&r, &right, t0()).unwrap()
            } else {
                device.verify(&r, &wrong_code(&right), t0()).unwrap()
            };
            expected.push((r, out));
        }
        // No close, no checkpoint: the handle is simply dropped.
    }
    let device = Device::open(d.path().join("device.db")).unwrap();
    for (r, out) in expected {
        let item = device.item(&r).unwrap().unwrap();
        match out {
            VerifyOutcome::Accepted { receipt } => {
                assert_eq!(item.state, ItemState::HandedOver);
                assert!(device.events().unwrap().contains(&receipt.event));
            }
            VerifyOutcome::Refused { attempts_left } => {
                assert_eq!(item.attempts_left, attempts_left);
                assert_eq!(item.state, ItemState::Pending);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(device.pending_count().unwrap(), 1 + u64::from(n));
}

#[test]
fn manifest_tamper_every_bit_is_refused_and_changes_nothing() {
    let d = dir();
    let office = Office::new();
    let device = Device::open(d.path().join("device.db")).unwrap();
    device
        .trust_office_key(office.key.public_key(), t0())
        .unwrap();
    let id = device.identity().device_id;
    let items = vec![office.item(&article(0), 1, &fast_policy(), Some(100))];
    let sealed = office.manifest(&id, 1, items).seal(&office.key).unwrap();
    for i in 0..sealed.len() {
        let mut t = sealed.clone();
        t[i] ^= 1 << (i % 8);
        assert!(device.import_manifest(&t, t0()).is_err(), "byte {i}");
    }
    assert!(device.items().unwrap().is_empty());
    assert_eq!(device.pending_count().unwrap(), 0);
    assert!(matches!(
        device.import_manifest(&sealed, t0()).unwrap(),
        ImportOutcome::Imported { items: 1, .. }
    ));
}

#[test]
fn untrusted_wrong_device_and_expired_manifests_are_refused() {
    let d = dir();
    let office = Office::new();
    let device = Device::open(d.path().join("device.db")).unwrap();
    let id = device.identity().device_id;
    let sealed = office
        .manifest(
            &id,
            1,
            vec![office.item(&article(0), 1, &fast_policy(), None)],
        )
        .seal(&office.key)
        .unwrap();
    // No key pinned yet.
    assert!(matches!(
        device.import_manifest(&sealed, t0()),
        Err(Error::UntrustedKey)
    ));
    device
        .trust_office_key(office.key.public_key(), t0())
        .unwrap();
    // Another office's key.
    let rogue = Office::new();
    let forged = rogue
        .manifest(
            &id,
            1,
            vec![rogue.item(&article(0), 1, &fast_policy(), None)],
        )
        .seal(&rogue.key)
        .unwrap();
    assert!(matches!(
        device.import_manifest(&forged, t0()),
        Err(Error::UntrustedKey)
    ));
    // Another device's manifest.
    let other = office
        .manifest(
            "00ff00ff00ff00ff",
            1,
            vec![office.item(&article(0), 1, &fast_policy(), None)],
        )
        .seal(&office.key)
        .unwrap();
    assert!(matches!(
        device.import_manifest(&other, t0()),
        Err(Error::WrongDevice)
    ));
    // Expired.
    assert!(matches!(
        device.import_manifest(&sealed, t0() + Duration::days(2)),
        Err(Error::ManifestExpired)
    ));
    assert!(device.items().unwrap().is_empty());
    device.import_manifest(&sealed, t0()).unwrap();
}

#[test]
fn revision_rules() {
    let d = dir();
    let office = Office::new();
    let device = Device::open(d.path().join("device.db")).unwrap();
    device
        .trust_office_key(office.key.public_key(), t0())
        .unwrap();
    let id = device.identity().device_id;
    let p = fast_policy();
    let (a, b, c, e) = (article(0), article(1), article(2), article(3));
    let rev1 = office
        .manifest(
            &id,
            1,
            vec![
                office.item(&a, 1, &p, None),
                office.item(&b, 1, &p, None),
                office.item(&c, 1, &p, None),
                office.item(&e, 1, &p, None),
            ],
        )
        .seal(&office.key)
        .unwrap();
    device.import_manifest(&rev1, t0()).unwrap();
    // Same bytes again: a no-op, no event.
    let before = device.pending_count().unwrap();
    assert!(matches!(
        device.import_manifest(&rev1, t0()).unwrap(),
        ImportOutcome::Unchanged { revision: 1, .. }
    ));
    assert_eq!(device.pending_count().unwrap(), before);
    // a handed over, b locked, c pending with one failed attempt.
    assert!(matches!(
        device.verify(&a, &office.code(&a, 1), t0()).unwrap(),
        VerifyOutcome::Accepted { .. }
    ));
    for _ in 0..3 {
        device
            .verify(&b, &wrong_code(&office.code(&b, 1)), t0())
            .unwrap();
    }
    device
        .verify(&c, &wrong_code(&office.code(&c, 1)), t0())
        .unwrap();
    // Same revision, other content: refused.
    let rev1b = office
        .manifest(&id, 1, vec![office.item(&a, 1, &p, None)])
        .seal(&office.key)
        .unwrap();
    assert!(matches!(
        device.import_manifest(&rev1b, t0()),
        Err(Error::StaleRevision {
            held: 1,
            offered: 1
        })
    ));
    // Revision 2: a re-issued at version 2 (must not rewrite the handover),
    // b re-issued at version 2 (unlocks), c unchanged (keeps its attempt),
    // e left out (withdrawn).
    let rev2 = office
        .manifest(
            &id,
            2,
            vec![
                office.item(&a, 2, &p, None),
                office.item(&b, 2, &p, None),
                office.item(&c, 1, &p, None),
            ],
        )
        .seal(&office.key)
        .unwrap();
    device.import_manifest(&rev2, t0()).unwrap();
    assert_eq!(
        device.item(&a).unwrap().unwrap().state,
        ItemState::HandedOver
    );
    assert_eq!(device.item(&a).unwrap().unwrap().code_version, 1);
    let ib = device.item(&b).unwrap().unwrap();
    assert_eq!(
        (ib.state, ib.attempts_left, ib.code_version),
        (ItemState::Pending, 3, 2)
    );
    assert_eq!(device.item(&c).unwrap().unwrap().attempts_left, 2);
    assert!(device.item(&e).unwrap().is_none());
    assert_eq!(
        device.verify(&e, &office.code(&e, 1), t0()).unwrap(),
        VerifyOutcome::UnknownItem
    );
    // The old code of b no longer works; the new one does.
    assert!(matches!(
        device.verify(&b, &office.code(&b, 1), t0()).unwrap(),
        VerifyOutcome::Refused { .. }
    ));
    assert!(matches!(
        device.verify(&b, &office.code(&b, 2), t0()).unwrap(),
        VerifyOutcome::Accepted { .. }
    ));
    // Replaying revision 1 is refused.
    assert!(matches!(
        device.import_manifest(&rev1, t0()),
        Err(Error::StaleRevision {
            held: 2,
            offered: 1
        })
    ));
}

#[test]
fn a_revision_that_changes_a_verifier_without_a_new_code_version_is_refused() {
    let d = dir();
    let office = Office::new();
    let device = Device::open(d.path().join("device.db")).unwrap();
    device
        .trust_office_key(office.key.public_key(), t0())
        .unwrap();
    let id = device.identity().device_id;
    let p = fast_policy();
    let (a, b) = (article(0), article(1));
    let rev1 = office.manifest(
        &id,
        1,
        vec![office.item(&a, 1, &p, None), office.item(&b, 1, &p, None)],
    );
    device
        .import_manifest(&rev1.seal(&office.key).unwrap(), t0())
        .unwrap();
    let events = device.events().unwrap();
    let items = device.items().unwrap();

    // Another salt for the same code version: two tags of one code.
    let mut resalted = office.manifest(&id, 2, rev1.items.clone());
    resalted.items[0].verifier.salt[0] ^= 1;
    // Another policy (here more tag bits) for the same code version.
    let wider = handover_core::codes::Policy { tag_bits: 72, ..p };
    let repoliced = office.manifest_with(&id, 2, vec![office.item(&a, 1, &wider, None)], wider);
    // Other digits for the same code version.
    let eight = handover_core::codes::Policy { digits: 8, ..p };
    let redigited = office.manifest_with(&id, 2, vec![office.item(&a, 1, &eight, None)], eight);
    for m in [resalted, repoliced, redigited] {
        assert!(matches!(
            device.import_manifest(&m.seal(&office.key).unwrap(), t0()),
            Err(Error::VerifierChanged)
        ));
        // Nothing changed, no event written.
        assert_eq!(device.events().unwrap(), events);
        assert_eq!(device.items().unwrap(), items);
    }
    // The same item in another manifest (the next day's) is held to it too.
    let mut other_day = office.manifest(&id, 1, vec![office.item(&a, 1, &p, None)]);
    other_day.manifest_id = "beat-7-2026-11-24".into();
    other_day.items[0].verifier.tag[0] ^= 0x80;
    assert!(matches!(
        device.import_manifest(&other_day.seal(&office.key).unwrap(), t0()),
        Err(Error::VerifierChanged)
    ));
    // A new code version may bring a new verifier and a new policy.
    let rev2 = office.manifest_with(&id, 2, vec![office.item(&a, 2, &eight, None)], eight);
    device
        .import_manifest(&rev2.seal(&office.key).unwrap(), t0())
        .unwrap();
    assert!(matches!(
        device
            .verify(&a, &office.code_with(&a, 2, 8), t0())
            .unwrap(),
        VerifyOutcome::Accepted { .. }
    ));
}

#[test]
fn a_purged_manifest_leaves_a_tombstone_that_keeps_every_outcome() {
    let d = dir();
    let office = Office::new();
    let device = loaded_device(d.path(), &office, 3);
    let id = device.identity().device_id;
    let p = fast_policy();
    let (done, locked, open) = (article(0), article(1), article(2));
    device.verify(&done, &office.code(&done, 1), t0()).unwrap();
    for _ in 0..3 {
        device
            .verify(&locked, &wrong_code(&office.code(&locked, 1)), t0())
            .unwrap();
    }
    device
        .verify(&open, &wrong_code(&office.code(&open, 1)), t0())
        .unwrap();
    let (seq, hash) = device.head().unwrap();
    device
        .apply_ack(&office.ack(&id, seq, hash, vec![]), t0())
        .unwrap();
    let later = t0() + Duration::days(30);
    let purged = device.purge(Duration::days(1), later).unwrap();
    assert_eq!(purged.manifests, 1);
    assert!(device.items().unwrap().is_empty());
    // No names or addresses are left in the file.
    drop(device);
    let bytes = std::fs::read(d.path().join("device.db")).unwrap();
    let wal = std::fs::read(d.path().join("device.db-wal")).unwrap_or_default();
    for hay in [&bytes, &wal] {
        assert!(!hay.windows(10).any(|w| w == b"Asha Verma"));
    }
    let device = Device::open(d.path().join("device.db")).unwrap();
    // The same revision again: nothing happens; an older or equal one with
    // other bytes: refused. Nothing is reopened.
    let rev1 = office
        .manifest(
            &id,
            1,
            (0..3)
                .map(|i| office.item(&article(i), 1, &p, (i % 3 == 0).then_some(25_000)))
                .collect(),
        )
        .seal(&office.key)
        .unwrap();
    let again = device.import_manifest(&rev1, later);
    assert!(
        matches!(
            again,
            Ok(ImportOutcome::Unchanged { .. }) | Err(Error::ManifestExpired)
        ),
        "{again:?}"
    );
    // A newer revision (valid again) finds every item as it was left.
    let mut rev2 = office.manifest(
        &id,
        2,
        (0..3)
            .map(|i| office.item(&article(i), 1, &p, None))
            .collect(),
    );
    rev2.valid_until = later + Duration::hours(8);
    device
        .import_manifest(&rev2.seal(&office.key).unwrap(), later)
        .unwrap();
    assert_eq!(
        device.item(&done).unwrap().unwrap().state,
        ItemState::HandedOver
    );
    assert_eq!(
        device.item(&locked).unwrap().unwrap().state,
        ItemState::Locked
    );
    assert_eq!(device.item(&open).unwrap().unwrap().attempts_left, 2);
    assert_eq!(
        device.verify(&done, &office.code(&done, 1), later).unwrap(),
        VerifyOutcome::AlreadyDone
    );
    assert_eq!(
        device
            .verify(&locked, &office.code(&locked, 1), later)
            .unwrap(),
        VerifyOutcome::Locked
    );
    // A purge with the clock behind the high-water mark is refused.
    assert!(matches!(
        device.purge(Duration::days(1), t0()),
        Err(Error::ClockBehind)
    ));
}

#[test]
fn validity_window_is_enforced_with_tolerance() {
    let d = dir();
    let office = Office::new();
    let device = loaded_device(d.path(), &office, 1);
    let r = article(0);
    let code = office.code(&r, 1);
    // valid_from = t0 - 1h, valid_until = t0 + 10h, tolerance 5 min.
    assert_eq!(
        device.verify(&r, &code, t0() - Duration::hours(2)).unwrap(),
        VerifyOutcome::NotYetValid
    );
    assert_eq!(
        device
            .verify(&r, &code, t0() + Duration::hours(11))
            .unwrap(),
        VerifyOutcome::Expired
    );
    assert_eq!(device.item(&r).unwrap().unwrap().attempts_left, 3);
    assert!(matches!(
        device
            .verify(&r, &code, t0() + Duration::hours(10) + Duration::minutes(4))
            .unwrap(),
        VerifyOutcome::Accepted { .. }
    ));
}

#[test]
fn exceptions_and_payments() {
    let d = dir();
    let office = Office::new();
    let device = loaded_device(d.path(), &office, 3);
    let (cod, plain) = (article(0), article(1));
    device
        .record_exception(&cod, ExceptionReason::NotHome, t0())
        .unwrap();
    let item = device.item(&cod).unwrap().unwrap();
    assert_eq!(item.state, ItemState::Exception);
    assert_eq!(item.reason, Some(ExceptionReason::NotHome));
    // A second visit can still hand over.
    let u1 = device.upi_request(&cod, t0()).unwrap();
    let u2 = device.upi_request(&cod, t0()).unwrap();
    assert_ne!(u1.txn_ref, u2.txn_ref, "every request gets a fresh tr");
    assert!(u1
        .uri()
        .starts_with("upi://pay?pa=indiapost.cod@sbi&pn=India%20Post&am=250.00&cu=INR&tr="));
    // Paid as it changes hands: not before the recipient's code.
    match device.record_payment(&cod, PaymentMethod::Cash, t0()) {
        Err(Error::NotAllowed(why)) => assert!(why.contains("not yet handed over"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(!device.item(&cod).unwrap().unwrap().paid);
    assert!(matches!(
        device.verify(&cod, &office.code(&cod, 1), t0()).unwrap(),
        VerifyOutcome::Accepted { .. }
    ));
    device
        .record_payment(
            &cod,
            PaymentMethod::Upi {
                txn_ref: "412345678901".into(),
            },
            t0(),
        )
        .unwrap();
    assert!(matches!(
        device.record_payment(&cod, PaymentMethod::Cash, t0()),
        Err(Error::NotAllowed(_))
    ));
    assert!(device.item(&cod).unwrap().unwrap().paid);
    assert!(matches!(
        device.record_exception(&cod, ExceptionReason::Refused, t0()),
        Err(Error::NotAllowed(_))
    ));
    assert!(matches!(
        device.record_payment(&plain, PaymentMethod::Cash, t0()),
        Err(Error::NotAllowed(_))
    ));
    assert!(matches!(
        device.upi_request(&plain, t0()),
        Err(Error::NotAllowed(_))
    ));
    assert!(matches!(
        device.record_exception("EE999999990IN", ExceptionReason::NotHome, t0()),
        Err(Error::UnknownItem)
    ));
}

#[test]
fn export_ack_round_trip_and_chain_end_to_end() {
    let d = dir();
    let office = Office::new();
    let device = loaded_device(d.path(), &office, 5);
    for i in 0..5 {
        let r = article(i);
        device.verify(&r, &office.code(&r, 1), t0()).unwrap();
    }
    let pk = device.identity().public_key;
    let all = device.events().unwrap();
    assert_eq!(all.len(), 6);
    verify_chain(&all, 1, GENESIS, &pk).unwrap();

    // Export in two batches of at most 4; exporting again gives the same.
    let b1 = device.export_batch(4).unwrap();
    assert_eq!(b1, device.export_batch(4).unwrap());
    assert_eq!(b1.events.len(), 4);
    let bytes = b1.to_bytes().unwrap();
    let parsed = Batch::from_bytes(&bytes).unwrap();
    assert_eq!(parsed, b1);
    verify_chain(&parsed.events, 1, GENESIS, &parsed.device_key).unwrap();

    let id = device.identity().device_id;
    let last = b1.events.last().unwrap();
    let verdicts = (1..=4)
        .map(|s| {
            (
                s,
                if s == 1 {
                    Verdict::Recorded
                } else {
                    Verdict::Verified
                },
            )
        })
        .collect();
    let ack = office.ack(&id, 4, last.hash, verdicts);
    let summary = device.apply_ack(&ack, t0()).unwrap();
    assert_eq!(
        (summary.through_seq, summary.newly_acked, summary.verified),
        (4, 4, 3)
    );
    assert_eq!(device.pending_count().unwrap(), 2);
    assert_eq!(device.verdict(2).unwrap(), Some(Verdict::Verified));
    // Applying the same ack twice changes nothing.
    assert_eq!(device.apply_ack(&ack, t0()).unwrap().newly_acked, 0);

    let b2 = device.export_batch(100).unwrap();
    assert_eq!(b2.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [5, 6]);
    verify_chain(&b2.events, 5, last.hash, &pk).unwrap();
}

#[test]
fn ack_tamper_every_bit_is_refused() {
    let d = dir();
    let office = Office::new();
    let device = loaded_device(d.path(), &office, 1);
    let id = device.identity().device_id;
    let (seq, hash) = device.head().unwrap();
    let ack = office.ack(&id, seq, hash, vec![(1, Verdict::Recorded)]);
    for i in 0..ack.len() {
        let mut t = ack.clone();
        t[i] ^= 1 << (i % 8);
        assert!(device.apply_ack(&t, t0()).is_err(), "byte {i}");
    }
    assert_eq!(device.pending_count().unwrap(), 1);
    device.apply_ack(&ack, t0()).unwrap();
    assert_eq!(device.pending_count().unwrap(), 0);
}

#[test]
fn acks_that_do_not_match_the_chain_are_refused() {
    let d = dir();
    let office = Office::new();
    let device = loaded_device(d.path(), &office, 1);
    let id = device.identity().device_id;
    let (seq, hash) = device.head().unwrap();
    assert!(matches!(
        device.apply_ack(&office.ack(&id, seq, [9; 32], vec![]), t0()),
        Err(Error::AckMismatch(_))
    ));
    assert!(matches!(
        device.apply_ack(&office.ack(&id, seq + 1, hash, vec![]), t0()),
        Err(Error::AckMismatch(_))
    ));
    assert!(matches!(
        device.apply_ack(&office.ack("0011223344556677", seq, hash, vec![]), t0()),
        Err(Error::WrongDevice)
    ));
    let rogue = Office::new();
    assert!(matches!(
        device.apply_ack(&rogue.ack(&id, seq, hash, vec![]), t0()),
        Err(Error::UntrustedKey)
    ));
    assert_eq!(device.pending_count().unwrap(), 1);
}

#[test]
fn purge_only_after_ack_and_retention() {
    let d = dir();
    let office = Office::new();
    let device = loaded_device(d.path(), &office, 2);
    let r = article(0);
    device.verify(&r, &office.code(&r, 1), t0()).unwrap();
    let later = t0() + Duration::days(30);
    // Nothing acknowledged: nothing goes, however old.
    let p = device.purge(Duration::days(7), later).unwrap();
    assert_eq!((p.events, p.manifests), (0, 0));
    let id = device.identity().device_id;
    let (seq, hash) = device.head().unwrap();
    device
        .apply_ack(&office.ack(&id, seq, hash, vec![]), t0())
        .unwrap();
    // Acknowledged but within retention: kept.
    let p = device
        .purge(Duration::days(7), t0() + Duration::days(1))
        .unwrap();
    assert_eq!((p.events, p.manifests), (0, 0));
    let p = device.purge(Duration::days(7), later).unwrap();
    assert_eq!((p.events, p.manifests, p.seq), (2, 1, Some(seq + 1)));
    assert!(device.items().unwrap().is_empty());
    // The purge is itself an event, chained on the stored head.
    let purged = device.events().unwrap();
    assert_eq!(purged.len(), 1);
    assert_eq!((purged[0].seq, purged[0].prev_hash), (seq + 1, hash));
    assert_eq!(purged[0].parse_body().unwrap().kind.type_name(), "purged");
    // The chain continues from the stored head after a purge.
    let mut m = office.manifest(
        &id,
        1,
        vec![office.item(&article(9), 1, &fast_policy(), None)],
    );
    m.manifest_id = "beat-7-2026-12-23".into();
    m.valid_from = later - Duration::hours(1);
    m.valid_until = later + Duration::hours(8);
    device
        .import_manifest(&m.seal(&office.key).unwrap(), later)
        .unwrap();
    let events = device.events().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(
        (events[1].seq, events[1].prev_hash),
        (seq + 2, purged[0].hash)
    );
}

#[test]
fn clock_set_back_is_recorded_and_flags_events_until_ack() {
    let d = dir();
    let office = Office::new();
    let device = loaded_device(d.path(), &office, 3);
    let (a, b) = (article(0), article(1));
    device
        .verify(&a, &office.code(&a, 1), t0() + Duration::hours(2))
        .unwrap();
    // Clock set back by an hour (beyond the 5 minute tolerance).
    device
        .verify(&b, &office.code(&b, 1), t0() + Duration::hours(1))
        .unwrap();
    let bodies: Vec<_> = device
        .events()
        .unwrap()
        .iter()
        .map(|e| e.parse_body().unwrap())
        .collect();
    let kinds: Vec<_> = bodies.iter().map(|b| b.kind.type_name()).collect();
    assert_eq!(
        kinds,
        [
            "manifest_imported",
            "handed_over",
            "clock_anomaly",
            "handed_over"
        ]
    );
    assert!(!bodies[1].clock_suspect);
    assert!(bodies[2].clock_suspect && bodies[3].clock_suspect);
    // The counter never goes back even though the time did.
    assert!(bodies.windows(2).all(|w| w[1].counter > w[0].counter));
    assert!(bodies[3].time < bodies[1].time);
    // An ack covering the anomaly ends the suspicion, once the clock is
    // right again (not behind the high-water mark).
    let id = device.identity().device_id;
    let (seq, hash) = device.head().unwrap();
    device
        .apply_ack(&office.ack(&id, seq, hash, vec![]), t0())
        .unwrap();
    device
        .record_exception(
            &article(2),
            ExceptionReason::NotHome,
            t0() + Duration::hours(2) + Duration::minutes(1),
        )
        .unwrap();
    let last = device
        .events()
        .unwrap()
        .pop()
        .unwrap()
        .parse_body()
        .unwrap();
    assert!(!last.clock_suspect);
    // Still an hour behind the mark after the ack: a new anomaly.
    device
        .record_exception(
            &article(2),
            ExceptionReason::Refused,
            t0() + Duration::hours(1),
        )
        .unwrap();
    let bodies: Vec<_> = device
        .events()
        .unwrap()
        .iter()
        .map(|e| e.parse_body().unwrap())
        .collect();
    let n = bodies.len();
    assert_eq!(bodies[n - 2].kind.type_name(), "clock_anomaly");
    assert!(bodies[n - 1].clock_suspect);
}

#[test]
fn a_file_that_is_not_a_database_is_reported_and_left_alone() {
    let d = dir();
    let path = d.path().join("device.db");
    let junk: Vec<u8> = (0..8192u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&path, &junk).unwrap();
    assert!(matches!(
        Device::open(&path),
        Err(Error::DatabaseUnusable(_))
    ));
    assert_eq!(std::fs::read(&path).unwrap(), junk);
    assert!(!d.path().join("device.db-wal").exists());
}

#[test]
fn a_newer_schema_is_refused_not_downgraded() {
    let d = dir();
    let path = d.path().join("device.db");
    drop(Device::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    assert!(matches!(
        Device::open(&path),
        Err(Error::SchemaTooNew { found: 99, .. })
    ));
    let conn = rusqlite::Connection::open(&path).unwrap();
    let v: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 99);
}

#[test]
fn debug_output_carries_no_codes() {
    let d = dir();
    let office = Office::new();
    let device = loaded_device(d.path(), &office, 1);
    let r = article(0);
    let code = office.code(&r, 1);
    let out = device.verify(&r, &code, t0()).unwrap();
    let shown = format!("{out:?} {device:?} {:?}", device.items().unwrap());
    assert!(!shown.contains(&code), "{shown}");
    // Not even as the bytes of an event body.
    let as_bytes = format!("{:?}", code.as_bytes());
    assert!(!shown.contains(&as_bytes[1..as_bytes.len() - 1]), "{shown}");
    // Nor personal data: the fixture's addressee, address and mobile digits.
    for pii in ["Asha", "Verma", "Park Street", "1234"] {
        assert!(!shown.contains(pii), "{pii} in {shown}");
    }
}

#[test]
fn a_resend_starts_where_the_office_asks_ends_at_an_ack_and_carries_the_acks() {
    let d = dir();
    let office = Office::new();
    let device = loaded_device(d.path(), &office, 6);
    for i in 0..6 {
        let r = article(i);
        device.verify(&r, &office.code(&r, 1), t0()).unwrap();
    }
    let id = device.identity().device_id;
    // Acknowledged in two batches: through 3, then through 6; 7 waits.
    let events = device.events().unwrap();
    assert_eq!(events.len(), 7);
    let ack3 = office.ack(&id, 3, events[2].hash, vec![(3, Verdict::Verified)]);
    let ack6 = office.ack(&id, 6, events[5].hash, vec![(6, Verdict::Verified)]);
    device.apply_ack(&ack3, t0()).unwrap();
    device.apply_ack(&ack6, t0()).unwrap();

    // Nothing to resend beyond what the office acknowledged, nor from 0.
    assert!(matches!(
        device.export_resend(7, 100),
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        device.export_resend(0, 100),
        Err(Error::Invalid { .. })
    ));
    // From 2, at most 100: ends at the last ack inside (6), both acks.
    let b = device.export_resend(2, 100).unwrap();
    assert_eq!(
        b.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [2, 3, 4, 5, 6]
    );
    assert_eq!(
        b.acks,
        [
            handover_core::api::to_base64(&ack3),
            handover_core::api::to_base64(&ack6)
        ]
    );
    // At most 4 from 2: cut back to the ack boundary at 3.
    let b = device.export_resend(2, 4).unwrap();
    assert_eq!(b.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(b.acks.len(), 1);
    // The batch parses back (the acks travel with it).
    assert_eq!(Batch::from_bytes(&b.to_bytes().unwrap()).unwrap(), b);
    // An ordinary batch carries no acks, and none on the wire.
    let plain = device.export_batch(100).unwrap();
    assert!(plain.acks.is_empty());
    assert!(!String::from_utf8(plain.to_bytes().unwrap())
        .unwrap()
        .contains("acks"));

    // Purged events cannot be resent: the resend starts after the office's
    // last ack the device holds events after (6), and carries that ack
    // first as a checkpoint; then the waiting events (7 and the purge's).
    let purged = device
        .purge(Duration::days(7), t0() + Duration::days(30))
        .unwrap();
    assert_eq!(purged.events, 6);
    let b = device.export_resend(2, 100).unwrap();
    assert_eq!(
        b.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [7, purged.seq.unwrap()]
    );
    assert_eq!(b.events[0].prev_hash, events[5].hash);
    assert_eq!(b.acks, [handover_core::api::to_base64(&ack6)]);
}

#[test]
fn a_device_that_purged_twice_resends_from_the_ack_before_what_it_still_holds() {
    let d = dir();
    let office = Office::new();
    let device = loaded_device(d.path(), &office, 1);
    device
        .verify(&article(0), &office.code(&article(0), 1), t0())
        .unwrap();
    let events = device.events().unwrap();
    let id = device.identity().device_id;
    let last = events.last().unwrap();
    let ack = office.ack(&id, last.seq, last.hash, vec![]);
    device.apply_ack(&ack, t0()).unwrap();
    // The purge's own event, then acknowledged too: nothing left after it.
    let purged = device
        .purge(Duration::days(7), t0() + Duration::days(30))
        .unwrap();
    let p = device.events().unwrap().pop().unwrap();
    assert_eq!(Some(p.seq), purged.seq);
    let ack = office.ack(&id, p.seq, p.hash, vec![]);
    device.apply_ack(&ack, t0() + Duration::days(30)).unwrap();
    device
        .purge(Duration::days(7), t0() + Duration::days(60))
        .unwrap();
    // The office asks from 1: the device holds only the second purge's
    // event, after the ack at the first purge's: that is what it sends.
    let b = device.export_resend(1, 100).unwrap();
    assert_eq!(b.events.len(), 1);
    assert_eq!(b.acks, [handover_core::api::to_base64(&ack)]);
}
