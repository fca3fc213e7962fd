//! The SMS outbox through the `http` sender, against a stand-in gateway on
//! loopback: DLT fields, retries, a gateway that never answers, delivery
//! reports and their secret, Hindi, segments, no code at rest, and a whole
//! day; several messages in flight at once, and the breaker.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use handover_cli::client;
use handover_core::api;
use handover_core::codes::{Policy, Programme};
use handover_core::device::{Device, HttpRequest, VerifyOutcome};
use handover_office::{bookings, Office};
use handover_server::Limits;
use handover_tests::gateway::{Gateway, Mode};
use handover_tests::*;

static UNIQUE: AtomicUsize = AtomicUsize::new(0);

/// An office whose `office.toml` sends through `gateway`; its API key and
/// callback secret in environment variables of the test's own.
struct SmsOffice {
    dir: tempfile::TempDir,
    office: std::sync::Arc<Office>,
    secret: String,
}

fn office_with_gateway(gateway: &Gateway, extra: &str) -> SmsOffice {
    let n = UNIQUE.fetch_add(1, Ordering::SeqCst);
    let (key_env, secret_env) = (
        format!("HANDOVER_TEST_SMS_KEY_{n}"),
        format!("HANDOVER_TEST_SMS_SECRET_{n}"),
    );
    let secret = format!("callback-secret-{n}");
    // Each test names its own variables, so setting them races with nothing.
    std::env::set_var(&key_env, format!("api-key-{n}"));
    std::env::set_var(&secret_env, &secret);
    let dir = office_dir_with_settings(&format!(
        r#"[sms]
sender = "http"
url = "{url}"
api_key_env = "{key_env}"
callback_secret_env = "{secret_env}"
sender_id = "INPOST"
entity_id = "1101234567890123456"
timeout_seconds = 1
max_attempts = 4
backoff_ms = 10
{extra}

[sms.templates]
"post.code.en" = "1107000000000000001"
"post.code.hi" = "1107000000000000002"
"post.code.hi+en" = "1107000000000000003"
"post.confirmation.en" = "1107000000000000004"
"post.confirmation.hi" = "1107000000000000005"
"post.confirmation.hi+en" = "1107000000000000012"
"vaccination.code.en" = "1107000000000000006"
"vaccination.code.hi" = "1107000000000000007"
"vaccination.confirmation.en" = "1107000000000000008"
"vaccination.confirmation.hi" = "1107000000000000009"
"vaccination.certificate.en" = "1107000000000000010"
"vaccination.certificate.hi" = "1107000000000000011"
"#,
        url = gateway.url()
    ));
    let office_dir = dir.path().join("office");
    let office = std::sync::Arc::new(Office::open(&office_dir).unwrap());
    SmsOffice {
        dir,
        office,
        secret,
    }
}

/// The code in a message as a recipient reads it: the run of `digits`
/// digits after a space (references never put a space before theirs).
fn code_in(text: &str, digits: usize) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    (1..chars.len()).find_map(|i| {
        let run: String = chars[i..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        (chars[i - 1] == ' ' && run.len() == digits).then_some(run)
    })
}

