//! A whole day through the library, and the office's security checks.

use chrono::Utc;
use handover_cli::demo::{self, DemoConfig};
use handover_core::codes::Code;
use handover_core::device::VerifyOutcome;
use handover_core::manifest::Manifest;
use handover_core::sync::{Batch, Verdict};
use handover_office::Error;
use handover_tests::*;

#[test]
fn the_demo_day_reports_exactly_what_happened() {
    for seed in [1, 2, 99] {
        let out = demo::run(&DemoConfig {
            dir: None,
            items: 60,
            seed,
            verbose: false,
        })
        .unwrap();
        let (t, r) = (&out.tally, &out.report);
        assert_eq!(r.items_issued, 120);
        assert_eq!(r.handed_over, t.handed_over);
        assert_eq!(r.verified, t.handed_over - t.accepted_wrong_code);
        assert_eq!(r.code_mismatch, t.accepted_wrong_code);
        assert!(t.insider_acted, "the insider's scene did not run");
        assert_eq!(r.refused, t.refused);
        assert_eq!(r.locked, t.locked);
        // One impostor per device at least: each locks the item, or wins
        // with the policy's impostor odds and is then flagged.
        assert!(r.locked + r.code_mismatch >= 2);
        assert_eq!(r.exceptions, t.exceptions);
        assert_eq!(r.payments, t.payments);
        assert_eq!(r.collected_paise, t.collected_paise);
        assert_eq!(r.confirmation_sms, r.verified);
        assert!(r.certificates > 0 && r.certificates < r.verified);
        assert!(r.flagged.is_empty());
        assert_eq!(r.policies.len(), 2);
    }
}

#[test]
fn an_insiders_brute_forced_candidate_is_flagged_code_mismatch() {
    // 4 digits and 6-bit tags: plenty of candidates besides the right code.
    let policy = handover_core::codes::Policy {
        digits: 4,
        tag_bits: 6,
        iterations: 10,
        max_attempts: 3,
    };
    let day = Day::new(3, policy);
    let reference = day.rows[1].reference.clone();
    let right = day.code(&reference);
    let manifest = Manifest::open(&day.issued.sealed, &[day.office.public_key()]).unwrap();
    let item = manifest
        .items
        .iter()
        .find(|i| i.reference == reference)
        .unwrap();
    let candidate = (0..10_000)
        .map(|c| format!("{c:04}"))
        .find(|c| {
            *c != right
                && item
                    .verifier
                    .check(&Code::parse(c, 4).unwrap(), &reference, &policy)
        })
        .expect("a 6-bit tag leaves other candidates");
    assert!(matches!(
        day.device
            .verify(&reference, &candidate, Utc::now())
            .unwrap(),
        VerifyOutcome::Accepted { .. }
    ));
    let other = day.rows[0].reference.clone();
    let other_code = day.code(&other);
    day.device.verify(&other, &other_code, Utc::now()).unwrap();

    let batch = day.device.export_batch(100).unwrap();
    let ingested = day
        .office
        .ingest(&batch.to_bytes().unwrap(), Utc::now())
        .unwrap();
    assert_eq!(ingested.summary.verdicts["code_mismatch"], 1);
    assert_eq!(ingested.summary.verdicts["verified"], 1);
    day.device.apply_ack(&ingested.ack, Utc::now()).unwrap();
    let seq_of = |r: &str| {
        day.device
            .events()
            .unwrap()
            .iter()
            .find(|e| {
                let b = e.parse_body().unwrap();
                b.kind.type_name() == "handed_over" && String::from_utf8_lossy(&e.body).contains(r)
            })
            .unwrap()
            .seq
    };
    assert_eq!(
        day.device.verdict(seq_of(&reference)).unwrap(),
        Some(Verdict::CodeMismatch)
    );
    assert_eq!(
        day.device.verdict(seq_of(&other)).unwrap(),
        Some(Verdict::Verified)
    );
    let report = day.office.report().unwrap();
    assert_eq!(
        (
            report.code_mismatch,
            report.verified,
            report.confirmation_sms
        ),
        (1, 1, 1)
    );
    // Only the verified handover got a confirmation SMS.
    let sms = day.office.confirmations().unwrap();
    assert_eq!(sms.len(), 1);
    assert_eq!(sms[0].1, other);
}

