//! The government gateways: C-DAC's Mobile Seva (`msdg`), NIC's gateway
//! (`nic`) and a configured request (`template`), each against a stand-in
//! on loopback written from the gateway's document. English and Hindi go
//! through each; the outbox records what each answer meant: sent with the
//! gateway's id, refused with its code and meaning, tried again after a
//! 5xx or no answer, never sent twice after an answer that took it.

use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::Utc;
use handover_office::Office;
use handover_tests::gateway::{Gateway, Mode};
use handover_tests::govgateway::{Account, Behaviour, GovGateway, Kind};
use handover_tests::*;

static UNIQUE: AtomicUsize = AtomicUsize::new(0);

const TEMPLATES: &str = r#"
[sms.templates]
"post.code.en" = "1107000000000000001"
"post.code.hi" = "1107000000000000002"
"post.code.hi+en" = "1107000000000000003"
"#;

fn account() -> Account {
    Account {
        username: "indiapost.gkp".into(),
        secret: "pass word&1".into(),
        secure_key: "5e6c1d2a-secure".into(),
        sender_id: "INPOST".into(),
        entity_id: "1101234567890123456".into(),
        templates: vec![
            "1107000000000000001".into(),
            "1107000000000000002".into(),
            "1107000000000000003".into(),
        ],
    }
}

/// An office sending through `[sms]` settings `sms` (secrets put in the
/// environment variables they name, `vars`).
fn office_with(sms: &str, vars: &[(&str, &str)]) -> (tempfile::TempDir, Office) {
    let n = UNIQUE.fetch_add(1, Ordering::SeqCst);
    let mut sms = sms.to_owned();
    for (name, value) in vars {
        let var = format!("HANDOVER_TEST_GOV_{name}_{n}");
        // Each test names its own variables, so setting them races with nothing.
        std::env::set_var(&var, value);
        sms = sms.replace(&format!("${name}"), &var);
    }
    let dir = office_dir_with_settings(&format!(
        "[sms]\ntimeout_seconds = 1\nmax_attempts = 3\nbackoff_ms = 10\n{sms}\n{TEMPLATES}"
    ));
    let office = Office::open(&dir.path().join("office")).unwrap();
    (dir, office)
}

fn msdg_settings(url: &str) -> String {
    format!(
        "sender = \"msdg\"\nurl = \"{url}\"\nusername = \"indiapost.gkp\"\npassword_env = \"$PASSWORD\"\nsecure_key_env = \"$KEY\"\nsender_id = \"INPOST\"\nentity_id = \"1101234567890123456\"\n"
    )
}

/// An office sending through MSDG at `url` with the right secrets.
fn msdg_office(url: &str) -> (tempfile::TempDir, Office) {
    office_with(
        &msdg_settings(url),
        &[("PASSWORD", "pass word&1"), ("KEY", "5e6c1d2a-secure")],
    )
}

fn nic_settings(url: &str) -> String {
    format!(
        "sender = \"nic\"\nurl = \"{url}\"\nusername = \"indiapost.gkp\"\npin_env = \"$PIN\"\nsender_id = \"INPOST\"\nentity_id = \"1101234567890123456\"\n"
    )
}

/// `handover office …` on the office in `d`, with `args` after `--dir DIR`.
fn office_cmd(d: &tempfile::TempDir, command: &[&str], args: &[&str]) -> std::process::Output {
    std::process::Command::new(handover_bin())
        .arg("office")
        .args(command)
        .arg("--dir")
        .arg(d.path().join("office"))
        .args(args)
        .output()
        .unwrap()
}

/// The gateway's message id of every outbox row, in order.
fn gateway_ids(office: &Office) -> Vec<Option<String>> {
    office
        .sms_list()
        .unwrap()
        .into_iter()
        .map(|m| m.gateway_id)
        .collect()
}

fn send(office: &Office) -> handover_office::sms::SendSummary {
    office
        .sms_send(&*office.sender().unwrap(), Utc::now())
        .unwrap()
}

