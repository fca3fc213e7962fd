//! The mistakes operators make, through the `handover` binary (issue 17):
//! a partial bookings list, cash on delivery without a payee, `load`
//! against a live office, a spreadsheet's bookings file, an SMS file others
//! can read, a code read out in groups, a payment before the handover; and
//! what the office and the device say about themselves.

use handover_tests::desk::*;
use handover_tests::*;
use serde_json::Value;

const HEADER: &str = "reference,service,addressee,address,mobile,cod_paise\n";

fn article(n: u32) -> String {
    handover_core::s10::make("EE", 30_000_000 + n, "IN").unwrap()
}

/// Bookings rows `from..to`; every item cash on delivery when `cod`.
fn rows(from: u32, to: u32, cod: bool) -> String {
    let mut s = String::from(HEADER);
    for i in from..to {
        let amount = if cod { "25000" } else { "" };
        s.push_str(&format!(
            "{},parcel,Resident {i},{i} Hill Road,98{i:08},{amount}\n",
            article(i)
        ));
    }
    s
}

#[test]
fn a_partial_list_withdraws_nothing_unless_asked_and_add_keeps_the_day() {
    let (desk, _) = Desk::new(&[]);
    let first = desk.issue(&rows(0, 5, false), &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(desk.sms().len(), 5);

    // Two of the five: refused, nothing issued, and it says how many.
    let partial = desk.issue(&rows(0, 2, false), &[]);
    assert_eq!(partial.status.code(), Some(2));
    let why = stderr(&partial);
    assert!(why.contains("leave out 3 of the 5 items"), "{why}");
    assert!(
        why.contains("--withdraw-missing") && why.contains("--add"),
        "{why}"
    );
    assert_eq!(desk.report()["items_issued"], 5);

    // --add: a late item joins; the five stay, with their codes (no SMS).
    let added = desk.issue(&rows(5, 6, false), &["--add"]);
    assert!(added.status.success(), "{}", stderr(&added));
    let text = stdout(&added);
    assert!(text.contains("revision 2: 6 items"), "{text}");
    assert!(text.contains("1 items added, 5 kept"), "{text}");
    assert!(text.contains("SMS: 1 code messages queued"), "{text}");
    desk.import();
    let listed = stdout(&desk.device(&["device", "list", "--json"]));
    let items: Vec<Value> = serde_json::from_str(&listed).unwrap();
    assert_eq!(items.len(), 6);
    let r0 = article(0);
    assert_eq!(desk.verify(&r0), Some(0), "a kept item keeps its code");

    // --withdraw-missing: the three left out are withdrawn, and the code
    // SMS still queued for them are cancelled, never sent.
    let withdrawn = desk.issue(&rows(0, 3, false), &["--withdraw-missing"]);
    assert!(withdrawn.status.success(), "{}", stderr(&withdrawn));
    let text = stdout(&withdrawn);
    assert!(
        text.contains("3 items withdrawn (left out of the file); 3 of their code SMS cancelled"),
        "{text}"
    );
    let sms = desk.sms();
    let cancelled: Vec<&str> = sms
        .iter()
        .filter(|m| m["status"] == "cancelled")
        .map(|m| m["reference"].as_str().unwrap())
        .collect();
    assert_eq!(cancelled, [article(3), article(4), article(5)]);
    let table = ok(&["office", "sms", "list", "--dir", p(&desk.office)]);
    assert!(table.trim_start().starts_with("ID PURPOSE"), "{table}");
    assert!(table.contains("cancelled") && table.contains("withdrawn from the manifest"));
    assert!(!table.contains("9800000003"), "numbers are masked: {table}");
    let file = desk.d.path().join("sent.csv");
    let sent = run(&["office", "sms", "send", "--dir", p(&desk.office), "--json"]);
    // The default sender writes the SMS file in the office directory.
    assert!(sent.status.success(), "{}", stderr(&sent));
    let summary: Value = serde_json::from_str(&stdout(&sent)).unwrap();
    assert_eq!(
        summary["sent"], 3,
        "only the three live items' codes go out"
    );
    let _ = file;
    let report = desk.report();
    assert_eq!(report["items_issued"], 3);
    assert_eq!(report["items_withdrawn"], 3);
    assert_eq!(report["sms"]["cancelled"], 3);
    desk.import();
    let items: Vec<Value> =
        serde_json::from_str(&stdout(&desk.device(&["device", "list", "--json"]))).unwrap();
    assert_eq!(items.len(), 3, "the device no longer offers them");
}

#[test]
fn cash_on_delivery_without_a_payee_is_cash_only_and_says_so() {
    let (desk, init) = Desk::new(&[]);
    assert!(
        stderr(&init).contains("cash on delivery by UPI is NOT set up"),
        "{}",
        stderr(&init)
    );
    let check = ok(&["office", "check", "--dir", p(&desk.office)]);
    assert!(
        check
            .contains("cash on delivery: no UPI payee: cash on delivery is collected in cash only"),
        "{check}"
    );
    let issued = desk.issue(&rows(0, 2, true), &[]);
    assert!(issued.status.success(), "{}", stderr(&issued));
    desk.import();
    let r0 = article(0);
    let upi = desk.device(&["device", "upi", "--reference", &r0]);
    assert_eq!(upi.status.code(), Some(2));
    assert!(
        stderr(&upi).contains("has not set up a UPI payee for cash on delivery: take cash"),
        "{}",
        stderr(&upi)
    );
    assert!(!stdout(&upi).contains("upi://"));

    // Paid as it changes hands: the code (read out in two groups) first.
    let early = desk.device(&["device", "pay", "--reference", &r0, "--cash"]);
    assert_eq!(early.status.code(), Some(2));
    assert!(
        stderr(&early).contains("not yet handed over"),
        "{}",
        stderr(&early)
    );
    let code = desk.code(&r0);
    let spaced = format!("{} {}", &code[..3], &code[3..]);
    let verified = desk.device(&["device", "verify", "--reference", &r0, "--code", &spaced]);
    assert_eq!(verified.status.code(), Some(0), "{}", stdout(&verified));
    let paid = desk.device(&["device", "pay", "--reference", &r0, "--cash"]);
    assert!(paid.status.success(), "{}", stderr(&paid));

    // The payee is set later; items issued from then on carry it.
    let set = run(&[
        "office",
        "cod",
        "--dir",
        p(&desk.office),
        "--cod-upi",
        "po411001.cod@sbi",
        "--cod-name",
        "Pune GPO",
    ]);
    assert!(set.status.success(), "{}", stderr(&set));
    assert!(stderr(&set).contains("UPI payments go to po411001.cod@sbi"));
    let added = desk.issue(&rows(2, 3, true), &["--add"]);
    assert!(added.status.success(), "{}", stderr(&added));
    desk.import();
    let upi = desk.device(&["device", "upi", "--reference", &article(2)]);
    assert!(upi.status.success(), "{}", stderr(&upi));
    assert!(stdout(&upi).starts_with("upi://pay?pa=po411001.cod@sbi&pn=Pune%20GPO&am=250.00"));
    // A payee is given whole or not at all.
    let half = run(&[
        "office",
        "init",
        "--dir",
        p(&desk.d.path().join("o2")),
        "--cod-upi",
        "x@sbi",
    ]);
    assert_eq!(half.status.code(), Some(2));
    assert!(stderr(&half).contains("--cod-name"), "{}", stderr(&half));
}

#[test]
fn a_spreadsheet_export_is_read_and_every_bad_row_is_listed() {
    let (desk, _) = Desk::new(&[]);
    // Excel's CSV: a byte-order mark, headers in capitals, a service as
    // people write it, 91 before the mobile, empty rows at the end.
    let sheet = format!(
        "\u{feff}Reference,Service,Addressee,Address,Mobile,COD_Paise\n\
         {},Speed Post,A. Kumar,12 MG Road,919876543210,\n\
         {},Registered,B. Rao,3 Hill Road,9876543211,\n\
         ,,,,,\n,,,,,\n",
        article(0),
        article(1)
    );
    let out = desk.issue(&sheet, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("2 items"), "{}", stdout(&out));

    // Three bad rows: all three are listed, each with line and column.
    let bad = format!(
        "{HEADER}{},parcel,A,B,9876543210,\n\
         {},parcel,A,B,9.87654321E+09,\n\
         {},courier,A,B,9876543212,\n\
         {},parcel,A,B,9876543213,12.5\n",
        article(10),
        article(11),
        article(12),
        article(13)
    );
    let out = desk.issue(&bad, &[]);
    assert_eq!(out.status.code(), Some(2));
    let why = stderr(&out);
    assert!(
        why.contains(
            "line 3, column mobile: the spreadsheet wrote the number in scientific notation"
        ),
        "{why}"
    );
    assert!(why.contains("format the column as text"), "{why}");
    assert!(why.contains("line 4, column service"), "{why}");
    assert!(why.contains("line 5, column cod_paise"), "{why}");
    assert!(why.contains("and 2 more bad row(s)"), "{why}");
    assert!(why.contains("nothing was issued"), "{why}");
    assert!(
        !why.contains("9.87654321E+09"),
        "no cell values in messages: {why}"
    );
    assert_eq!(desk.report()["items_issued"], 2);
}

#[test]
fn an_sms_file_others_can_read_is_refused_before_anything_is_issued() {
    use std::os::unix::fs::PermissionsExt;
    let (desk, _) = Desk::new(&[]);
    let sms_file = desk.file("codes.csv", "");
    std::fs::set_permissions(&sms_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = desk.issue(&rows(0, 3, false), &["--sms-out", p(&sms_file)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("others may read it"),
        "{}",
        stderr(&out)
    );
    assert_eq!(desk.report()["items_issued"], 0, "nothing was issued");
    assert!(desk.sms().is_empty());
    assert_eq!(
        std::fs::read(&sms_file).unwrap(),
        b"",
        "no code was written"
    );
}

#[test]
fn office_devices_and_device_status_say_where_things_stand() {
    let (desk, _) = Desk::new(&[]);
    assert!(desk.issue(&rows(0, 3, false), &[]).status.success());
    let serve = ServeProcess::start(&desk.office, &[]);
    let sync = |json: bool| {
        let mut args = vec!["device", "sync", "--server", serve.url()];
        if json {
            args.push("--json");
        }
        desk.device(&args)
    };
    assert!(sync(false).status.success());
    let r0 = article(0);
    assert_eq!(desk.verify(&r0), Some(0));
    let first: Value = serde_json::from_str(&stdout(&sync(true))).unwrap();
    let head = first["acknowledged_through"].as_u64().unwrap();
    assert!(head >= 2, "{first}");
    // Nothing new: the acknowledged head all the same, not 0.
    let again: Value = serde_json::from_str(&stdout(&sync(true))).unwrap();
    assert_eq!(again["acknowledged_through"], head, "{again}");
    assert_eq!(again["events_sent"], 0);

    let status: Value =
        serde_json::from_str(&stdout(&desk.device(&["device", "status", "--json"]))).unwrap();
    assert_eq!(status["device_id"], desk.device_id.as_str());
    assert_eq!(status["acknowledged_through"], head);
    assert_eq!(status["pending"], 0);
    assert_eq!(status["manifests"][0]["revision"], 1);
    assert_eq!(status["manifests"][0]["items"], 3);
    assert!(status["last_ack_at"].is_string());
    let text = stdout(&desk.device(&["device", "status"]));
    assert!(
        text.contains(&format!("acknowledged through seq {head}")),
        "{text}"
    );

    let devices = desk.office_json(&["devices"], &[]);
    let d = &devices[0];
    assert_eq!(d["device_id"], desk.device_id.as_str());
    assert_eq!(d["assignee"], "Postman 7");
    assert_eq!(d["events_held"], head);
    assert_eq!(d["items_open"], 3);
    assert!(d["last_sync_at"].is_string());
    assert_eq!(d["revoked_at"], Value::Null);
    ok(&[
        "office",
        "revoke",
        "--dir",
        p(&desk.office),
        "--device",
        &desk.device_id,
    ]);
    let table = ok(&["office", "devices", "--dir", p(&desk.office)]);
    assert!(table.starts_with("DEVICE"), "{table}");
    assert!(
        table.contains("Postman 7") && table.contains("revoked"),
        "{table}"
    );

    // device list shows who and where.
    let list = stdout(&desk.device(&["device", "list"]));
    assert!(list.contains("Resident 1, 1 Hill Road"), "{list}");
}

#[test]
fn load_refuses_a_live_office_and_when_allowed_stays_out_of_its_report() {
    let (desk, _) = Desk::new(&[]);
    assert!(desk.issue(&rows(0, 2, false), &[]).status.success());
    let serve = ServeProcess::start(&desk.office, &[]);
    let load = |extra: &[&str]| {
        let mut args = vec![
            "load",
            "--server",
            serve.url(),
            "--dir",
            p(&desk.office),
            "--devices",
            "2",
            "--events",
            "40",
            "--batch",
            "10",
            "--json",
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let refused = load(&[]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains("is live: it has 1 real device(s); nothing was done"),
        "{}",
        stderr(&refused)
    );
    let before = desk.report();
    let sms_before = desk.sms().len();

    let allowed = load(&["--allow-live-office"]);
    assert!(allowed.status.success(), "{}", stderr(&allowed));
    let report: Value = serde_json::from_str(&stdout(&allowed)).unwrap();
    assert_eq!(report["lost"], 0);
    assert!(report["events"].as_u64().unwrap() >= 20);

    // The office's report and outbox are as before: no load in them.
    let after = desk.report();
    for k in [
        "devices",
        "items_issued",
        "handed_over",
        "verified",
        "exceptions",
    ] {
        assert_eq!(after[k], before[k], "{k}");
    }
    assert_eq!(desk.sms().len(), sms_before, "load queued no SMS");
    let devices = |extra: &[&str]| -> usize {
        desk.office_json(&["devices"], extra)
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(devices(&[]), 1);
    assert_eq!(devices(&["--with-simulated"]), 3);
}

#[test]
fn the_service_logs_requests_batches_and_refusals_without_codes_or_numbers() {
    let (desk, _) = Desk::new(&[]);
    assert!(desk.issue(&rows(0, 2, true), &[]).status.success());
    let log = desk.d.path().join("serve.log");
    let mut child = std::process::Command::new(handover_bin())
        .args(["office", "serve", "--dir", p(&desk.office)])
        .args(["--listen", "localhost:0", "--log-format", "json"])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let url = listening_url(&mut child);
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "localhost is taken, on IPv4 loopback: {url}"
    );
    let sync = || desk.device(&["device", "sync", "--server", &url]);
    assert!(sync().status.success());
    let r0 = article(0);
    let code = desk.code(&r0);
    assert_eq!(desk.verify(&r0), Some(0));
    assert!(sync().status.success());
    // An unsigned batch: refused, and logged as a refusal.
    let refused = ureq::post(&format!("{url}/v1/batches"))
        .config()
        .http_status_as_error(false)
        .build()
        .send(&b"{}"[..])
        .unwrap();
    assert_eq!(refused.status(), 401);
    let _ = child.kill();
    let _ = child.wait();

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let find = |msg: &str, route: &str| {
        lines
            .iter()
            .filter(|l| l["message"] == msg && (route.is_empty() || l["route"] == route))
            .cloned()
            .collect::<Vec<_>>()
    };
    let ok_batches = find("request", "/v1/batches");
    assert!(!ok_batches.is_empty(), "{text}");
    let b = &ok_batches[0];
    assert_eq!(b["method"], "POST");
    assert_eq!(b["status"], 200);
    assert_eq!(b["device"], desk.device_id.as_str());
    assert!(b["ms"].as_f64().is_some());
    assert_eq!(b["level"], "INFO");
    let batches = find("batch", "");
    assert!(batches
        .iter()
        .all(|b| b["device"] == desk.device_id.as_str()));
    assert!(
        batches
            .iter()
            .any(|b| b["verdicts"].as_str().unwrap().contains("\"verified\": 1")),
        "{text}"
    );
    let refusals = find("refused", "/v1/batches");
    assert_eq!(refusals.len(), 1, "{text}");
    assert_eq!(refusals[0]["status"], 401);
    assert_eq!(refusals[0]["level"], "WARN");
    // Never a code, a name or a number.
    for secret in [
        code.as_str(),
        "9800000000",
        "9800000001",
        "Resident 0",
        "Postman 7",
    ] {
        assert!(!text.contains(secret), "{secret} in the log:\n{text}");
    }
}

#[test]
fn completions_man_pages_and_the_enrolment_qr() {
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(&["completions", shell]);
        assert!(script.contains("withdraw-missing"), "{shell}");
    }
    let d = tempfile::tempdir().unwrap();
    let man = d.path().join("man1");
    ok(&["man", "--out-dir", p(&man)]);
    let page = std::fs::read_to_string(man.join("handover-office-issue.1")).unwrap();
    assert!(page.starts_with(".ie") || page.contains(".TH"), "{page}");
    assert!(page.contains("withdraw\\-missing"), "{page}");
    assert!(man.join("handover.1").exists());

    let (desk, _) = Desk::new(&[]);
    let svg = desk.d.path().join("enrol.svg");
    let out = run(&[
        "office",
        "enrol-token",
        "--dir",
        p(&desk.office),
        "--assignee",
        "Postman 9",
        "--server",
        "https://po411001.example:8443",
        "--qr",
        p(&svg),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Standard output: the token alone, for scripts; the QR on stderr.
    let token = stdout(&out);
    assert_eq!(token.lines().count(), 1, "{token}");
    assert!(token
        .trim()
        .parse::<handover_core::api::EnrolToken>()
        .is_ok());
    let said = stderr(&out);
    assert!(said.contains('▀') || said.contains('▄'), "{said}");
    assert!(
        !said.contains("\x1b["),
        "no colours when stderr is not a terminal"
    );
    assert!(said.contains("holds https://po411001.example:8443 and the token"));
    let image = std::fs::read_to_string(&svg).unwrap();
    assert!(image.contains("<svg"), "{image}");
    assert_eq!(
        handover_cli::cli::enrol_payload(Some("https://po.example:8443"), "T0k"),
        "handover:enrol?server=https%3A%2F%2Fpo.example%3A8443&token=T0k"
    );
    // A quiet zone of 4 modules: the first two lines are all light.
    let qr = handover_core::upi::QrModules {
        width: 21,
        modules: vec![true; 21 * 21],
    };
    let drawn = handover_cli::cli::draw_qr(&qr);
    let first: Vec<&str> = drawn.lines().take(2).collect();
    assert!(first.iter().all(|l| l.chars().all(|c| c == '█')), "{drawn}");
    assert_eq!(drawn.lines().next().unwrap().chars().count(), 21 + 8);

    // No progress bar when standard error is not a terminal.
    let issued = desk.issue(&rows(0, 3, false), &[]);
    assert!(issued.status.success());
    let said = stderr(&issued);
    assert!(
        !said.contains("deriving codes") && !said.contains('\r'),
        "{said}"
    );
}

#[test]
fn office_toml_mistakes_name_the_line_and_the_key() {
    let (desk, _) = Desk::new(&[]);
    let toml = desk.office.join("office.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    let line = text
        .lines()
        .position(|l| l.starts_with("sender = "))
        .unwrap()
        + 1;
    std::fs::write(&toml, text.replace("sender = \"file\"", "sendr = \"file\"")).unwrap();
    let out = run(&["office", "report", "--dir", p(&desk.office)]);
    assert_eq!(out.status.code(), Some(2));
    let said = stderr(&out);
    assert!(
        said.contains(&format!("line {line}, key `sendr`: unknown field `sendr`")),
        "{said}"
    );
    let check = run(&["office", "check", "--dir", p(&desk.office)]);
    assert_eq!(check.status.code(), Some(2));
}
