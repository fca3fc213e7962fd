//! Two `handover office serve` processes on one PostgreSQL store, the way
//! an office runs at national scale (`docs/scale.md`): the same batch of one
//! device reaching both servers at the same instant is stored once and
//! answered with the same ack bytes by each; a forked device (a cloned
//! phone) sending its two chains to the two servers at once keeps one chain,
//! one flag and one piece of evidence; both servers sending the SMS outbox
//! in the background send each message once.
//!
//! These tests always run on PostgreSQL (a throwaway server, a database of
//! their own), whichever store the rest of the suite is on. They skip,
//! loudly, only when `HANDOVER_SKIP_PG=1`.

use std::sync::Barrier;

use chrono::Utc;
use handover_cli::client::{self, OfficeLink};
use handover_core::api;
use handover_core::device::{Device, HttpRequest, HttpResponse, SyncSession, VerifyOutcome};
use handover_core::event::ExceptionReason;
use handover_office::{bookings, Office};
use handover_tests::gateway::{Gateway, Mode};
use handover_tests::*;

/// An office on a fresh PostgreSQL database, served by two processes.
struct TwoServers {
    dir: tempfile::TempDir,
    url: String,
    office: Office,
    a: ServeProcess,
    b: ServeProcess,
}

impl TwoServers {
    fn start() -> TwoServers {
        TwoServers::start_with("")
    }

    /// `settings`, when given, make office.toml (with the store's URL)
    /// before the servers start.
    fn start_with(settings: &str) -> TwoServers {
        let dir = tempfile::tempdir().unwrap();
        let url = pg::server().database();
        let office_dir = dir.path().join("office");
        drop(
            Office::init_in(
                &office_dir,
                "PO-1",
                bookings::CodPayee::default(),
                Some(&url),
            )
            .unwrap(),
        );
        if !settings.is_empty() {
            std::fs::write(
                office_dir.join("office.toml"),
                format!("[office]\ndatabase_url = \"{url}\"\n{settings}"),
            )
            .unwrap();
        }
        // Both servers find the store in office.toml, as an operator's would.
        let a = ServeProcess::start(&office_dir, &[]);
        let b = ServeProcess::start(&office_dir, &[]);
        assert_ne!(a.url(), b.url());
        let office = Office::open(&office_dir).unwrap();
        assert!(office.on_postgres());
        TwoServers {
            dir,
            url,
            office,
            a,
            b,
        }
    }

    fn sql_count(&self, sql: &str) -> i64 {
        let mut c = postgres::Client::connect(&self.url, postgres::NoTls).unwrap();
        c.query_one(sql, &[]).unwrap().get(0)
    }
}

/// Run `session` through `link` until its next request is a batch push;
/// that request.
fn up_to_push(session: &mut SyncSession, device: &Device, link: &OfficeLink) -> HttpRequest {
    loop {
        let req = session
            .next_request(device, Utc::now())
            .unwrap()
            .expect("a batch to push");
        if req.path == api::BATCHES {
            return req;
        }
        let resp = link.send(&req).unwrap();
        session.handle_response(device, &resp, Utc::now()).unwrap();
    }
}

/// Send `ra` to `a` and `rb` to `b` at the same instant.
fn at_once(
    a: &OfficeLink,
    ra: &HttpRequest,
    b: &OfficeLink,
    rb: &HttpRequest,
) -> (HttpResponse, HttpResponse) {
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        let ta = s.spawn(|| {
            barrier.wait();
            a.send(ra).unwrap()
        });
        let tb = s.spawn(|| {
            barrier.wait();
            b.send(rb).unwrap()
        });
        (ta.join().unwrap(), tb.join().unwrap())
    })
}