#[test]
fn a_replayed_batch_changes_nothing_and_returns_the_same_ack() {
    let day = Day::new(4, test_policy());
    for b in day.rows.clone() {
        let code = day.code(&b.reference);
        day.device.verify(&b.reference, &code, Utc::now()).unwrap();
    }
    let bytes = day.device.export_batch(100).unwrap().to_bytes().unwrap();
    let first = day.office.ingest(&bytes, Utc::now()).unwrap();
    let report = day.office.report().unwrap();
    let second = day.office.ingest(&bytes, Utc::now()).unwrap();
    assert_eq!(second.ack, first.ack);
    assert_eq!((second.summary.new, second.summary.already_held), (0, 5));
    assert_eq!(day.office.report().unwrap(), report);
    assert_eq!(report.verified, 4);
}

#[test]
fn a_fork_is_refused_and_the_device_flagged() {
    let day = Day::new(3, test_policy());
    let (a, b) = (day.rows[0].reference.clone(), day.rows[1].reference.clone());
    let code_a = day.code(&a);
    day.device.verify(&a, &code_a, Utc::now()).unwrap();
    let first = day.device.export_batch(100).unwrap();
    day.office
        .ingest(&first.to_bytes().unwrap(), Utc::now())
        .unwrap();

    // A clone of the device (same key, same history up to seq 1) diverges at seq 2.
    let clone_path = day.dir.path().join("clone.db");
    std::fs::copy(day.dir.path().join("device.db"), &clone_path).unwrap();
    let _ = std::fs::copy(
        day.dir.path().join("device.db-wal"),
        day.dir.path().join("clone.db-wal"),
    );
    let clone = handover_core::device::Device::open(&clone_path).unwrap();
    assert_eq!(clone.identity(), day.device.identity());
    let code_b = day.code(&b);
    day.device.verify(&b, &code_b, Utc::now()).unwrap();
    clone
        .record_exception(
            &b,
            handover_core::event::ExceptionReason::NotHome,
            Utc::now(),
        )
        .unwrap();

    let honest = day.device.export_batch(100).unwrap();
    day.office
        .ingest(&honest.to_bytes().unwrap(), Utc::now())
        .unwrap();
    let forked = clone.export_batch(100).unwrap();
    let before = day.office.report().unwrap();
    let err = day
        .office
        .ingest(&forked.to_bytes().unwrap(), Utc::now())
        .unwrap_err();
    assert!(matches!(err, Error::Fork { seq: 3, .. }), "{err}");
    let rec = day.office.device(&day.device_id).unwrap();
    assert_eq!(rec.flagged.as_deref(), Some("fork"));
    let after = day.office.report().unwrap();
    assert_eq!(after.handed_over, before.handed_over);
    assert_eq!(after.flagged.len(), 1);
}

#[test]
fn a_revoked_device_is_refused() {
    let day = Day::new(2, test_policy());
    let r = day.rows[0].reference.clone();
    let code = day.code(&r);
    day.device.verify(&r, &code, Utc::now()).unwrap();
    day.office.revoke(&day.device_id, Utc::now()).unwrap();
    let bytes = day.device.export_batch(100).unwrap().to_bytes().unwrap();
    assert!(matches!(
        day.office.ingest(&bytes, Utc::now()),
        Err(Error::DeviceRevoked(_))
    ));
    assert_eq!(day.office.report().unwrap().handed_over, 0);
}

