//! The attacks of the protocol-hardening review, each as a test that failed
//! on the code before the fix. docs/threat-model.md lists them with their
//! mitigations and residual figures.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use handover_core::codes::{Code, Policy, Programme};
use handover_core::device::{Device, VerifyOutcome};
use handover_core::event::{Event, EventBody, EventKind, ExceptionReason, PaymentMethod};
use handover_core::manifest::Manifest;
use handover_office::issue::IssueRequest;
use handover_tests::rogue::{Rogue, RogueDay};
use handover_tests::*;

/// An office with a rogue device enrolled and `n` post items issued to it.
fn rogue_day(
    n: u32,
    policy: Policy,
) -> (
    tempfile::TempDir,
    handover_office::Office,
    Rogue,
    Vec<String>,
    handover_office::issue::Issued,
) {
    let day = RogueDay::new(Programme::Post, n, policy);
    (day.dir, day.office, day.rogue, day.references, day.issued)
}

fn reissue(day: &mut Day, policy: Policy, names: &[String]) -> handover_office::issue::Issued {
    let item = day.device.items().unwrap()[0].clone();
    day.office
        .issue(
            &IssueRequest {
                device_id: &day.device_id,
                programme: Programme::Post,
                bookings: &day.rows,
                policy: Some(policy),
                valid_from: item.valid_from,
                valid_until: item.valid_until,
                reissue: names,
                missing: handover_office::issue::Missing::Withdraw,
                now: Utc::now(),
            },
            &|| {},
            |_| Ok(()),
        )
        .unwrap()
}

/// Every code of `digits` digits that the manifest's verifier of `reference` accepts.
fn candidates(
    sealed: &[u8],
    office_key: handover_core::keys::PublicKey,
    reference: &str,
) -> BTreeSet<String> {
    let m = Manifest::open(sealed, &[office_key]).unwrap();
    let item = m.items.iter().find(|i| i.reference == reference).unwrap();
    let policy = item.policy_in(&m).unwrap();
    let n = 10u32.pow(u32::from(policy.digits));
    (0..n)
        .map(|c| format!("{c:0w$}", w = usize::from(policy.digits)))
        .filter(|c| {
            item.verifier
                .check(&Code::parse(c, policy.digits).unwrap(), reference, policy)
        })
        .collect()
}

fn brute_force_policy() -> Policy {
    // 4 digits and 4-bit tags: about 625 candidates per verifier.
    Policy {
        digits: 4,
        tag_bits: 4,
        iterations: 1,
        max_attempts: 3,
    }
}

// 1. Re-salting across revisions.
#[test]
fn revisions_leave_an_insider_exactly_the_candidates_of_one() {
    let mut day = Day::new(3, brute_force_policy());
    let target = day.rows[0].reference.clone();
    let other = day.rows[1].reference.clone();
    let key = day.office.public_key();
    let one = candidates(&day.issued.sealed, key, &target);
    assert!(one.contains(&day.code(&target)));
    let rev2 = reissue(&mut day, brute_force_policy(), &[]);
    let rev3 = reissue(&mut day, brute_force_policy(), std::slice::from_ref(&other));
    let two: BTreeSet<_> = one
        .intersection(&candidates(&rev2.sealed, key, &target))
        .cloned()
        .collect();
    let three: BTreeSet<_> = two
        .intersection(&candidates(&rev3.sealed, key, &target))
        .cloned()
        .collect();
    assert_eq!(two, one, "a second revision narrowed the candidates");
    assert_eq!(
        three, one,
        "a re-issue of another item narrowed the candidates"
    );
}

// 2. A policy change in a revision.
#[test]
fn a_policy_change_keeps_every_recipients_code_working() {
    let mut day = Day::new(2, test_policy());
    let r = day.rows[0].reference.clone();
    let eight = Policy {
        digits: 8,
        ..test_policy()
    };
    let rev2 = reissue(&mut day, eight, &[]);
    day.device
        .import_manifest(&rev2.sealed, Utc::now())
        .unwrap();
    // The code the recipient holds now: the latest SMS they were sent.
    let latest = rev2
        .sms
        .iter()
        .find(|s| s.reference == r)
        .map(|s| s.code.clone())
        .unwrap_or_else(|| day.code(&r));
    assert!(
        matches!(
            day.device.verify(&r, &latest, Utc::now()).unwrap(),
            VerifyOutcome::Accepted { .. }
        ),
        "the recipient's code stopped working after the policy change"
    );
    let bytes = day.device.export_batch(100).unwrap().to_bytes().unwrap();
    let s = day.office.ingest(&bytes, Utc::now()).unwrap().summary;
    assert_eq!(s.verdicts.get("verified"), Some(&1));
}