#[test]
fn one_devices_batches_at_two_servers_at_once_are_stored_once_with_identical_acks() {
    if pg::skip("two servers: batches stored once") {
        return;
    }
    let t = TwoServers::start();
    let (la, lb) = (t.a.link(), t.b.link());
    const DEVICES: u32 = 6;
    const ITEMS: u32 = 24;
    const ROUNDS: usize = 4;
    let devices: Vec<(Device, Vec<(String, String)>)> = (0..DEVICES)
        .map(|i| {
            // Half enrol through each server.
            let link = if i % 2 == 0 { &la } else { &lb };
            let device = enrolled_device(
                &t.office,
                link,
                &t.dir.path().join(format!("d{i}.db")),
                &format!("Postman {i}"),
            );
            let codes = issue_post(&t.office, &device, ITEMS, i * 100);
            (device, codes)
        })
        .collect();
    std::thread::scope(|s| {
        for (device, codes) in &devices {
            let (la, lb) = (t.a.link(), t.b.link());
            s.spawn(move || {
                client::sync(device, &la).unwrap();
                for round in codes.chunks(codes.len() / ROUNDS) {
                    for (r, c) in round {
                        assert!(matches!(
                            device.verify(r, c, Utc::now()).unwrap(),
                            VerifyOutcome::Accepted { .. }
                        ));
                    }
                    // The same outbox, pushed through both servers at once.
                    let (mut sa, mut sb) = (SyncSession::new(100), SyncSession::new(100));
                    let (ra, rb) = (
                        up_to_push(&mut sa, device, &la),
                        up_to_push(&mut sb, device, &lb),
                    );
                    assert_eq!(ra.body, rb.body, "the same batch");
                    let (a, b) = at_once(&la, &ra, &lb, &rb);
                    assert_eq!((a.status, b.status), (200, 200));
                    assert_eq!(a.body, b.body, "the same ack bytes from either server");
                    sa.handle_response(device, &a, Utc::now()).unwrap();
                    sb.handle_response(device, &b, Utc::now()).unwrap();
                    assert_eq!(device.pending_count().unwrap(), 0);
                }
            });
        }
    });

    let total = i64::from(DEVICES * ITEMS);
    let report = t.office.report().unwrap();
    assert_eq!(
        (report.handed_over, report.verified),
        (total as u64, total as u64)
    );
    assert!(report.flagged.is_empty(), "{:?}", report.flagged);
    let mut heads = 0;
    for (device, _) in &devices {
        let (head, _) = device.head().unwrap();
        let held = t.office.device(&device.identity().device_id).unwrap();
        assert_eq!(held.head_seq, head, "the office's head is the device's");
        assert_eq!(held.flagged, None);
        heads += head as i64;
    }
    // Every event once, and one confirmation SMS per verified handover.
    assert_eq!(t.sql_count("SELECT count(*) FROM events"), heads);
    assert_eq!(
        t.sql_count(
            "SELECT count(*) FROM (SELECT device_id, seq FROM events
                 GROUP BY device_id, seq HAVING count(*) > 1) AS twice"
        ),
        0
    );
    assert_eq!(
        t.sql_count("SELECT count(*) FROM sms_outbox WHERE purpose = 'confirmation'"),
        total
    );
}

#[test]
fn a_cloned_phone_sending_its_two_chains_to_two_servers_at_once_keeps_one_chain_and_one_flag() {
    if pg::skip("two servers: a fork") {
        return;
    }
    let t = TwoServers::start();
    let (la, lb) = (t.a.link(), t.b.link());
    let path = t.dir.path().join("phone.db");
    let device = enrolled_device(&t.office, &la, &path, "Postman 1");
    let codes = issue_post(&t.office, &device, 4, 0);
    client::sync(&device, &la).unwrap();
    let (r0, c0) = &codes[0];
    device.verify(r0, c0, Utc::now()).unwrap();
    client::sync(&device, &lb).unwrap();
    let id = device.identity().device_id;

    // The phone is cloned: the copy carries the same key and chain.
    drop(device);
    let clone_path = t.dir.path().join("clone.db");
    std::fs::copy(&path, &clone_path).unwrap();
    let phone = Device::open(&path).unwrap();
    let clone = Device::open(&clone_path).unwrap();
    // Each goes on with a different event at the same seq.
    let (r1, c1) = &codes[1];
    phone.verify(r1, c1, Utc::now()).unwrap();
    clone
        .record_exception(r1, ExceptionReason::NotHome, Utc::now())
        .unwrap();
    assert_eq!(phone.head().unwrap().0, clone.head().unwrap().0);
    assert_ne!(phone.head().unwrap().1, clone.head().unwrap().1);

    let (mut sp, mut sc) = (SyncSession::new(100), SyncSession::new(100));
    let (rp, rc) = (
        up_to_push(&mut sp, &phone, &la),
        up_to_push(&mut sc, &clone, &lb),
    );
    let (p, c) = at_once(&la, &rp, &lb, &rc);
    // One chain is taken, whichever came first; the other is a fork.
    let mut statuses = [p.status, c.status];
    statuses.sort();
    assert_eq!(
        statuses,
        [200, 409],
        "{} / {}",
        String::from_utf8_lossy(&p.body),
        String::from_utf8_lossy(&c.body)
    );
    let phone_won = p.status == 200;
    let (winner, winner_req, winner_ack, other) = if phone_won {
        (&phone, &rp, &p, &lb)
    } else {
        (&clone, &rc, &c, &la)
    };
    let held = t.office.device(&id).unwrap();
    assert_eq!(held.flagged.as_deref(), Some("fork"));
    assert_eq!(held.head_seq, winner.head().unwrap().0);
    assert_eq!(
        t.sql_count("SELECT count(*) FROM fork_evidence"),
        1,
        "one piece of evidence"
    );
    assert_eq!(
        t.sql_count("SELECT count(*) FROM devices WHERE flagged = 'fork'"),
        1
    );

    // The winner's batch again, at the other server: the same ack bytes.
    let mut session = SyncSession::new(100);
    let again = up_to_push(&mut session, winner, other);
    assert_eq!(again.body, winner_req.body);
    let resp = other.send(&again).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, winner_ack.body);
    // The stored chain is the winner's, event for event.
    let events = t.sql_count(&format!(
        "SELECT count(*) FROM events WHERE device_id = '{id}'"
    ));
    assert_eq!(events as u64, winner.head().unwrap().0);
}