#[test]
fn tampered_events_and_gaps_are_refused_without_flagging() {
    let day = Day::new(2, test_policy());
    let r = day.rows[0].reference.clone();
    let code = day.code(&r);
    day.device.verify(&r, &code, Utc::now()).unwrap();
    let batch = day.device.export_batch(100).unwrap();
    // Skipping the first event: a gap.
    let mut gap = batch.clone();
    gap.events.remove(0);
    assert!(matches!(
        day.office.ingest(&gap.to_bytes().unwrap(), Utc::now()),
        Err(Error::Gap {
            first: 2,
            head: 0,
            ..
        })
    ));
    // Rewriting the handed-over code in the body.
    let mut forged: Batch = batch.clone();
    let body = String::from_utf8(forged.events[1].body.clone()).unwrap();
    forged.events[1].body = body
        .replace(&format!("\"code\":\"{code}\""), "\"code\":\"000000\"")
        .into_bytes();
    assert_ne!(forged.events[1].body, batch.events[1].body);
    assert!(matches!(
        day.office.ingest(&forged.to_bytes().unwrap(), Utc::now()),
        Err(Error::BadEvent { seq: 2, .. })
    ));
    // Anyone can send bytes: a forgery refuses the batch, not the device.
    assert_eq!(day.office.device(&day.device_id).unwrap().flagged, None);
    assert_eq!(day.office.report().unwrap().handed_over, 0);
    // An unknown device.
    let stranger = handover_core::device::Device::open(day.dir.path().join("stranger.db")).unwrap();
    let bytes = stranger.export_batch(10).unwrap().to_bytes().unwrap();
    assert!(matches!(
        day.office.ingest(&bytes, Utc::now()),
        Err(Error::UnknownDevice(_))
    ));
}

#[test]
fn a_tampered_ack_is_refused_by_the_device() {
    let day = Day::new(2, test_policy());
    let bytes = day.device.export_batch(100).unwrap().to_bytes().unwrap();
    let ack = day.office.ingest(&bytes, Utc::now()).unwrap().ack;
    for i in (0..ack.len()).step_by(3) {
        let mut t = ack.clone();
        t[i] ^= 0x10;
        assert!(day.device.apply_ack(&t, Utc::now()).is_err(), "byte {i}");
    }
    assert_eq!(day.device.pending_count().unwrap(), 1);
    day.device.apply_ack(&ack, Utc::now()).unwrap();
    assert_eq!(day.device.pending_count().unwrap(), 0);
}

#[test]
fn reissue_unlocks_a_locked_item_with_a_new_code() {
    let day = Day::new(2, test_policy());
    let r = day.rows[0].reference.clone();
    let old = day.code(&r);
    let wrong = if old == "000000" { "111111" } else { "000000" };
    for _ in 0..3 {
        day.device.verify(&r, wrong, Utc::now()).unwrap();
    }
    assert_eq!(
        day.device.verify(&r, &old, Utc::now()).unwrap(),
        VerifyOutcome::Locked
    );
    let now = Utc::now();
    let item = day.device.item(&r).unwrap().unwrap();
    let reissued = day
        .office
        .issue(
            &handover_office::issue::IssueRequest {
                device_id: &day.device_id,
                programme: handover_core::codes::Programme::Post,
                bookings: &day.rows,
                policy: Some(test_policy()),
                valid_from: item.valid_from,
                valid_until: item.valid_until,
                reissue: std::slice::from_ref(&r),
                missing: handover_office::issue::Missing::Withdraw,
                now,
            },
            &|| {},
            |_| Ok(()),
        )
        .unwrap();
    assert_eq!(reissued.revision, 2);
    assert_eq!(
        reissued.sms.len(),
        1,
        "only the re-issued item gets a new SMS"
    );
    let new = reissued.sms[0].code.clone();
    day.device.import_manifest(&reissued.sealed, now).unwrap();
    assert!(matches!(
        day.device.verify(&r, &new, now).unwrap(),
        VerifyOutcome::Accepted { .. }
    ));
    // The other item kept its code.
    let other = day.rows[1].reference.clone();
    let code = day.code(&other);
    assert!(matches!(
        day.device.verify(&other, &code, now).unwrap(),
        VerifyOutcome::Accepted { .. }
    ));
    let bytes = day.device.export_batch(100).unwrap().to_bytes().unwrap();
    let s = day.office.ingest(&bytes, now).unwrap().summary;
    assert_eq!(s.verdicts["verified"], 2);
}
