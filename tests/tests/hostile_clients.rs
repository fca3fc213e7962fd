//! The service under hostile clients (security round three, the medium and
//! low findings): requests whose time would overflow, server times that
//! would move a device's signing clock, connections held open, tokens used
//! up by devices already enrolled, headers in other spellings. Each test
//! failed on the code before its fix.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, Utc};
use handover_cli::client::{self, OfficeLink};
use handover_core::api::{self, ApiError, EnrolRequest};
use handover_core::device::{
    acceptable_server_time, Device, HttpRequest, HttpResponse, SyncSession,
    MAX_SERVER_TIME_CORRECTION_MS,
};
use handover_core::keys::SigningKey;
use handover_server::Limits;
use handover_tests::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn error(resp: &HttpResponse) -> String {
    serde_json::from_slice::<ApiError>(&resp.body)
        .map(|e| e.error.as_str().to_owned())
        .unwrap_or_else(|_| format!("not a JSON error: {}", String::from_utf8_lossy(&resp.body)))
}

/// A service with `limits`, a link to it, and an enrolled phone (its files
/// in the returned directory).
fn service_and_phone(limits: Limits) -> (Service, OfficeLink, tempfile::TempDir, Device) {
    let svc = Service::start(limits);
    let link = svc.link();
    let d = tempfile::tempdir().unwrap();
    let device = svc.enrolled_device(&d.path().join("phone.db"), "Postman 1");
    (svc, link, d, device)
}

/// `POST path` with a JSON `body` and no signature.
fn post_json(link: &OfficeLink, path: &'static str, body: Vec<u8>) -> HttpResponse {
    link.send(&HttpRequest {
        method: "POST",
        path,
        headers: vec![("content-type", "application/json".into())],
        body,
    })
    .unwrap()
}

fn signed(device: &Device, path: &'static str, body: &[u8], time_ms: i64) -> HttpRequest {
    device
        .signed_request("POST", path, body.to_vec(), "application/json", time_ms)
        .expect("signed request")
}

/// Times that wrapped `(time - now).abs()` or sit at the edges.
const EXTREMES: [i64; 7] = [
    i64::MIN,
    i64::MIN + 1,
    i64::MIN + 300_000,
    -1,
    0,
    i64::MAX - 300_000,
    i64::MAX,
];

#[test]
fn a_request_signed_at_any_far_time_is_stale_at_every_signed_route() {
    let (svc, link, _d, device) = service_and_phone(Limits {
        per_device_per_second: 10_000.0,
        per_device_burst: 10_000.0,
        ..Limits::default()
    });
    let window = api::REQUEST_WINDOW_MS;
    let check = |t: i64| -> Result<(), TestCaseError> {
        for path in [api::MANIFESTS, api::BATCHES] {
            let resp = link
                .send(&signed(&device, path, b"{\"held\":[]}", t))
                .unwrap();
            prop_assert_eq!(
                (resp.status, error(&resp)),
                (401, "stale_request".to_owned()),
                "time {} at {}",
                t,
                path
            );
        }
        Ok(())
    };
    for t in EXTREMES {
        check(t).unwrap();
    }
    let now = Utc::now().timestamp_millis();
    let mut runner = TestRunner::new(Config {
        cases: 64,
        ..Config::default()
    });
    runner
        .run(
            &any::<i64>().prop_filter("outside the window", move |t| {
                t.abs_diff(now) > window.unsigned_abs() + 60_000
            }),
            check,
        )
        .unwrap();
    // Within the window it is taken (the control).
    let resp = link
        .send(&signed(&device, api::MANIFESTS, b"{\"held\":[]}", now))
        .unwrap();
    assert_eq!(resp.status, 200);
    // Enrolment at any time: refused for the unknown token, never a 500.
    for t in EXTREMES {
        let token = svc
            .office
            .create_enrol_token("Postman 2", Duration::hours(1), Utc::now())
            .unwrap();
        let mut req = EnrolRequest::new(&token.token, &SigningKey::generate().unwrap(), t);
        req.token_id = "0000000000000000".into();
        let resp = post_json(&link, api::ENROL, serde_json::to_vec(&req).unwrap());
        assert_eq!((resp.status, error(&resp).as_str()), (401, "unknown_token"));
    }
}

