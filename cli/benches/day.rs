//! Speed of a working day, as ratios against the raw work it cannot avoid,
//! measured in the same run. `cargo bench -p handover-cli --bench day`
//!
//! * The demo day (2 × 200 items, release build) against a raw baseline of
//!   the PBKDF2 it must do: one verifier per item at issue and one check per
//!   item at the door. Target: the day under 30 s; the bench exits non-zero
//!   above it.
//! * One `verify` at the door (PBKDF2 + a durable SQLite commit with
//!   `synchronous=FULL`) against one raw PBKDF2 at the same iterations.
//! * The SMS outbox: 5,000 code messages through the file sender (target:
//!   under 5 s), and 500 through a stand-in gateway answering in 50 ms
//!   (target: at least 100 messages a second), each against the same
//!   messages through a sender that answers at once (the outbox's own
//!   cost, the raw baseline).

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use chrono::Utc;
use handover_cli::demo::{self, DemoConfig};
use handover_core::codes::{Programme, DEFAULT_ITERATIONS};
use handover_core::device::Device;
use handover_office::bookings;
use handover_office::issue::IssueRequest;
use handover_office::sms::{FileSender, Sender};
use handover_office::Office;

const DAY_TARGET: Duration = Duration::from_secs(30);

fn raw_pbkdf2(n: u32, iterations: u32) -> Duration {
    let mut out = [0u8; 32];
    let iterations = NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN);
    let start = Instant::now();
    for i in 0..n {
        ring::pbkdf2::derive(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            &i.to_be_bytes(),
            b"123456",
            &mut out,
        );
    }
    std::hint::black_box(out);
    start.elapsed()
}