#[test]
fn the_http_sender_carries_the_dlt_fields_and_keeps_the_gateway_id() {
    let gateway = Gateway::start(Mode::Accept);
    // One at a time: the gateway's ids follow the outbox's order.
    let o = office_with_gateway(&gateway, "concurrency = 1");
    let (_, codes) = issue_with_languages(&o.office, &["en", "hi", "hi+en"]);
    let sent = send_all(&o);
    assert_eq!((sent.sent, sent.failed, sent.attempts), (3, 0, 3));
    let got = gateway.accepted();
    assert_eq!(got.len(), 3);
    let n = UNIQUE.load(Ordering::SeqCst) - 1;
    for (g, (lang, template, unicode)) in got.iter().zip([
        ("en", "1107000000000000001", false),
        ("hi", "1107000000000000002", true),
        ("hi+en", "1107000000000000003", true),
    ]) {
        let b = &g.body;
        assert_eq!(b["sender_id"], "INPOST");
        assert_eq!(b["entity_id"], "1101234567890123456");
        assert_eq!(b["template_id"], template, "{lang}");
        assert_eq!(b["unicode"], unicode, "{lang}");
        assert!(b["to"].as_str().unwrap().starts_with("9198765432"));
        assert_eq!(
            g.authorization.as_deref(),
            Some(format!("Bearer api-key-{n}").as_str())
        );
        let text = b["text"].as_str().unwrap();
        let (reference, code) = codes
            .iter()
            .find(|(r, _)| text.contains(r.as_str()))
            .unwrap();
        assert_eq!(
            code_in(text, 6).as_deref(),
            Some(code.as_str()),
            "{lang}: {text}"
        );
        assert!(text.contains(reference.as_str()));
    }
    // Hindi first in hi+en, with the safety advice in both languages.
    let both = got[2].body["text"].as_str().unwrap();
    assert!(both.starts_with("भारतीय डाक") && both.contains("\nIndia Post"));
    assert!(both.contains("डाकिये") && both.contains("only to the postman"));
    let list = o.office.sms_list().unwrap();
    assert_eq!(
        list.iter()
            .map(|r| (
                r.status.as_str(),
                r.gateway_id.as_deref(),
                r.segments,
                r.attempts
            ))
            .collect::<Vec<_>>(),
        vec![
            ("sent", Some("gw-1"), 1, 1),
            ("sent", Some("gw-2"), 2, 1),
            ("sent", Some("gw-3"), 5, 1)
        ]
    );
    assert!(list.iter().all(|r| r.mobile.starts_with("******")));
    let report = o.office.report().unwrap();
    assert_eq!(report.sms_segments, 8);
}

#[test]
fn a_gateway_failing_three_times_then_answering_delivers_once() {
    let gateway = Gateway::start(Mode::FailFirst(3));
    let o = office_with_gateway(&gateway, "");
    issue_with_languages(&o.office, &["en"]);
    let sent = send_all(&o);
    assert_eq!((sent.sent, sent.failed, sent.attempts), (1, 0, 4));
    assert_eq!(gateway.received().len(), 4);
    assert_eq!(gateway.accepted().len(), 1, "one delivery");
    let row = &o.office.sms_list().unwrap()[0];
    assert_eq!((row.status.as_str(), row.attempts), ("sent", 4));
}

#[test]
fn a_gateway_that_never_answers_fails_with_its_reason_and_resend_works() {
    let gateway = Gateway::start(Mode::Hang);
    let o = office_with_gateway(&gateway, "");
    let (_, codes) = issue_with_languages(&o.office, &["en"]);
    let sent = send_all(&o);
    assert_eq!((sent.sent, sent.failed), (0, 1));
    let row = &o.office.sms_list().unwrap()[0];
    assert_eq!((row.status.as_str(), row.attempts), ("failed", 4));
    assert!(
        row.reason.as_deref().unwrap().contains("did not answer"),
        "{row:?}"
    );
    // Nothing is lost: the message is on record, and the code goes again.
    gateway.set_mode(Mode::Accept);
    let id = o.office.sms_resend(&codes[0].0, Utc::now()).unwrap();
    let sent = o
        .office
        .sms_send_some(&*o.office.sender().unwrap(), Some(&[id]), Utc::now())
        .unwrap();
    assert_eq!(sent.sent, 1);
    let got = gateway.accepted();
    assert_eq!(
        code_in(got[0].body["text"].as_str().unwrap(), 6).as_deref(),
        Some(codes[0].1.as_str())
    );
    let statuses: Vec<String> = o
        .office
        .sms_list()
        .unwrap()
        .into_iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, ["failed", "sent"]);
}

#[test]
fn a_refused_message_is_not_tried_again() {
    let gateway = Gateway::start(Mode::Refuse);
    let o = office_with_gateway(&gateway, "");
    issue_with_languages(&o.office, &["en"]);
    let sent = send_all(&o);
    assert_eq!((sent.failed, sent.attempts), (1, 1));
    assert!(o.office.sms_list().unwrap()[0]
        .reason
        .as_deref()
        .unwrap()
        .contains("refused"));
}

