//! Presence evidence (issue 21) through the `handover` binary: bookings
//! with DIGIPINs, doorstep outcomes with `--at`, and the office's findings
//! in `office report` (JSON and text).

use handover_core::codes::Programme;
use handover_tests::desk::*;
use handover_tests::*;
use serde_json::Value;

/// Dak Bhawan, New Delhi: the DIGIPIN specification's example.
const DAK_BHAWAN: &str = "28.622788,77.213033";
const DAK_BHAWAN_PIN: &str = "39J-49L-L8T4";

#[test]
fn outcomes_are_placed_against_the_addresss_digipin() {
    let (desk, _) = Desk::new(&[]);
    let refs: Vec<String> = (0..5)
        .map(|i| handover_core::s10::make("EE", 50_000_000 + i, "IN").unwrap())
        .collect();
    let mut csv = String::from("reference,service,addressee,address,mobile,cod_paise,DIGIPIN\n");
    for (i, r) in refs.iter().enumerate() {
        // Hyphens optional, any case.
        let pin = if i % 2 == 0 {
            DAK_BHAWAN_PIN.to_owned()
        } else {
            DAK_BHAWAN_PIN.replace('-', "").to_lowercase()
        };
        csv.push_str(&format!(
            "{r},parcel,R {i},{i} Sansad Marg,98{i:08},,{pin}\n"
        ));
    }
    let issued = desk.issue(&csv, &[]);
    assert!(issued.status.success(), "{}", stderr(&issued));
    desk.import();
    let code = desk.code(&refs[0]);
    let dev = |args: &[&str]| desk.device(args);
    let (office, device, id) = (&desk.office, &desk.device, &desk.device_id);
    // At the door; 2.2 km north (the post office); 200 m away; no fix.
    let v = dev(&[
        "device",
        "verify",
        "--reference",
        &refs[0],
        "--code",
        &code,
        "--at",
        DAK_BHAWAN,
    ]);
    assert_eq!(v.status.code(), Some(0), "{v:?}");
    for (r, at) in [
        (&refs[1], Some("28.6428,77.213033,15")),
        (&refs[2], Some("28.6246,77.213033,10")),
        (&refs[3], None),
    ] {
        let mut args = vec![
            "device",
            "exception",
            "--reference",
            r.as_str(),
            "--reason",
            "not-home",
        ];
        if let Some(at) = at {
            args.extend(["--at", at]);
        }
        let out = dev(&args);
        assert!(out.status.success(), "{out:?}");
    }
    let bad = dev(&[
        "device",
        "exception",
        "--reference",
        &refs[4],
        "--reason",
        "not-home",
        "--at",
        "95,77",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("latitude within ±90"));

    let batch = desk.d.path().join("batch.json");
    ok(&["device", "export", "--dir", p(device), "--out", p(&batch)]);
    let body = std::fs::read_to_string(&batch).unwrap();
    assert!(
        body.contains("\\\"at\\\":{\\\"lat_e7\\\":286227880"),
        "the fix is in the signed body"
    );
    ok(&[
        "office",
        "ingest",
        "--dir",
        p(office),
        "--batch",
        p(&batch),
        "--ack-out",
        p(&desk.d.path().join("ack.bin")),
    ]);
    let report: Value = desk.report();
    let presence = &report["presence"];
    assert_eq!(
        presence["counts"]["handed_over"]["at_address"], 1,
        "{presence}"
    );
    assert_eq!(presence["counts"]["exception"]["away"], 1);
    assert_eq!(presence["counts"]["exception"]["near"], 1);
    assert_eq!(presence["counts"]["exception"]["no_fix"], 1);
    let away = &presence["away"][0];
    assert_eq!(away["reference"], refs[1].as_str());
    assert_eq!(away["kind"], "exception");
    assert_eq!(away["reason"], "not_home");
    let metres = away["distance_m"].as_i64().unwrap();
    assert!((2100..2300).contains(&metres), "{metres}");
    let dev0 = &presence["devices"][0];
    assert_eq!(dev0["exceptions"], 3);
    assert_eq!(dev0["at_address"], 0);
    assert_eq!(dev0["without_fix"], 1);
    let text = ok(&["office", "report", "--dir", p(office)]);
    assert!(
        text.contains(&format!("EXCEPTION AWAY {}", id.trim()))
            && text.contains(&format!("{metres} m")),
        "{text}"
    );
    assert!(text.contains("0 of 3 exceptions at the address"), "{text}");
    assert!(
        !text.contains("28.6"),
        "no coordinates in the report: {text}"
    );
}

#[test]
fn a_bad_digipin_is_refused_with_its_line_and_column() {
    let csv = format!(
        "reference,service,addressee,address,mobile,cod_paise,digipin\n\
         {},parcel,A,B,9876543210,,39J-49L-L8T4\n\
         {},parcel,A,B,9876543211,,39J-49L-L8TA\n",
        handover_core::s10::make("EE", 51_000_000, "IN").unwrap(),
        handover_core::s10::make("EE", 51_000_001, "IN").unwrap()
    );
    let rows = handover_office::bookings::parse(
        Programme::Post,
        csv.as_bytes(),
        &handover_office::bookings::CodPayee::default(),
        2026,
    );
    let e = rows.unwrap_err().to_string();
    assert!(e.contains("line 3, column digipin"), "{e}");
    assert!(e.contains("2-9, C, F, J, K, L, M, P and T"), "{e}");
}