#[test]
fn only_the_canonical_spelling_of_the_signed_headers_is_taken() {
    let (_svc, link, _d, device) = service_and_phone(Limits::default());
    let now = Utc::now().timestamp_millis();
    type Respell = fn(&str, &str) -> Option<String>;
    // (White space around a value is HTTP's, not the header's: it never
    // reaches the service.)
    let respellings: [(&str, Respell); 4] = [
        ("handover-time", |_, v| Some(format!("+{v}"))),
        ("handover-time", |_, v| Some(format!("0{v}"))),
        ("handover-nonce", |_, v| Some(v.to_uppercase())),
        ("handover-signature", |_, v| Some(v.to_uppercase())),
    ];
    for (header, respell) in respellings {
        let mut req = signed(&device, api::MANIFESTS, b"{\"held\":[]}", now);
        for (h, v) in req.headers.iter_mut() {
            if *h == header {
                *v = respell(h, v).unwrap();
            }
        }
        let resp = link.send(&req).unwrap();
        assert_eq!(
            (resp.status, error(&resp).as_str()),
            (401, "missing_signature"),
            "{header} respelled"
        );
    }
}

#[test]
fn the_device_takes_no_server_time_far_from_its_clock_or_behind_its_mark() {
    let now = Utc::now();
    let ms = now.timestamp_millis();
    let hour = MAX_SERVER_TIME_CORRECTION_MS;
    for far in [i64::MIN, i64::MAX, ms - hour - 1, ms + hour + 1, 0] {
        assert!(!acceptable_server_time(far, now, None), "{far}");
    }
    assert!(acceptable_server_time(ms + 20 * 60_000, now, None));
    assert!(acceptable_server_time(ms - 20 * 60_000, now, None));
    // Behind the high-water mark by more than the tolerance.
    assert!(!acceptable_server_time(ms - 20 * 60_000, now, Some(ms)));
    assert!(acceptable_server_time(ms - 60_000, now, Some(ms)));

    // Through a sync session: an unauthenticated 401 with a far time does
    // not move the time the device signs with.
    // A device whose import event set its high-water mark at `now`.
    let day = Day::new(1, test_policy());
    let device = &day.device;
    for server in [i64::MIN, ms - 3 * hour, ms - 10 * 60_000] {
        let mut session = SyncSession::new(10);
        session.next_request(device, now).unwrap().unwrap();
        let forged = HttpResponse {
            status: 401,
            body: serde_json::to_vec(&ApiError {
                error: handover_core::api::ErrorCode::StaleRequest,
                message: String::new(),
                server_time_ms: Some(server),
                need_seq: None,
            })
            .unwrap(),
        };
        assert!(
            session.handle_response(device, &forged, now).is_err(),
            "server time {server} was taken"
        );
    }
    // A near one is taken once, for the signature only.
    let mut session = SyncSession::new(10);
    session.next_request(device, now).unwrap().unwrap();
    let near = ms + 10 * 60_000;
    let answer = HttpResponse {
        status: 401,
        body: serde_json::to_vec(&ApiError {
            error: handover_core::api::ErrorCode::StaleRequest,
            message: String::new(),
            server_time_ms: Some(near),
            need_seq: None,
        })
        .unwrap(),
    };
    session.handle_response(device, &answer, now).unwrap();
    let again = session.next_request(device, now).unwrap().unwrap();
    let time = again
        .headers
        .iter()
        .find(|(h, _)| *h == "handover-time")
        .unwrap()
        .1
        .parse::<i64>()
        .unwrap();
    assert_eq!(time, near);
}

#[test]
fn a_fresh_token_from_an_enrolled_device_is_refused_and_stays_usable() {
    let (svc, link, d, device) = service_and_phone(Limits::default());
    let token = svc
        .office
        .create_enrol_token("Postman 2", Duration::hours(1), Utc::now())
        .unwrap();
    let enrol_again = || {
        let resp = link
            .send(&device.enrol_request(&token.token, Utc::now()).unwrap())
            .unwrap();
        (resp.status, error(&resp))
    };
    assert_eq!(enrol_again(), (409, "already_enrolled".to_owned()));
    // Revoked, the same.
    svc.office
        .revoke(&device.identity().device_id, Utc::now())
        .unwrap();
    assert_eq!(enrol_again(), (409, "already_enrolled".to_owned()));
    // The token still enrols a new device.
    let other = Device::open(d.path().join("other.db")).unwrap();
    client::enrol(&other, &link, &token.token).expect("the token was not used up");
}

#[test]
fn enrolment_is_rate_limited_per_client_address() {
    let svc = Service::start(Limits {
        enrol_per_address_per_second: 0.01,
        enrol_per_address_burst: 3.0,
        ..Limits::default()
    });
    let link = svc.link();
    let statuses: Vec<u16> = (0..5)
        .map(|_| post_json(&link, api::ENROL, b"{}".to_vec()).status)
        .collect();
    assert_eq!(statuses, [400, 400, 400, 429, 429]);
}