// 3. Superseded code versions.
#[test]
fn a_handover_with_a_superseded_code_version_is_not_verified() {
    let mut day = Day::new(2, test_policy());
    let r = day.rows[0].reference.clone();
    let old = day.code(&r);
    // The office re-issues the code (say the SMS was lost); the device has
    // not imported the new revision and takes the old code at the door.
    reissue(&mut day, test_policy(), std::slice::from_ref(&r));
    assert!(matches!(
        day.device.verify(&r, &old, Utc::now()).unwrap(),
        VerifyOutcome::Accepted { .. }
    ));
    let bytes = day.device.export_batch(100).unwrap().to_bytes().unwrap();
    let s = day.office.ingest(&bytes, Utc::now()).unwrap().summary;
    assert_eq!(s.verdicts.get("verified"), None, "{:?}", s.verdicts);
    assert_eq!(s.verdicts.get("superseded"), Some(&1), "{:?}", s.verdicts);
    assert!(day.office.confirmations().unwrap().is_empty());
}

fn kinds(device: &Device) -> Vec<String> {
    device
        .events()
        .unwrap()
        .iter()
        .map(|e| e.parse_body().unwrap().kind.type_name().to_owned())
        .collect()
}

// 4. The clock walked back in small steps.
#[test]
fn a_clock_walked_back_in_small_steps_is_caught_by_device_and_office() {
    let day = Day::new(6, test_policy());
    let t = Utc::now();
    for (i, b) in day.rows.clone().iter().enumerate() {
        let at = t - Duration::minutes(4 * i as i64);
        day.device
            .record_exception(&b.reference, ExceptionReason::NotHome, at)
            .unwrap();
    }
    assert!(
        kinds(&day.device).contains(&"clock_anomaly".to_owned()),
        "20 minutes back in 4-minute steps went unrecorded: {:?}",
        kinds(&day.device)
    );
    // The office derives it from the signed bodies alone: a modified app
    // that never raises the flag is caught too.
    let (_d, office, mut rogue, refs, _) = rogue_day(4, test_policy());
    let mut batch = vec![];
    for (i, r) in refs.iter().enumerate() {
        let at = t - Duration::minutes(4 * i as i64);
        batch.push(rogue.push(
            at,
            EventKind::Exception {
                manifest_id: "x".into(),
                reference: r.clone(),
                reason: ExceptionReason::NotHome,
            },
        ));
    }
    office.ingest(&rogue.batch(batch), t).unwrap();
    let report = office.report().unwrap();
    let json = serde_json::to_value(&report).unwrap();
    assert!(
        json["clock_suspect_events"].as_u64().unwrap_or(0) >= 1,
        "the office did not derive clock suspicion: {json}"
    );
}

// 5. A stale ack clears clock suspicion.
#[test]
fn a_stale_ack_does_not_clear_clock_suspicion() {
    let day = Day::new(3, test_policy());
    let t = Utc::now();
    let bytes = day.device.export_batch(100).unwrap().to_bytes().unwrap();
    let stale = day.office.ingest(&bytes, t).unwrap().ack;
    // Later the clock is set back an hour: an anomaly, and suspicion.
    let r0 = day.rows[0].reference.clone();
    let r1 = day.rows[1].reference.clone();
    day.device
        .record_exception(&r0, ExceptionReason::NotHome, t - Duration::hours(1))
        .unwrap();
    // The ack signed before the anomaly is applied now.
    day.device.apply_ack(&stale, t).unwrap();
    let e = day
        .device
        .record_exception(&r1, ExceptionReason::NotHome, t - Duration::hours(1))
        .unwrap();
    assert!(
        e.parse_body().unwrap().clock_suspect,
        "an ack from before the anomaly cleared the suspicion"
    );
}

// 6. Purge, then re-import.
#[test]
fn purge_then_reimport_resets_no_lockout_and_reopens_no_handover() {
    let day = Day::new(3, test_policy());
    let t = Utc::now();
    let (done, locked) = (day.rows[0].reference.clone(), day.rows[1].reference.clone());
    let code = day.code(&done);
    day.device.verify(&done, &code, t).unwrap();
    let right = day.code(&locked);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    for _ in 0..3 {
        day.device.verify(&locked, wrong, t).unwrap();
    }
    let bytes = day.device.export_batch(100).unwrap().to_bytes().unwrap();
    let ack = day.office.ingest(&bytes, t).unwrap().ack;
    day.device.apply_ack(&ack, t).unwrap();
    // The clock is set a month forward and everything purged...
    let _ = day.device.purge(Duration::days(1), t + Duration::days(30));
    // ...then back, and the same manifest imported again.
    let again = day.device.import_manifest(&day.issued.sealed, t);
    let done_now = day.device.verify(&done, &code, t);
    let locked_now = day.device.verify(&locked, &right, t);
    assert!(
        !matches!(done_now, Ok(VerifyOutcome::Accepted { .. })),
        "a handed-over item was handed over again (re-import: {again:?})"
    );
    assert!(
        !matches!(locked_now, Ok(VerifyOutcome::Accepted { .. })),
        "a locked item was unlocked by purge and re-import"
    );
}

