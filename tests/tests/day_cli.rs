//! A whole day through the `handover` binary: the report's counts equal what
//! the script did.

use std::path::Path;

use handover_tests::*;
use serde_json::Value;

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The SMS file's rows as (mobile, reference, code): the code as the
/// recipient reads it, from the office (not out of the wording).
fn sms_codes(path: &Path, office: &Path) -> Vec<(String, String, String)> {
    let office = handover_office::Office::open(office).unwrap();
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("mobile,reference,message"));
    lines
        .map(|l| {
            let (mobile, rest) = l.split_once(',').unwrap();
            let (reference, message) = rest.split_once(',').unwrap();
            let code = office
                .current_code(handover_core::codes::Programme::Post, reference)
                .unwrap();
            assert!(message.contains(&code), "the SMS carries its code");
            (mobile.to_owned(), reference.to_owned(), code)
        })
        .collect()
}

fn ingest_json(office: &Path, batch: &Path, ack: &Path) -> Value {
    let out = ok(&[
        "office",
        "ingest",
        "--dir",
        p(office),
        "--batch",
        p(batch),
        "--ack-out",
        p(ack),
        "--json",
    ]);
    serde_json::from_str(&out).unwrap()
}

#[test]
fn a_day_through_the_binary() {
    let d = tempfile::tempdir().unwrap();
    let (office, device) = (d.path().join("office"), d.path().join("device"));
    let office_key = ok(&[
        "office",
        "init",
        "--dir",
        p(&office),
        "--office-id",
        "PO-411001",
        "--cod-upi",
        "indiapost.cod@sbi",
        "--cod-name",
        "India Post",
    ]);
    let office_key = office_key.trim();
    assert_eq!(office_key.len(), 64);
    let out = ok(&[
        "device",
        "init",
        "--dir",
        p(&device),
        "--office-key",
        office_key,
    ]);
    let mut lines = out.lines();
    let (device_key, device_id) = (lines.next().unwrap(), lines.next().unwrap());
    let enrolled = ok(&[
        "office",
        "enroll",
        "--dir",
        p(&office),
        "--device-key",
        device_key,
        "--assignee",
        "Postman 3",
    ]);
    assert_eq!(enrolled.trim(), device_id);

    let csv = d.path().join("bookings.csv");
    std::fs::write(&csv, post_csv(8)).unwrap();
    let (manifest, sms) = (d.path().join("m.bin"), d.path().join("sms.csv"));
    let issued = ok(&[
        "office",
        "issue",
        "--dir",
        p(&office),
        "--device",
        device_id,
        "--programme",
        "post",
        "--bookings",
        p(&csv),
        "--out",
        p(&manifest),
        "--sms-out",
        p(&sms),
        "--policy",
        "digits=6,tag_bits=64,iterations=10,max_attempts=3",
    ]);
    assert!(issued.contains("8 items"), "{issued}");
    assert!(issued.contains("impostor accepted"), "{issued}");
    let codes = sms_codes(&sms, &office);
    assert_eq!(codes.len(), 8);
    assert!(codes.iter().all(|(m, ..)| m.len() == 10));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&sms).unwrap().permissions().mode() & 0o777,
            0o600
        );
        for f in std::fs::read_dir(office.join("keys")).unwrap() {
            assert_eq!(
                f.unwrap().metadata().unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
    let import = || {
        ok(&[
            "device",
            "import",
            "--dir",
            p(&device),
            "--manifest",
            p(&manifest),
        ])
    };
    assert!(import().contains("8 items"));
    assert!(import().contains("nothing changed"));

    let dir = p(&device);
    let verify = |r: &str, code: &str| {
        run(&[
            "device",
            "verify",
            "--dir",
            dir,
            "--reference",
            r,
            "--code",
            code,
        ])
    };
    let wrong = |c: &str| {
        if c == "000000" {
            "111111".to_string()
        } else {
            "000000".to_string()
        }
    };
    // Items 0..3: right code; 3: typo then right; 4: impostor locks it;
    // 5: not at home; 6: refused; 7: left pending. COD on 0, 3, 6.
    let mut handed = 0;
    let mut refused = 0;
    for (i, (_, r, c)) in codes.iter().enumerate() {
        match i {
            0 => {
                // Paid as it changes hands: not before the code.
                let early = run(&["device", "pay", "--dir", dir, "--reference", r, "--cash"]);
                assert_eq!(early.status.code(), Some(2));
                assert!(String::from_utf8_lossy(&early.stderr).contains("not yet handed over"));
                // The code as the recipient reads it out, in two groups.
                let spaced = format!("{} {}", &c[..3], &c[3..]);
                assert_eq!(verify(r, &spaced).status.code(), Some(0));
                ok(&["device", "pay", "--dir", dir, "--reference", r, "--cash"]);
                handed += 1;
            }
            1 | 2 => {
                assert_eq!(verify(r, c).status.code(), Some(0));
                handed += 1;
            }
            3 => {
                let upi = ok(&["device", "upi", "--dir", dir, "--reference", r]);
                assert!(
                    upi.starts_with(
                        "upi://pay?pa=indiapost.cod@sbi&pn=India%20Post&am=499.00&cu=INR&tr="
                    ),
                    "{upi}"
                );
                assert!(upi.contains('█'));
                let out = verify(r, &wrong(c));
                assert_eq!(out.status.code(), Some(1));
                assert!(String::from_utf8_lossy(&out.stdout).contains("2 attempts left"));
                refused += 1;
                assert_eq!(verify(r, c).status.code(), Some(0));
                handed += 1;
                ok(&[
                    "device",
                    "pay",
                    "--dir",
                    dir,
                    "--reference",
                    r,
                    "--upi-ref",
                    "612345678901",
                ]);
            }
            4 => {
                for _ in 0..3 {
                    let out = verify(r, &wrong(c));
                    assert_eq!(out.status.code(), Some(1));
                    refused += 1;
                }
                let out = verify(r, c);
                assert_eq!(out.status.code(), Some(1));
                assert!(String::from_utf8_lossy(&out.stdout).contains("locked"));
            }
            5 | 6 => {
                let reason = if i == 5 { "not-home" } else { "refused" };
                ok(&[
                    "device",
                    "exception",
                    "--dir",
                    dir,
                    "--reference",
                    r,
                    "--reason",
                    reason,
                ]);
            }
            _ => {}
        }
    }
    let list: Value =
        serde_json::from_str(&ok(&["device", "list", "--dir", dir, "--json"])).unwrap();
    let states: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        [
            "handed_over",
            "handed_over",
            "handed_over",
            "handed_over",
            "locked",
            "exception",
            "exception",
            "pending"
        ]
    );

    let (batch, ack) = (d.path().join("batch.json"), d.path().join("ack.bin"));
    ok(&["device", "export", "--dir", dir, "--out", p(&batch)]);
    let summary = ingest_json(&office, &batch, &ack);
    assert_eq!(summary["device_id"], device_id);
    assert_eq!(summary["verdicts"]["verified"], handed);
    let first_ack = std::fs::read(&ack).unwrap();
    // Replaying the batch returns the same ack and changes nothing.
    let again = ingest_json(&office, &batch, &ack);
    assert_eq!(again["new"], 0);
    assert_eq!(std::fs::read(&ack).unwrap(), first_ack);
    assert!(
        ok(&["device", "ack", "--dir", dir, "--ack", p(&ack)]).contains("0 events left to send")
    );

    let report: Value =
        serde_json::from_str(&ok(&["office", "report", "--dir", p(&office), "--json"])).unwrap();
    assert_eq!(report["items_issued"], 8);
    assert_eq!(report["handed_over"], handed);
    assert_eq!(report["verified"], handed);
    assert_eq!(report["code_mismatch"], 0);
    assert_eq!(report["refused"], refused);
    assert_eq!(report["locked"], 1);
    assert_eq!(report["exceptions"]["not_home"], 1);
    assert_eq!(report["exceptions"]["refused"], 1);
    assert_eq!(report["payments"]["cash"], 1);
    assert_eq!(report["payments"]["upi"], 1);
    assert_eq!(report["collected_paise"], 2 * 49_900);
    assert_eq!(report["confirmation_sms"], handed);
    assert!(ok(&["office", "report", "--dir", p(&office)]).contains("verified at the office"));
}

#[test]
fn errors_are_one_line_with_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let out = run(&[
        "device",
        "verify",
        "--dir",
        p(d.path()),
        "--reference",
        "X",
        "--code",
        "1234",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("handover device init"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1);
    let out = run(&["office", "report", "--dir", p(d.path())]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("handover office init"));
    let office = d.path().join("o");
    ok(&["office", "init", "--dir", p(&office)]);
    let out = run(&["office", "init", "--dir", p(&office)]);
    assert_eq!(out.status.code(), Some(2), "keys are never overwritten");
}

#[test]
fn the_demo_runs_and_exits_zero() {
    let d = tempfile::tempdir().unwrap();
    let out = ok(&["demo", "--dir", p(d.path()), "--items", "30", "--seed", "5"]);
    assert!(out.contains("match what happened at the doors"), "{out}");
    assert!(d.path().join("office/office.db").exists());
    assert!(out.contains("over HTTP"), "{out}");
    // The SMS went through the outbox and its file sender.
    let sms = std::fs::read_to_string(d.path().join("office/sms.csv")).unwrap();
    assert_eq!(sms.lines().next(), Some("mobile,reference,message"));
    assert!(
        sms.lines().count() > 60,
        "codes and confirmations: {}",
        sms.lines().count()
    );
}
