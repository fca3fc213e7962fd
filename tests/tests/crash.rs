//! Durability under SIGKILL: a worker process does doorstep work (verify,
//! wrong codes, exceptions, payments, imports, acks, exports) and is killed
//! at random moments, many times. After every kill:
//!
//! * the store opens;
//! * every outcome the worker was told about (printed after its call
//!   returned) is on disk, as that event;
//! * no handed-over item returns to open, and no attempt count goes back;
//! * the chain verifies from its first event.
//!
//! At the end the office ingests the whole chain.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use handover_core::codes::Programme;
use handover_core::device::{Device, ItemState};
use handover_core::event::{verify_chain, EventKind, GENESIS};
use handover_office::issue::IssueRequest;
use handover_office::{bookings, Office};
use handover_tests::*;

const KILLS: u64 = 40;

fn write_codes(dir: &Path, codes: &BTreeMap<String, String>) {
    let text: String = codes.iter().map(|(r, c)| format!("{r} {c}\n")).collect();
    handover_office::files::replace_private(&dir.join("codes.txt"), text.as_bytes()).unwrap();
}

#[test]
fn sigkill_at_random_moments_loses_nothing_the_caller_was_told() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let now = Utc::now();
    let mut office = init_office(&dir.join("office"), "PO-1");
    let device_key = {
        let device = Device::open(dir.join("device.db")).unwrap();
        device.trust_office_key(office.public_key(), now).unwrap();
        device.identity().public_key
    };
    let device_id = office.enroll(device_key, "Postman 1", now).unwrap();
    let rows = bookings::parse(
        Programme::Post,
        post_csv(12).as_bytes(),
        office.cod_payee(),
        2026,
    )
    .unwrap();
    let issue = |office: &mut Office, reissue: &[String]| {
        office
            .issue(
                &IssueRequest {
                    device_id: &device_id,
                    programme: Programme::Post,
                    bookings: &rows,
                    policy: Some(test_policy()),
                    valid_from: now - Duration::hours(1),
                    valid_until: now + Duration::hours(8),
                    reissue,
                    missing: handover_office::issue::Missing::Withdraw,
                    now,
                },
                &|| {},
                |_| Ok(()),
            )
            .unwrap()
    };
    let first = issue(&mut office, &[]);
    Device::open(dir.join("device.db"))
        .unwrap()
        .import_manifest(&first.sealed, now)
        .unwrap();
    let mut codes: BTreeMap<String, String> = first
        .sms
        .iter()
        .map(|s| {
            let code = s.code.clone();
            (s.reference.clone(), code)
        })
        .collect();
    write_codes(dir, &codes);

    let worker = env!("CARGO_BIN_EXE_crash_worker");
    let mut told_accepted: BTreeSet<String> = BTreeSet::new();
    let mut attempts_seen: BTreeMap<(String, u32), u32> = BTreeMap::new();
    let mut total_lines = 0;
    for kill in 0..KILLS {
        if kill == KILLS / 2 {
            // Half way, the office re-issues two codes; the worker imports
            // the new revision whenever it comes to it.
            let reissued = issue(
                &mut office,
                &[rows[0].reference.clone(), rows[1].reference.clone()],
            );
            for s in &reissued.sms {
                let code = s.code.clone();
                codes.insert(s.reference.clone(), code);
            }
            handover_office::files::replace_private(&dir.join("manifest.bin"), &reissued.sealed)
                .unwrap();
            write_codes(dir, &codes);
        }
        let mut child = Command::new(worker)
            .arg(dir)
            .arg((kill * 7919 + 1).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<String>>()
        });
        // A pseudo-random moment between 2 and 60 ms into the run.
        std::thread::sleep(StdDuration::from_millis(2 + (kill * 37 + 11) % 59));
        child.kill().unwrap();
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        total_lines += lines.len();

        let device = Device::open(dir.join("device.db")).expect("the store opens after SIGKILL");
        let identity = device.identity();
        let events = device.events().unwrap();
        verify_chain(&events, 1, GENESIS, &identity.public_key).unwrap();
        let by_seq: BTreeMap<u64, EventKind> = events
            .iter()
            .map(|e| (e.seq, e.parse_body().unwrap().kind))
            .collect();
        for line in &lines {
            let parts: Vec<&str> = line.split(' ').collect();
            match parts[0] {
                "accepted" | "exception" | "paid" => {
                    let seq: u64 = parts[2].parse().unwrap();
                    let kind = by_seq
                        .get(&seq)
                        .unwrap_or_else(|| panic!("told {line}, not on disk"));
                    let want = match parts[0] {
                        "accepted" => "handed_over",
                        "exception" => "exception",
                        _ => "payment",
                    };
                    assert_eq!(kind.type_name(), want, "{line}");
                    assert_eq!(kind.subject().1, Some(parts[1]), "{line}");
                    if parts[0] == "accepted" {
                        told_accepted.insert(parts[1].to_owned());
                    }
                }
                "refused" => {
                    let item = device.item(parts[1]).unwrap().unwrap();
                    let left: u32 = parts[2].parse().unwrap();
                    assert!(
                        item.attempts_left <= left || item.code_version > 1,
                        "{line}: {} attempts left on disk",
                        item.attempts_left
                    );
                }
                _ => {}
            }
        }
        for item in device.items().unwrap() {
            if told_accepted.contains(&item.reference) {
                assert_eq!(
                    item.state,
                    ItemState::HandedOver,
                    "{} reopened",
                    item.reference
                );
            }
            let key = (item.reference.clone(), item.code_version);
            if let Some(before) = attempts_seen.insert(key, item.attempts_left) {
                assert!(
                    item.attempts_left <= before,
                    "{}: attempts left rose from {before} to {}",
                    item.reference,
                    item.attempts_left
                );
            }
        }
        // The office takes what is there and answers; the worker applies
        // the ack when it comes to it.
        let batch = device.export_batch(10_000).unwrap().to_bytes().unwrap();
        let ingested = office.ingest(&batch, Utc::now()).unwrap();
        handover_office::files::replace_private(&dir.join("ack.bin"), &ingested.ack).unwrap();
    }
    assert!(
        total_lines > 100,
        "the worker did too little work: {total_lines} outcomes"
    );

    // The office holds the whole chain, unflagged, with every handover.
    let device = Device::open(dir.join("device.db")).unwrap();
    let batch = device.export_batch(10_000).unwrap().to_bytes().unwrap();
    office.ingest(&batch, Utc::now()).unwrap();
    let report = office.report().unwrap();
    let (head, _) = device.head().unwrap();
    assert_eq!(office.device(&device_id).unwrap().head_seq, head);
    assert!(report.flagged.is_empty());
    let handed_over = device
        .events()
        .unwrap()
        .iter()
        .filter(|e| e.parse_body().unwrap().kind.type_name() == "handed_over")
        .count() as u64;
    assert!(report.handed_over >= handed_over);
    assert!(report.handed_over >= told_accepted.len() as u64);
}