#[test]
fn the_office_flags_reimports_attempts_beyond_the_limit_and_handovers_after_a_lock() {
    let (_d, office, mut rogue, refs, issued) = rogue_day(3, test_policy());
    let t = Utc::now();
    let m = &issued.manifest_id;
    let imported = EventKind::ManifestImported {
        manifest_id: m.clone(),
        revision: 1,
        items: 3,
    };
    rogue.push(t, imported.clone());
    rogue.push(t, imported);
    for left in [2, 1, 0, 0, 0] {
        rogue.push(
            t,
            EventKind::AttemptFailed {
                manifest_id: m.clone(),
                reference: refs[0].clone(),
                code_version: 1,
                attempts_left: left,
            },
        );
    }
    rogue.push(
        t,
        EventKind::Locked {
            manifest_id: m.clone(),
            reference: refs[1].clone(),
            code_version: 1,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    // The right code of refs[1], as the office derives it, after the lock.
    let _ = dir;
    let code = {
        let key = handover_office::Office::open(office.dir()).unwrap();
        drop(key);
        let sms = issued.sms.iter().find(|s| s.reference == refs[1]).unwrap();
        sms.code.clone()
    };
    rogue.push(
        t,
        EventKind::HandedOver {
            manifest_id: m.clone(),
            revision: 1,
            reference: refs[1].clone(),
            code_version: 1,
            code: Code::parse(&code, 6).unwrap(),
        },
    );
    let s = office
        .ingest(&rogue.batch(rogue.events.clone()), t)
        .unwrap()
        .summary;
    assert_eq!(s.verdicts.get("reimported"), Some(&1), "{:?}", s.verdicts);
    assert_eq!(
        s.verdicts.get("attempts_exceeded"),
        Some(&2),
        "{:?}",
        s.verdicts
    );
    assert_eq!(s.verdicts.get("after_lock"), Some(&1), "{:?}", s.verdicts);
    assert_eq!(s.verdicts.get("verified"), None);
    assert!(office.confirmations().unwrap().is_empty());
}

// 7. Forged batches flag honest devices.
#[test]
fn a_forged_copy_of_a_batch_never_flags_the_honest_device() {
    type Flip = fn(&mut Event);
    let flips: [(&str, Flip); 4] = [
        ("body", |e| e.body[10] ^= 0x01),
        ("hash", |e| e.hash[0] ^= 0x01),
        ("signature", |e| e.signature[0] ^= 0x01),
        ("prev_hash", |e| e.prev_hash[31] ^= 0x80),
    ];
    for (field, flip) in flips {
        let day = Day::new(2, test_policy());
        let r = day.rows[0].reference.clone();
        let code = day.code(&r);
        day.device.verify(&r, &code, Utc::now()).unwrap();
        let batch = day.device.export_batch(100).unwrap();
        day.office
            .ingest(&batch.to_bytes().unwrap(), Utc::now())
            .unwrap();
        // Anyone who saw the batch flips one bit of a held event and sends it.
        let mut forged = batch.clone();
        flip(&mut forged.events[1]);
        assert!(
            day.office
                .ingest(&forged.to_bytes().unwrap(), Utc::now())
                .is_err(),
            "a copy with its {field} changed was taken"
        );
        // And a later garbage event beyond the head.
        let mut garbage = batch.clone();
        let mut extra = garbage.events[1].clone();
        extra.seq = 3;
        extra.prev_hash = extra.hash;
        garbage.events.push(extra);
        assert!(day
            .office
            .ingest(&garbage.to_bytes().unwrap(), Utc::now())
            .is_err());
        assert_eq!(
            day.office.device(&day.device_id).unwrap().flagged,
            None,
            "a copy with its {field} changed flagged the honest device"
        );
        // The honest device syncs on as if nothing happened.
        let again = day.office.ingest(&batch.to_bytes().unwrap(), Utc::now());
        assert!(again.is_ok());
    }
}

#[test]
fn a_genuine_fork_is_flagged_with_its_evidence_and_the_flag_is_never_overwritten() {
    let (_d, office, mut rogue, refs, _) = rogue_day(2, test_policy());
    let t = Utc::now();
    let first = rogue.push(
        t,
        EventKind::Exception {
            manifest_id: "m".into(),
            reference: refs[0].clone(),
            reason: ExceptionReason::NotHome,
        },
    );
    let second = rogue.push(
        t,
        EventKind::Exception {
            manifest_id: "m".into(),
            reference: refs[1].clone(),
            reason: ExceptionReason::NotHome,
        },
    );
    office
        .ingest(&rogue.batch(vec![first.clone(), second.clone()]), t)
        .unwrap();
    // The same key signs another event at seq 2, chained on seq 1: a clone.
    let body = EventBody {
        device_id: rogue.device_id.clone(),
        seq: 2,
        time: t,
        counter: t.timestamp_millis() + 5,
        clock_suspect: false,
        kind: EventKind::Exception {
            manifest_id: "m".into(),
            reference: refs[1].clone(),
            reason: ExceptionReason::Refused,
        },
        at: None,
    };
    let fork = Event::create(first.hash, &body, &rogue.key).unwrap();
    assert!(office.ingest(&rogue.batch(vec![fork]), t).is_err());
    assert_eq!(
        office.device(&rogue.device_id).unwrap().flagged.as_deref(),
        Some("fork")
    );
    // Garbage afterwards does not overwrite the flag.
    let mut junk = second.clone();
    junk.seq = 3;
    junk.prev_hash = second.hash;
    let _ = office.ingest(&rogue.batch(vec![junk]), t);
    assert_eq!(
        office.device(&rogue.device_id).unwrap().flagged.as_deref(),
        Some("fork")
    );
}

// 8. Payments.
#[test]
fn payments_are_checked_against_the_items_cash_on_delivery() {
    // post_csv gives cash on delivery (49900 paise) to every third item.
    let (_d, office, mut rogue, refs, issued) = rogue_day(3, test_policy());
    let t = Utc::now();
    let m = issued.manifest_id.clone();
    let pay = |reference: &str, amount: u64, method: PaymentMethod| EventKind::Payment {
        manifest_id: m.clone(),
        reference: reference.to_owned(),
        amount_paise: amount,
        method,
    };
    let utr = || PaymentMethod::Upi {
        txn_ref: "612345678901".into(),
    };
    rogue.push(t, pay(&refs[0], 49_900, utr())); // right
    rogue.push(t, pay(&refs[0], 49_900, PaymentMethod::Cash)); // twice
    rogue.push(t, pay(&refs[1], 10_000, PaymentMethod::Cash)); // no COD on it
    rogue.push(
        t,
        pay(
            &refs[0],
            u64::MAX,
            PaymentMethod::Upi {
                txn_ref: "ABC".into(),
            },
        ),
    ); // absurd amount, not a UTR
    let s = office
        .ingest(&rogue.batch(rogue.events.clone()), t)
        .unwrap()
        .summary;
    assert_eq!(
        s.verdicts.get("payment_mismatch"),
        Some(&3),
        "{:?}",
        s.verdicts
    );
    let report = office.report().unwrap();
    assert_eq!(report.collected_paise, 49_900);
}

#[test]
fn the_device_takes_only_a_twelve_digit_upi_reference() {
    let day = Day::new(1, test_policy());
    let r = day.rows[0].reference.clone();
    day.device.verify(&r, &day.code(&r), Utc::now()).unwrap();
    assert!(day
        .device
        .record_payment(
            &r,
            PaymentMethod::Upi {
                txn_ref: "ABC".into()
            },
            Utc::now()
        )
        .is_err());
    day.device
        .record_payment(
            &r,
            PaymentMethod::Upi {
                txn_ref: "612345678901".into(),
            },
            Utc::now(),
        )
        .unwrap();
}

// 9. Files and panics.
#[test]
fn extreme_times_are_typed_errors_not_panics() {
    let day = Day::new(1, test_policy());
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        day.device.purge(Duration::days(100_000_000), Utc::now())
    }));
    assert!(
        matches!(result, Ok(Err(_))),
        "purge with an extreme retention panicked or passed"
    );
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        day.device
            .purge(Duration::days(1), DateTime::<Utc>::MIN_UTC)
    }));
    assert!(
        matches!(result, Ok(Err(_))),
        "purge at the earliest time panicked or passed"
    );
}

#[test]
fn two_first_opens_at_once_both_succeed() {
    for _ in 0..20 {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("device.db");
        let barrier = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            let a = s.spawn(|| {
                barrier.wait();
                Device::open(&path).map(|d| d.identity())
            });
            let b = s.spawn(|| {
                barrier.wait();
                Device::open(&path).map(|d| d.identity())
            });
            let (a, b) = (a.join().unwrap(), b.join().unwrap());
            let (a, b) = (a.unwrap(), b.unwrap());
            assert_eq!(a, b, "two keys for one device");
        });
    }
}

#[test]
fn issued_debug_hides_the_manifest_bytes() {
    let day = Day::new(1, test_policy());
    let shown = format!("{:?}", day.issued);
    assert!(shown.len() < 400, "{shown}");
}