#[test]
fn delivery_reports_need_the_shared_secret() {
    let gateway = Gateway::start(Mode::Accept);
    let o = office_with_gateway(&gateway, "");
    issue_with_languages(&o.office, &["en"]);
    send_all(&o);
    let limits = Limits {
        sms_send_every: None,
        ..Limits::default()
    };
    let server = serve(o.office.clone(), limits);
    let link = client::OfficeLink::new(&format!("http://{}", server.addr()), None).unwrap();
    let report = |secret: &str, status: &str| {
        link.send(&HttpRequest {
            method: "POST",
            path: api::SMS_STATUS,
            headers: vec![
                ("content-type", "application/json".into()),
                ("handover-sms-secret", secret.to_owned()),
            ],
            body: format!(r#"{{"message_id":"gw-1","status":"{status}"}}"#).into_bytes(),
        })
        .unwrap()
    };
    let wrong = report("guess", "delivered");
    assert_eq!(wrong.status, 401);
    assert_eq!(o.office.sms_list().unwrap()[0].status, "sent");
    let right = report(&o.secret, "delivered");
    assert_eq!(right.status, 200);
    assert_eq!(o.office.sms_list().unwrap()[0].status, "delivered");
    assert_eq!(o.office.report().unwrap().sms.get("delivered"), Some(&1));
    assert_eq!(report(&o.secret, "sideways").status, 400);
    // The route is counted under its own name in /metrics.
    let text = metrics_text(&link);
    assert!(
        text.contains("route=\"/v1/sms/status\""),
        "{}",
        text.lines()
            .filter(|l| l.contains("requests_total"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn delivery_reports_only_move_forward_and_reasons_are_clean() {
    let gateway = Gateway::start(Mode::Accept);
    let o = office_with_gateway(&gateway, "");
    issue_with_languages(&o.office, &["en", "en"]);
    send_all(&o);
    let ids: Vec<String> = o
        .office
        .sms_list()
        .unwrap()
        .iter()
        .filter_map(|m| m.gateway_id.clone())
        .collect();
    assert_eq!(ids.len(), 2);
    let now = Utc::now();
    let status = |id: &str| {
        o.office
            .sms_list()
            .unwrap()
            .into_iter()
            .find(|m| m.gateway_id.as_deref() == Some(id))
            .unwrap()
    };
    // Delivered is final.
    assert!(o.office.sms_delivery(&ids[0], true, None, now).unwrap());
    assert!(!o
        .office
        .sms_delivery(&ids[0], false, Some("late"), now)
        .unwrap());
    assert_eq!(status(&ids[0]).status, "delivered");
    // A reason with a terminal escape and a flood of text.
    let nasty = format!("\u{1b}[2J\u{1b}[31mred\r\nline{}", "x".repeat(5_000));
    assert!(o
        .office
        .sms_delivery(&ids[1], false, Some(&nasty), now)
        .unwrap());
    let m = status(&ids[1]);
    assert_eq!(m.status, "failed");
    let reason = m.reason.unwrap();
    assert!(!reason.chars().any(char::is_control), "{reason:?}");
    assert!(reason.chars().count() <= 200);
    assert!(reason.starts_with("[2J [31mred line"), "{reason:?}");
    // Failed may still become delivered; then it is final.
    assert!(o.office.sms_delivery(&ids[1], true, None, now).unwrap());
    assert!(!o.office.sms_delivery(&ids[1], false, None, now).unwrap());
    assert_eq!(status(&ids[1]).status, "delivered");
}

/// Send the whole outbox through the office's configured sender, now.
fn send_all(o: &SmsOffice) -> handover_office::sms::SendSummary {
    o.office
        .sms_send(&*o.office.sender().unwrap(), Utc::now())
        .unwrap()
}

/// Every stored byte of the office database.
fn stored(o: &SmsOffice) -> Vec<u8> {
    ["office.db", "office.db-wal"]
        .iter()
        .flat_map(|f| std::fs::read(o.dir.path().join("office").join(f)).unwrap_or_default())
        .collect()
}

#[test]
fn no_code_is_at_rest_in_the_office_or_its_output_after_sending() {
    let gateway = Gateway::start(Mode::Accept);
    let o = office_with_gateway(&gateway, "");
    let languages = ["en"; 40];
    let (_, codes) = issue_with_languages(&o.office, &languages);
    assert_eq!(codes.len(), 40);
    // Sent by the CLI, whose output is checked too.
    let key_env = format!(
        "HANDOVER_TEST_SMS_KEY_{}",
        UNIQUE.load(Ordering::SeqCst) - 1
    );
    let out = std::process::Command::new(handover_bin())
        .args([
            "office",
            "sms",
            "send",
            "--dir",
            o.dir.path().join("office").to_str().unwrap(),
        ])
        .env(&key_env, std::env::var(&key_env).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(gateway.accepted().len(), 40);
    let output = [out.stdout, out.stderr].concat();
    let bytes = stored(&o);
    for (_, code) in &codes {
        assert!(!holds_code(&bytes, code), "a code is in the database");
        assert!(!holds_code(&output, code), "a code is in the output");
    }
}

/// Whether `code` stands in `haystack` as a number of its own: not inside a
/// longer run of digits (a reference such as `EE120000001IN`, a mobile
/// number, a timestamp), where a random 6-digit code turns up by chance
/// about once in a hundred runs without anything having leaked.
fn holds_code(haystack: &[u8], code: &str) -> bool {
    let needle = code.as_bytes();
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .any(|(at, _)| {
            let before = at.checked_sub(1).map(|i| haystack[i]);
            let after = haystack.get(at + needle.len()).copied();
            !before.is_some_and(|b| b.is_ascii_digit())
                && !after.is_some_and(|b| b.is_ascii_digit())
        })
}

#[test]
fn the_code_search_finds_a_code_only_where_it_stands_alone() {
    assert!(holds_code(b"Your code is 482913.", "482913"));
    assert!(holds_code(b"482913", "482913"));
    assert!(holds_code(b"{\"code\":\"482913\"}", "482913"));
    assert!(!holds_code(b"EE124829130IN", "482913"));
    assert!(!holds_code(b"9848291300", "482913"));
    assert!(!holds_code(b"482914", "482913"));
}

#[test]
fn a_whole_day_through_the_http_sender() {
    let gateway = Gateway::start(Mode::Accept);
    let o = office_with_gateway(&gateway, "");
    let limits = Limits {
        sms_send_every: Some(StdDuration::from_millis(50)),
        ..Limits::default()
    };
    let server = serve(o.office.clone(), limits);
    let link = client::OfficeLink::new(&format!("http://{}", server.addr()), None)
        .unwrap()
        .with_backoff(StdDuration::from_millis(20));
    let d = tempfile::tempdir().unwrap();
    let now = Utc::now();
    // A postman (English and Hindi recipients) and a vaccinator (Hindi).
    let postman = Device::open(d.path().join("postman.db")).unwrap();
    let vaccinator = Device::open(d.path().join("vaccinator.db")).unwrap();
    for (device, who) in [(&postman, "Postman 1"), (&vaccinator, "Vaccinator 1")] {
        let token = o
            .office
            .create_enrol_token(who, Duration::hours(1), now)
            .unwrap();
        client::enrol(device, &link, &token.token).unwrap();
    }
    let mut post = String::from("reference,service,addressee,address,mobile,cod_paise,language\n");
    for i in 0..6u32 {
        let r = handover_core::s10::make("RR", 55_000_000 + i, "IN").unwrap();
        let lang = ["en", "hi", "hi+en"][i as usize % 3];
        post.push_str(&format!(
            "{r},registered,Resident {i},{i} Golghar Gorakhpur,98765400{i:02},,{lang}\n"
        ));
    }
    let mut vacc = String::from("reference,name,year_of_birth,vaccine,dose,slot,mobile,language\n");
    for i in 0..4u32 {
        vacc.push_str(&format!(
            "APPT-2026-{i:06},Beneficiary {i},1980,Covishield,1,09:00-11:00,98765500{i:02},hi\n"
        ));
    }
    let policy = |digits| Policy {
        digits,
        tag_bits: 64,
        iterations: 10,
        max_attempts: 3,
    };
    for (device, programme, csv, digits) in [
        (&postman, Programme::Post, &post, 6u8),
        (&vaccinator, Programme::Vaccination, &vacc, 4),
    ] {
        let rows = bookings::parse(programme, csv.as_bytes(), o.office.cod_payee(), 2026).unwrap();
        issue_today(
            &o.office,
            &device.identity().device_id,
            programme,
            &rows,
            policy(digits),
            now,
        );
        client::sync(device, &link).unwrap();
    }
    // The recipients read their codes off the messages the gateway delivered.
    let wait_for = |n: usize| {
        for _ in 0..200 {
            if gateway.accepted().len() >= n {
                return;
            }
            std::thread::sleep(StdDuration::from_millis(25));
        }
        panic!(
            "the service sent {} of {n} messages",
            gateway.accepted().len()
        );
    };
    wait_for(10);
    let messages = gateway.accepted();
    for (device, digits) in [(&postman, 6), (&vaccinator, 4)] {
        for item in device.items().unwrap() {
            let text = messages
                .iter()
                .map(|m| m.body["text"].as_str().unwrap().to_owned())
                .find(|t| t.contains(&item.reference))
                .unwrap();
            let code = code_in(&text, digits).unwrap();
            assert!(matches!(
                device.verify(&item.reference, &code, Utc::now()).unwrap(),
                VerifyOutcome::Accepted { .. }
            ));
        }
        client::sync(device, &link).unwrap();
    }
    // Confirmations (10) and certificate notices (4) follow in the background.
    wait_for(24);
    server.stop().unwrap();
    let report = o.office.report().unwrap();
    assert_eq!(
        (
            report.verified,
            report.confirmation_sms,
            report.certificates
        ),
        (10, 10, 4)
    );
    assert_eq!(report.sms.get("sent"), Some(&24));
    assert_eq!(
        report.sms.len(),
        1,
        "nothing queued or failed: {:?}",
        report.sms
    );
    let segments: u64 = o
        .office
        .sms_list()
        .unwrap()
        .iter()
        .map(|r| u64::from(r.segments))
        .sum();
    assert_eq!(report.sms_segments, segments);
    assert!(segments > 24, "Hindi messages take more than one segment");
    let confirmations = gateway
        .accepted()
        .iter()
        .filter(|m| m.body["template_id"] == "1107000000000000009")
        .count();
    assert_eq!(confirmations, 4, "Hindi vaccination confirmations");
}

/// A stand-in gateway in the process: answers after `delay`, `Later`
/// when `down`, and counts how many messages are in flight at once.
struct Slow {
    delay: StdDuration,
    down: bool,
    in_flight: AtomicUsize,
    most: AtomicUsize,
    sent: AtomicUsize,
}

impl Slow {
    fn new(delay_ms: u64, down: bool) -> Slow {
        Slow {
            delay: StdDuration::from_millis(delay_ms),
            down,
            in_flight: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
            sent: AtomicUsize::new(0),
        }
    }
}

impl handover_office::sms::Sender for Slow {
    fn send(&self, _: &handover_office::sms::Outgoing<'_>) -> handover_office::sms::Attempt {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(self.delay);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if self.down {
            handover_office::sms::Attempt::Later("the gateway did not answer".into())
        } else {
            self.sent.fetch_add(1, Ordering::SeqCst);
            handover_office::sms::Attempt::Sent { gateway_id: None }
        }
    }
}

#[test]
fn messages_go_several_at_once_and_progress_counts_each() {
    let gateway = Gateway::start(Mode::Accept);
    let o = office_with_gateway(&gateway, "concurrency = 4");
    issue_with_languages(&o.office, &["en"; 20]);
    assert_eq!(o.office.sms_waiting().unwrap(), 20);
    let slow = Slow::new(30, false);
    let seen = std::sync::Mutex::new(Vec::new());
    let s = o
        .office
        .sms_send_with(&slow, None, Utc::now(), &|n| seen.lock().unwrap().push(n))
        .unwrap();
    assert_eq!((s.sent, s.failed, s.stopped.as_deref()), (20, 0, None));
    assert_eq!(
        slow.most.load(Ordering::SeqCst),
        4,
        "four in flight at once"
    );
    let mut seen = seen.into_inner().unwrap();
    seen.sort_unstable();
    assert_eq!(seen, (1..=20).collect::<Vec<u64>>());
    assert_eq!(o.office.sms_waiting().unwrap(), 0);
}

#[test]
fn a_gateway_that_keeps_failing_trips_the_breaker_and_the_rest_stay_queued() {
    let gateway = Gateway::start(Mode::Accept);
    let o = office_with_gateway(&gateway, "concurrency = 2\nbreaker_failures = 3");
    issue_with_languages(&o.office, &["en"; 30]);
    let down = Slow::new(1, true);
    let s = o
        .office
        .sms_send_with(&down, None, Utc::now(), &|_| {})
        .unwrap();
    let why = s.stopped.as_deref().expect("the breaker tripped");
    assert!(why.contains("in a row"), "{why}");
    // Three in a row trip it; the other thread may finish one more.
    assert!((3..=4).contains(&s.failed), "{s:?}");
    assert_eq!(o.office.sms_waiting().unwrap(), 30 - s.failed);
    // The gateway is back: the next send sends the rest; none was lost.
    let up = Slow::new(1, false);
    let s2 = o
        .office
        .sms_send_with(&up, None, Utc::now(), &|_| {})
        .unwrap();
    assert_eq!((s2.sent, s2.stopped), (30 - s.failed, None));
}