#[test]
fn two_servers_sending_the_sms_outbox_send_each_message_once() {
    if pg::skip("two servers: the SMS outbox") {
        return;
    }
    let gateway = Gateway::start(Mode::Accept);
    // The servers inherit the key from this process's environment.
    std::env::set_var("HANDOVER_TEST_TWO_SERVERS_SMS_KEY", "api-key");
    let t = TwoServers::start_with(&format!(
        r#"
[sms]
sender = "http"
url = "{}"
api_key_env = "HANDOVER_TEST_TWO_SERVERS_SMS_KEY"
sender_id = "INPOST"
entity_id = "1101234567890123456"
send_every_seconds = 1
backoff_ms = 10

[sms.templates]
"post.code.en" = "1107000000000000001"
"post.confirmation.en" = "1107000000000000004"
"#,
        gateway.url()
    ));
    let la = t.a.link();
    let devices: Vec<(Device, Vec<(String, String)>)> = (0..3)
        .map(|i| {
            let device = enrolled_device(
                &t.office,
                &la,
                &t.dir.path().join(format!("d{i}.db")),
                &format!("Postman {i}"),
            );
            let codes = issue_post(&t.office, &device, 20, i * 100);
            (device, codes)
        })
        .collect();
    for (i, (device, codes)) in devices.iter().enumerate() {
        let link = if i % 2 == 0 { t.a.link() } else { t.b.link() };
        client::sync(device, &link).unwrap();
        for (r, c) in codes {
            device.verify(r, c, Utc::now()).unwrap();
        }
        client::sync(device, &link).unwrap();
    }
    // 60 code SMS and 60 confirmations, claimed by whichever server
    // gets there first.
    let expected = 120;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while t.sql_count("SELECT count(*) FROM sms_outbox WHERE status = 'sent'") < expected {
        let failed = t.sql_count("SELECT count(*) FROM sms_outbox WHERE status = 'failed'");
        if failed > 0 || std::time::Instant::now() > deadline {
            let mut c = postgres::Client::connect(&t.url, postgres::NoTls).unwrap();
            let rows: Vec<String> = c
                .query(
                    "SELECT status, coalesce(reason, ''), count(*) FROM sms_outbox GROUP BY 1, 2",
                    &[],
                )
                .unwrap()
                .iter()
                .map(|r| {
                    format!(
                        "{} {:?} {}",
                        r.get::<_, String>(0),
                        r.get::<_, String>(1),
                        r.get::<_, i64>(2)
                    )
                })
                .collect();
            panic!("the outbox was not sent: {rows:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // A moment more for a second send, if there were one.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let accepted = gateway.accepted();
    let refs: std::collections::BTreeSet<String> = accepted
        .iter()
        .map(|r| r.body["client_ref"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(accepted.len() as i64, expected, "each message sent once");
    assert_eq!(refs.len() as i64, expected);
    assert_eq!(t.sql_count("SELECT count(*) FROM sms_outbox"), expected);
}

#[test]
fn handover_load_through_two_servers_reports_and_checks_what_the_office_holds() {
    if pg::skip("two servers: handover load") {
        return;
    }
    let t = TwoServers::start();
    let servers = format!("{},{}", t.a.url(), t.b.url());
    let mut sent = 0;
    for drop_share in ["0", "0.3"] {
        // No --dir: the servers are `handover office serve` on this machine.
        let out = ok(&[
            "load",
            "--server",
            &servers,
            "--devices",
            "6",
            "--events",
            "600",
            "--batch",
            "25",
            "--drop",
            drop_share,
            "--json",
        ]);
        let report: serde_json::Value = serde_json::from_str(&out).unwrap();
        for field in [
            "devices",
            "events",
            "events_per_second",
            "p50_ms",
            "p99_ms",
            "lost",
            "duplicated",
        ] {
            assert!(report.get(field).is_some(), "{field} in {out}");
        }
        assert_eq!(report["devices"], 6);
        assert_eq!(
            (report["lost"].as_u64(), report["duplicated"].as_u64()),
            (Some(0), Some(0))
        );
        assert!(report["events_per_second"].as_f64().unwrap() > 0.0);
        assert!(report["p99_ms"].as_f64().unwrap() >= report["p50_ms"].as_f64().unwrap());
        if drop_share != "0" {
            assert!(report["resent"].as_u64().unwrap() > 0, "{out}");
        }
        sent += report["events"].as_i64().unwrap();
        // What the generator says the office holds, the store holds.
        assert_eq!(t.sql_count("SELECT count(*) FROM events"), sent);
    }
    // A server that is not a `handover office serve` of this machine.
    let out = run(&[
        "load",
        "--server",
        "http://127.0.0.1:9",
        "--devices",
        "1",
        "--events",
        "10",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--dir"));
}

/// A device whose key the test holds: it signs what it is told.
struct Signer {
    key: handover_core::keys::SigningKey,
    id: String,
    cursor: handover_core::event::ChainCursor,
}

impl Signer {
    fn batch(&mut self, kind: handover_core::event::EventKind) -> Vec<u8> {
        let now = Utc::now();
        let body = handover_core::event::EventBody {
            device_id: self.id.clone(),
            seq: self.cursor.next_seq(),
            time: now,
            counter: now.timestamp_millis() + self.cursor.next_seq() as i64,
            clock_suspect: false,
            kind,
            at: None,
        };
        let event = self.cursor.append(&body, &self.key).unwrap();
        handover_core::sync::Batch {
            format: handover_core::sync::BATCH_FORMAT.into(),
            device_id: self.id.clone(),
            device_key: self.key.public_key(),
            events: vec![event],
            acks: Vec::new(),
        }
        .to_bytes()
        .unwrap()
    }
}

#[test]
fn one_items_payments_from_two_devices_at_two_servers_at_once_are_recorded_once() {
    if pg::skip("two servers: one item's payments") {
        return;
    }
    use handover_core::codes::Programme;
    use handover_core::event::{EventKind, PaymentMethod};
    let dir = tempfile::tempdir().unwrap();
    let url = pg::server().database();
    let office_dir = dir.path().join("office");
    let first = Office::init_in(
        &office_dir,
        "PO-1",
        bookings::CodPayee::default(),
        Some(&url),
    )
    .unwrap();
    // The second server: another office process on the same store.
    let second = Office::open_in(&office_dir, Some(&url)).unwrap();
    let now = Utc::now();
    let rows = bookings::parse(
        Programme::Post,
        post_csv(30).as_bytes(),
        first.cod_payee(),
        2026,
    )
    .unwrap();
    // The parcels went out with one postman, then were re-issued to a
    // second: both hold them, both can record a payment.
    let mut signers = Vec::new();
    let mut manifests = Vec::new();
    for name in ["Postman A", "Postman B"] {
        let key = handover_core::keys::SigningKey::generate().unwrap();
        let id = first.enroll(key.public_key(), name, now).unwrap();
        let issued = issue_today(&first, &id, Programme::Post, &rows, test_policy(), now);
        manifests.push(issued.manifest_id.clone());
        signers.push(Signer {
            key,
            id,
            cursor: handover_core::event::ChainCursor::genesis(),
        });
    }
    let with_cod: Vec<&bookings::Booking> =
        rows.iter().filter(|b| b.details.cod().is_some()).collect();
    assert_eq!(with_cod.len(), 10);
    for b in &with_cod {
        let amount = b.details.cod().unwrap().amount_paise;
        let batches: Vec<Vec<u8>> = signers
            .iter_mut()
            .zip(&manifests)
            .map(|(s, m)| {
                s.batch(EventKind::Payment {
                    manifest_id: m.clone(),
                    reference: b.reference.clone(),
                    amount_paise: amount,
                    method: PaymentMethod::Cash,
                })
            })
            .collect();
        let barrier = Barrier::new(2);
        let verdicts: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = [&first, &second]
                .into_iter()
                .zip(&batches)
                .map(|(office, batch)| {
                    let barrier = &barrier;
                    s.spawn(move || {
                        barrier.wait();
                        let ingested = office.ingest(batch, Utc::now()).unwrap();
                        ingested.summary.verdicts.keys().next().unwrap().clone()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut sorted = verdicts.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            ["payment_mismatch", "recorded"],
            "{}: one payment recorded, the other a mismatch",
            b.reference
        );
    }
}

/// Two servers on a PostgreSQL of their own (which the test restarts).
fn on_own_postgres(pg: &pg::Postgres) -> (tempfile::TempDir, Office, ServeProcess, ServeProcess) {
    let dir = tempfile::tempdir().unwrap();
    let url = pg.database();
    let office_dir = dir.path().join("office");
    drop(
        Office::init_in(
            &office_dir,
            "PO-1",
            bookings::CodPayee::default(),
            Some(&url),
        )
        .unwrap(),
    );
    let a = ServeProcess::start(&office_dir, &[]);
    let b = ServeProcess::start(&office_dir, &[]);
    let office = Office::open(&office_dir).unwrap();
    (dir, office, a, b)
}

#[test]
fn a_database_that_is_down_is_a_503_to_retry_and_nothing_is_lost() {
    if pg::skip("a_database_that_is_down_is_a_503_to_retry_and_nothing_is_lost") {
        return;
    }
    let pg = pg::Postgres::start(false).unwrap();
    let (_dir, office, a, _b) = on_own_postgres(&pg);
    let sims = handover_cli::load::prepare(&office, &a.link(), 1, 10, 10).unwrap();
    let sim = &sims[0];
    let body = &sim.batches()[0];

    pg.shut_down();
    let started = std::time::Instant::now();
    let req = sim.batch_request(body);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut post = agent.post(format!("{}{}", a.url(), req.path));
    for (name, value) in &req.headers {
        post = post.header(*name, value);
    }
    let mut resp = post.send(&req.body[..]).unwrap();
    let answer = resp.body_mut().read_to_vec().unwrap();
    assert_eq!(
        resp.status().as_u16(),
        503,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let err: api::ApiError = serde_json::from_slice(&answer).unwrap();
    assert_eq!(err.error, api::ErrorCode::Unavailable);
    // The pool's wait bounds the answer (2 s), with room for a slow machine.
    assert!(started.elapsed() < std::time::Duration::from_secs(10));

    // Back up: the same server takes the same batch, with no restart of
    // its own, and the office holds the batch once.
    pg.start_again().unwrap();
    let resp = a.link().send(&sim.batch_request(body)).unwrap();
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let mut report = handover_cli::load::LoadReport::default();
    handover_cli::load::check(&office, &sims, &mut report).unwrap();
    assert_eq!((report.lost, report.duplicated), (0, 0));
}

#[test]
fn a_database_restart_under_load_loses_nothing_and_the_servers_recover_by_themselves() {
    if pg::skip("a_database_restart_under_load_loses_nothing_and_the_servers_recover_by_themselves")
    {
        return;
    }
    let pg = pg::Postgres::start(false).unwrap();
    let (_dir, office, a, b) = on_own_postgres(&pg);
    // 3,000 events offered at 1,000 a second in batches of 10 over both
    // servers: three seconds, with PostgreSQL restarted after the first.
    let sims = handover_cli::load::prepare(&office, &a.link(), 10, 3_000, 10).unwrap();
    let links = [a.link(), b.link()];
    let report = std::thread::scope(|s| {
        let run = s.spawn(|| handover_cli::load::drive_at_rate(&links, &sims, 1_000.0, 10));
        std::thread::sleep(std::time::Duration::from_secs(1));
        assert!(!run.is_finished(), "the load ended before the restart");
        pg.restart().unwrap();
        assert!(!run.is_finished(), "the load ended during the restart");
        run.join().unwrap()
    });
    let mut report = report.expect("every batch answered across the restart");
    handover_cli::load::check(&office, &sims, &mut report).unwrap();
    assert_eq!((report.lost, report.duplicated), (0, 0), "{report:?}");
    // Both servers answer at once afterwards (their pools hold only live
    // connections now).
    for server in [&a, &b] {
        let more = handover_cli::load::prepare(&office, &server.link(), 1, 1, 1).unwrap();
        let resp = server
            .link()
            .send(&more[0].batch_request(&more[0].batches()[0]))
            .unwrap();
        assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    }
}