/// English and Hindi through `gateway`; every code arrives, Hindi as
/// Unicode, and the outbox keeps the gateway's ids.
fn english_and_hindi(gateway: &GovGateway, office: &Office) {
    let (_, codes) = issue_with_languages(office, &["en", "hi", "hi+en"]);
    let s = send(office);
    assert_eq!((s.sent, s.failed), (3, 0));
    let delivered = gateway.delivered();
    assert_eq!(delivered.len(), 3);
    // Several go at once: each code's message, whatever the order.
    let by_code: Vec<_> = codes
        .iter()
        .map(|(_, code)| {
            delivered
                .iter()
                .find(|d| d.text.contains(code.as_str()))
                .unwrap_or_else(|| panic!("no message carries {code}: {delivered:?}"))
        })
        .collect();
    assert!(!by_code[0].unicode);
    assert!(by_code[1].unicode && by_code[1].text.chars().any(|c| c as u32 >= 0x900));
    let ids = gateway_ids(office);
    assert!(ids.iter().all(Option::is_some), "{ids:?}");
}

#[test]
fn msdg_takes_english_and_hindi_with_its_hash_and_unicode() {
    let gw = GovGateway::start(Kind::Msdg, account());
    let (_d, office) = msdg_office(gw.url());
    english_and_hindi(&gw, &office);
    assert!(gw.answers().iter().all(|a| a.starts_with("402,MsgID")));
}

#[test]
fn msdg_refusals_keep_the_gateways_code_and_meaning() {
    let gw = GovGateway::start(Kind::Msdg, account());
    // A secure key the gateway does not have: its hash does not match.
    let (_d, office) = office_with(
        &msdg_settings(gw.url()),
        &[("PASSWORD", "pass word&1"), ("KEY", "not-the-key")],
    );
    issue_with_languages(&office, &["en"]);
    let s = send(&office);
    assert_eq!(
        (s.sent, s.failed, s.attempts),
        (0, 1, 1),
        "a refusal is not tried again"
    );
    let m = &office.sms_list().unwrap()[0];
    assert_eq!(m.status, "failed");
    assert_eq!(m.reason.as_deref(), Some("msdg 416: hash does not match"));
    assert!(gw.delivered().is_empty());
    // A template id the gateway does not know: its 423, kept.
    let mut other = account();
    other.templates = vec!["1107999999999999999".into()];
    let gw2 = GovGateway::start(Kind::Msdg, other);
    let (_d2, office2) = msdg_office(gw2.url());
    issue_with_languages(&office2, &["hi"]);
    assert_eq!(send(&office2).failed, 1);
    assert_eq!(
        office2.sms_list().unwrap()[0].reason.as_deref(),
        Some("msdg 423: template id is mandatory and must be 12 or 19 digits")
    );
    // A 5xx: tried again up to max_attempts, then failed with the status.
    gw2.set_behaviour(Behaviour::Unavailable);
    let (_d3, office3) = msdg_office(gw2.url());
    issue_with_languages(&office3, &["en"]);
    let s = send(&office3);
    assert_eq!((s.failed, s.attempts), (1, 3));
    assert_eq!(
        office3.sms_list().unwrap()[0].reason.as_deref(),
        Some("the gateway answered 503")
    );
}

#[test]
fn nic_takes_english_and_hindi_with_its_dlt_fields() {
    let gw = GovGateway::start(Kind::Nic, account());
    let (_d, office) = office_with(&nic_settings(gw.url()), &[("PIN", "pass word&1")]);
    english_and_hindi(&gw, &office);
    assert!(gw.delivered().iter().all(|d| d.number.starts_with("91")));
}

#[test]
fn nic_refusals_retries_and_silence() {
    let gw = GovGateway::start(Kind::Nic, account());
    let mut bad = account();
    bad.templates.clear();
    let unregistered = GovGateway::start(Kind::Nic, bad);
    // An unregistered template: refused with the gateway's code and words.
    let (_d, office1) = office_with(&nic_settings(unregistered.url()), &[("PIN", "pass word&1")]);
    issue_with_languages(&office1, &["en"]);
    let s = send(&office1);
    assert_eq!((s.failed, s.attempts), (1, 1));
    assert_eq!(
        office1.sms_list().unwrap()[0].reason.as_deref(),
        Some("nic API-32: REJECTED: DLT template not registered")
    );
    // A 5xx, then no answer: tried again up to max_attempts, then failed;
    // nothing delivered twice once the gateway takes it.
    let (_d2, office2) = office_with(&nic_settings(gw.url()), &[("PIN", "pass word&1")]);
    issue_with_languages(&office2, &["en"]);
    gw.set_behaviour(Behaviour::Unavailable);
    let s = send(&office2);
    assert_eq!((s.sent, s.failed, s.attempts), (0, 1, 3));
    gw.set_behaviour(Behaviour::Hang);
    let (_d3, office3) = office_with(&nic_settings(gw.url()), &[("PIN", "pass word&1")]);
    issue_with_languages(&office3, &["en"]);
    let s = send(&office3);
    assert_eq!((s.sent, s.failed), (0, 1));
    assert!(office3.sms_list().unwrap()[0]
        .reason
        .as_deref()
        .unwrap()
        .contains("did not answer"));
    gw.set_behaviour(Behaviour::Accept);
    let (_d4, office4) = office_with(&nic_settings(gw.url()), &[("PIN", "pass word&1")]);
    issue_with_languages(&office4, &["en"]);
    assert_eq!(send(&office4).sent, 1);
    assert_eq!(
        send(&office4).sent,
        0,
        "a message the gateway took is not sent again"
    );
    assert_eq!(gw.delivered().len(), 1);
}