#[test]
fn every_refusal_is_the_documented_json_405_included() {
    let svc = Service::start(Limits::default());
    let url = svc.url();
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    for (method, path, status, code) in [
        ("GET", api::BATCHES, 405, "method_not_allowed"),
        ("PUT", api::ENROL, 405, "method_not_allowed"),
        ("POST", api::HEALTH, 405, "method_not_allowed"),
        ("GET", "/v2/nothing", 404, "not_found"),
    ] {
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{url}{path}"))
            .body(())
            .unwrap();
        let mut resp = agent.run(req).unwrap();
        assert_eq!(resp.status().as_u16(), status, "{method} {path}");
        let text = resp.body_mut().read_to_string().unwrap();
        let body: ApiError = serde_json::from_str(&text).unwrap();
        assert_eq!(body.error.as_str(), code, "{method} {path}");
    }
}

/// Raise this process's open-file limit (the test holds 2,000 sockets).
fn raise_open_files() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    assert!(
        lim.rlim_cur >= 4_096,
        "the machine allows too few open files"
    );
}

/// A connection from `from` to `to` that sends nothing, or the start of a
/// request and then one header byte a second.
fn hold(from: &str, to: SocketAddr) -> Option<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    socket
        .bind(&format!("{from}:0").parse::<SocketAddr>().ok()?.into())
        .ok()?;
    socket
        .connect_timeout(&to.into(), StdDuration::from_secs(2))
        .ok()?;
    Some(socket.into())
}

#[test]
fn idle_and_slow_connections_do_not_keep_a_device_out() {
    raise_open_files();
    let dir = tempfile::tempdir().unwrap();
    let office_dir = dir.path().join("office");
    drop(init_office(&office_dir, "PO-1"));
    // The service as an operator starts it, with the open-file limit a
    // distribution gives a service by default: it must raise its own.
    let server = ServeProcess::start_with(&office_dir, &[], |cmd| {
        use std::os::unix::process::CommandExt;
        unsafe {
            cmd.pre_exec(|| {
                let mut hard = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                libc::getrlimit(libc::RLIMIT_NOFILE, &mut hard);
                let lim = libc::rlimit {
                    rlim_cur: hard.rlim_max.min(1_024),
                    rlim_max: hard.rlim_max,
                };
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
                Ok(())
            });
        }
    });
    let addr: SocketAddr = server
        .url()
        .strip_prefix("http://")
        .unwrap()
        .parse()
        .unwrap();
    let office = handover_office::Office::open(&office_dir).unwrap();
    let link = server.link();
    let device = enrolled_device(&office, &link, &dir.path().join("phone.db"), "Postman 1");
    issue_post(&office, &device, 3, 0);

    // 2,000 connections from eight other loopback addresses: half say
    // nothing, half send a request's first line and then one byte a second.
    let mut held = Vec::new();
    for i in 0..2_000 {
        let from = format!("127.0.0.{}", 2 + i % 8);
        if let Some(mut s) = hold(&from, addr) {
            if i % 2 == 1 {
                let _ = s.write_all(b"POST /v1/enrol HTTP/1.1\r\nhost: x\r\n");
            }
            held.push(s);
        }
    }
    assert!(held.len() >= 1_900, "only {} connections held", held.len());
    let slow = std::thread::spawn({
        let slow: Vec<TcpStream> = held
            .iter()
            .skip(1)
            .step_by(2)
            .filter_map(|s| s.try_clone().ok())
            .collect();
        move || {
            for _ in 0..4 {
                for mut s in &slow {
                    let _ = s.write_all(b"x");
                }
                std::thread::sleep(StdDuration::from_secs(1));
            }
        }
    });

    // The device syncs in time meanwhile.
    let started = Instant::now();
    let link = OfficeLink::new(server.url(), None)
        .unwrap()
        .with_backoff(StdDuration::from_millis(50));
    let summary = client::sync(&device, &link).expect("the device syncs");
    assert_eq!(summary.manifests_imported, 1);
    assert!(
        started.elapsed() < StdDuration::from_secs(10),
        "the sync took {:?}",
        started.elapsed()
    );
    slow.join().unwrap();

    // The service closes what they hold within its header timeout (10 s).
    std::thread::sleep(StdDuration::from_secs(12));
    let mut open = 0;
    for s in &mut held {
        s.set_read_timeout(Some(StdDuration::from_millis(20)))
            .unwrap();
        let mut buf = [0u8; 256];
        match s.read(&mut buf) {
            Ok(0) => {}
            Ok(_) => {
                // An answer (408 or 400), then the close.
                if matches!(s.read(&mut buf), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut)
                {
                    open += 1;
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                open += 1
            }
            Err(_) => {}
        }
    }
    assert_eq!(open, 0, "connections still held after the header timeout");
}
