//! Bad bookings files: a clear error naming line and column, nothing issued.

use std::path::Path;

use handover_core::codes::Programme;
use handover_office::bookings::{parse, CodPayee};
use handover_tests::*;

const POST_HEADER: &str = "reference,service,addressee,address,mobile,cod_paise\n";
const VAX_HEADER: &str = "reference,name,year_of_birth,vaccine,dose,slot,mobile\n";

fn err(programme: Programme, csv: &str) -> String {
    parse(programme, csv.as_bytes(), &CodPayee::default(), 2026)
        .unwrap_err()
        .to_string()
}

#[test]
fn library_names_line_and_column() {
    let good = "RR287043775IN,registered,A. Kumar,12 MG Road,9876543210,\n";
    assert!(parse(
        Programme::Post,
        format!("{POST_HEADER}{good}").as_bytes(),
        &CodPayee::default(),
        2026
    )
    .is_ok());
    let cases = [
        (
            Programme::Post,
            String::new(),
            "line 1, column -: empty file",
        ),
        (
            Programme::Post,
            POST_HEADER.to_string(),
            "line 2, column -: no bookings",
        ),
        (
            Programme::Post,
            "reference,service,addressee,address,mobile\nRR287043775IN,registered,A,B,9876543210\n"
                .into(),
            "line 1, column cod_paise: missing column",
        ),
        (
            Programme::Post,
            format!("{POST_HEADER}{good}RR287043776IN,parcel,B,C,9876543211,\n"),
            "line 3, column reference: invalid S10",
        ),
        (
            Programme::Post,
            format!("{POST_HEADER}{}", good.replace(",\n", ",12.50\n")),
            "line 2, column cod_paise: must be a whole number",
        ),
        (
            Programme::Post,
            format!("{POST_HEADER}{}", good.replace(",\n", ",abc\n")),
            "line 2, column cod_paise",
        ),
        (
            Programme::Post,
            format!("{POST_HEADER}{}", good.replace("registered", "courier")),
            "line 2, column service",
        ),
        (
            Programme::Post,
            format!("{POST_HEADER}{}", good.replace("9876543210", "12345")),
            "line 2, column mobile",
        ),
        (
            Programme::Post,
            format!("{POST_HEADER}{good}{good}"),
            "line 3, column reference: appears twice",
        ),
        (
            Programme::Post,
            format!("{POST_HEADER}RR287043775IN,registered\n"),
            "line 2, column -: row has 2 fields",
        ),
        (
            Programme::Vaccination,
            format!("{VAX_HEADER}APPT-1,S. Rao,1890,Covishield,1,09:00,9876543210\n"),
            "line 2, column year_of_birth",
        ),
        (
            Programme::Vaccination,
            format!("{VAX_HEADER}APPT-1,S. Rao,2031,Covishield,1,09:00,9876543210\n"),
            "line 2, column year_of_birth",
        ),
        (
            Programme::Vaccination,
            format!("{VAX_HEADER}APPT-1,S. Rao,1990,Covishield,0,09:00,9876543210\n"),
            "line 2, column dose",
        ),
        (
            Programme::Vaccination,
            format!("{VAX_HEADER}APPT 1,S. Rao,1990,Covishield,1,09:00,9876543210\n"),
            "line 2, column reference",
        ),
        (
            Programme::Vaccination,
            format!("{POST_HEADER}{good}"),
            "line 1, column service: unknown column",
        ),
    ];
    for (programme, csv, want) in cases {
        let e = err(programme, &csv);
        assert!(e.contains(want), "{csv:?}\n  got:  {e}\n  want: {want}");
        assert!(e.contains("nothing was issued"));
        // No PII in the message: neither the mobile nor the name.
        assert!(
            !e.contains("9876543210") && !e.contains("Kumar") && !e.contains("Rao"),
            "{e}"
        );
    }
}

#[test]
fn cli_issues_nothing_from_a_bad_file() {
    let d = tempfile::tempdir().unwrap();
    let office = d.path().join("office");
    let device = d.path().join("device");
    let p = |x: &Path| x.to_str().unwrap().to_owned();
    let key = ok(&["office", "init", "--dir", &p(&office)]);
    let out = ok(&[
        "device",
        "init",
        "--dir",
        &p(&device),
        "--office-key",
        key.trim(),
    ]);
    let device_key = out.lines().next().unwrap();
    let id = ok(&[
        "office",
        "enroll",
        "--dir",
        &p(&office),
        "--device-key",
        device_key,
        "--assignee",
        "P",
    ]);
    let csv = d.path().join("b.csv");
    let mut text = post_csv(5);
    text = text.replacen("IN,parcel", "IN,drone", 1);
    std::fs::write(&csv, text).unwrap();
    let manifest = d.path().join("m.bin");
    let out = run(&[
        "office",
        "issue",
        "--dir",
        &p(&office),
        "--device",
        id.trim(),
        "--programme",
        "post",
        "--bookings",
        &p(&csv),
        "--out",
        &p(&manifest),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2, column service"), "{err}");
    assert!(!manifest.exists());
    assert!(!d.path().join("m.bin.sms.csv").exists());
    let report: serde_json::Value =
        serde_json::from_str(&ok(&["office", "report", "--dir", &p(&office), "--json"])).unwrap();
    assert_eq!(report["items_issued"], 0);
}