#[test]
fn a_template_request_reaches_another_gateway() {
    let gateway = Gateway::start(Mode::Accept);
    let sms = format!(
        r#"sender = "template"
sender_id = "INPOST"
entity_id = "1101234567890123456"
concurrency = 1

[sms.request]
method = "POST"
url = "{url}"
body = "json"
message_id_pointer = "/message_id"

[sms.request.params]
to = "{{mobile_with_country}}"
text = "{{text}}"
template_id = "{{template_id}}"
entity_id = "{{entity_id}}"
sender_id = "{{sender_id}}"
unicode = "{{unicode}}"

[sms.request.headers]
authorization = "Bearer {{env:$KEY}}"
"#,
        url = gateway.url()
    );
    let (_d, office) = office_with(&sms, &[("KEY", "template-key-1")]);
    let (_, codes) = issue_with_languages(&office, &["en", "hi"]);
    let s = send(&office);
    assert_eq!((s.sent, s.failed), (2, 0));
    let got = gateway.accepted();
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0].authorization.as_deref(),
        Some("Bearer template-key-1")
    );
    assert_eq!(got[0].body["to"], "919876543200");
    assert_eq!(got[0].body["template_id"], "1107000000000000001");
    assert_eq!(got[0].body["unicode"], "false");
    assert_eq!(got[1].body["unicode"], "true");
    assert!(got[0].body["text"].as_str().unwrap().contains(&codes[0].1));
    let ids = gateway_ids(&office);
    assert_eq!(ids, [Some("gw-1".to_owned()), Some("gw-2".to_owned())]);
}

#[test]
fn a_template_with_an_unknown_placeholder_is_refused_before_anything_is_sent() {
    let (_d, office) = office_with(
        "sender = \"template\"\n[sms.request]\nurl = \"http://127.0.0.1:9/send?to={phone}\"\n",
        &[],
    );
    let e = office.sender().err().expect("refused");
    assert!(e.to_string().contains("unknown placeholder {phone}"), "{e}");
}

#[test]
fn sms_test_sends_one_message_and_prints_the_gateways_answer() {
    let gw = GovGateway::start(Kind::Msdg, account());
    let (d, _office) = msdg_office(gw.url());
    // The variables are this process's: the child inherits them.
    let out = succeeded(office_cmd(&d, &["sms", "test"], &["--to", "9876543210"]));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("msdgsms"), "{stdout}");
    let delivered = gw.delivered();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].number, "9876543210");
    assert!(
        _office.sms_list().unwrap().is_empty(),
        "nothing queued or recorded"
    );
}

#[test]
fn office_check_finds_problems_and_sends_nothing_unless_asked() {
    use std::os::unix::fs::PermissionsExt;
    let gw = GovGateway::start(Kind::Msdg, account());
    let (d, _office) = msdg_office(gw.url());
    let dir = d.path().join("office");
    let check = |extra: &[&str]| office_cmd(&d, &["check"], extra);
    let out = succeeded(check(&[]));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("ok      SMS sender"), "{text}");
    assert!(!text.contains("PROBLEM"), "{text}");
    assert!(gw.delivered().is_empty(), "a check sends nothing");
    // Asked: one test message.
    let out = succeeded(check(&["--sms-to", "9876543210", "--json"]));
    let findings: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(findings
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["what"] == "SMS test message" && f["ok"] == true));
    assert_eq!(gw.delivered().len(), 1);
    // A key file others can read, and a sender whose secret is not set.
    let key = std::fs::read_dir(dir.join("keys"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = std::process::Command::new(handover_bin())
        .args(["office", "check", "--dir"])
        .arg(&dir)
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("PROBLEM key file"), "{text}");
    assert!(text.contains("PROBLEM SMS sender"), "{text}");
    assert!(!text.contains("pass word"), "no secret in the output");
}