fn main() {
    let items = 200u32;
    // Baseline: 2 PBKDF2 per item (issue + one check), both devices.
    let baseline = raw_pbkdf2(2 * 2 * items, DEFAULT_ITERATIONS);
    let start = Instant::now();
    let day = demo::run(&DemoConfig {
        dir: None,
        items,
        seed: 1,
        verbose: false,
    });
    let elapsed = start.elapsed();
    if let Err(e) = day {
        eprintln!("demo failed: {e}");
        std::process::exit(1);
    }
    println!(
        "day: {:.2} s for 2 x {items} items (target {} s); raw PBKDF2 baseline {:.2} s; ratio {:.2}",
        elapsed.as_secs_f64(),
        DAY_TARGET.as_secs(),
        baseline.as_secs_f64(),
        elapsed.as_secs_f64() / baseline.as_secs_f64()
    );

    // One verify at the door vs one raw PBKDF2.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let now = Utc::now();
    let office = Office::init(&dir.path().join("office"), "PO-1").unwrap_or_else(|e| panic!("{e}"));
    let device = Device::open(dir.path().join("d.db")).unwrap_or_else(|e| panic!("{e}"));
    device
        .trust_office_key(office.public_key(), now)
        .unwrap_or_else(|e| panic!("{e}"));
    let n = 50u32;
    let issued = issue_items(&office, device.identity().public_key, n, None);
    device
        .import_manifest(&issued.sealed, now)
        .unwrap_or_else(|e| panic!("{e}"));
    let codes: Vec<(String, String)> = issued
        .sms
        .iter()
        .map(|s| (s.reference.clone(), s.code.clone()))
        .collect();
    let start = Instant::now();
    for (r, c) in &codes {
        device
            .verify(r, c, Utc::now())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let per_verify = start.elapsed() / n;
    let per_raw = raw_pbkdf2(n, DEFAULT_ITERATIONS) / n;
    println!(
        "verify: {:.2} ms per accepted code (PBKDF2 + durable commit); raw PBKDF2 {:.2} ms; ratio {:.2}",
        per_verify.as_secs_f64() * 1e3,
        per_raw.as_secs_f64() * 1e3,
        per_verify.as_secs_f64() / per_raw.as_secs_f64()
    );
    let mut failed = sms_outbox();
    if elapsed > DAY_TARGET {
        eprintln!(
            "day over target: {:.2} s > {} s",
            elapsed.as_secs_f64(),
            DAY_TARGET.as_secs()
        );
        failed = true;
    }
    if failed {
        std::process::exit(1);
    }
}

/// Enrol `device_key` and issue it `n` parcels under `policy` (the
/// programme's default if none).
fn issue_items(
    office: &Office,
    device_key: handover_core::keys::PublicKey,
    n: u32,
    policy: Option<handover_core::codes::Policy>,
) -> handover_office::issue::Issued {
    let now = Utc::now();
    let id = office
        .enroll(device_key, "P", now)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut csv = String::from("reference,service,addressee,address,mobile,cod_paise\n");
    for i in 0..n {
        let r = handover_core::s10::make("EE", i, "IN").unwrap_or_default();
        csv.push_str(&format!("{r},parcel,A,B,98765{i:05},\n"));
    }
    let rows = bookings::parse(Programme::Post, csv.as_bytes(), office.cod_payee(), 2026)
        .unwrap_or_else(|e| panic!("{e}"));
    office
        .issue(
            &IssueRequest {
                device_id: &id,
                programme: Programme::Post,
                bookings: &rows,
                policy,
                valid_from: now - chrono::Duration::hours(1),
                valid_until: now + chrono::Duration::hours(8),
                reissue: &[],
                missing: handover_office::issue::Missing::Refuse,
                now,
            },
            &|| {},
            |_| Ok(()),
        )
        .unwrap_or_else(|e| panic!("{e}"))
}

/// An office with `n` code SMS queued (a cheap policy: the SMS are the
/// subject, not PBKDF2).
fn office_with_outbox(dir: &std::path::Path, n: u32) -> Office {
    let office = Office::init(&dir.join("office"), "PO-1").unwrap_or_else(|e| panic!("{e}"));
    let key = handover_core::keys::SigningKey::generate().unwrap_or_else(|e| panic!("{e}"));
    let policy = handover_core::codes::Policy {
        digits: 6,
        tag_bits: 64,
        iterations: 1,
        max_attempts: 3,
    };
    issue_items(&office, key.public_key(), n, Some(policy));
    office
}

/// A gateway stand-in in the process: answers after `delay`.
struct StandIn(Duration);

impl Sender for StandIn {
    fn send(&self, _: &handover_office::sms::Outgoing<'_>) -> handover_office::sms::Attempt {
        std::thread::sleep(self.0);
        handover_office::sms::Attempt::Sent { gateway_id: None }
    }
}

/// Send the outbox of a fresh office of `n` messages with `sender`; the time.
fn send_outbox(n: u32, sender: &dyn Sender) -> Duration {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let office = office_with_outbox(dir.path(), n);
    let start = Instant::now();
    let s = office
        .sms_send(sender, Utc::now())
        .unwrap_or_else(|e| panic!("{e}"));
    let took = start.elapsed();
    assert_eq!(s.sent, u64::from(n), "{s:?}");
    took
}

/// The SMS targets; true when one is missed.
fn sms_outbox() -> bool {
    let mut missed = false;
    let n = 5_000;
    let raw = send_outbox(n, &StandIn(Duration::ZERO));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let file = send_outbox(n, &FileSender::new(dir.path().join("sms.csv")));
    println!(
        "sms, file sender: {n} messages in {:.2} s (target under 5 s); outbox alone {:.2} s; ratio {:.2}",
        file.as_secs_f64(),
        raw.as_secs_f64(),
        file.as_secs_f64() / raw.as_secs_f64()
    );
    if file > Duration::from_secs(5) {
        eprintln!(
            "sms through the file sender over target: {:.2} s",
            file.as_secs_f64()
        );
        missed = true;
    }
    let n = 500;
    let raw = send_outbox(n, &StandIn(Duration::ZERO));
    let gateway = send_outbox(n, &StandIn(Duration::from_millis(50)));
    let rate = f64::from(n) / gateway.as_secs_f64();
    println!(
        "sms, gateway answering in 50 ms: {rate:.0} messages/s (target at least 100); outbox alone {:.0} messages/s",
        f64::from(n) / raw.as_secs_f64()
    );
    if rate < 100.0 {
        eprintln!("sms through a 50 ms gateway under target: {rate:.0} messages/s");
        missed = true;
    }
    missed
}
