//! Speed of a working day, as ratios against the raw work it cannot avoid,
//! measured in the same run. `cargo bench -p handover-cli --bench day`
//!
//! * The demo day (2 × 200 items, release build) against a raw baseline of
//!   the PBKDF2 it must do: one verifier per item at issue and one check per
//!   item at the door. Target: the day under 30 s; the bench exits non-zero
//!   above it.
//! * One `verify` at the door (PBKDF2 + a durable SQLite commit with
//!   `synchronous=FULL`) against one raw PBKDF2 at the same iterations.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use chrono::Utc;
use handover_cli::demo::{self, DemoConfig};
use handover_core::codes::{Programme, DEFAULT_ITERATIONS};
use handover_core::device::Device;
use handover_office::bookings;
use handover_office::issue::IssueRequest;
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
    let id = office
        .enroll(device.identity().public_key, "P", now)
        .unwrap_or_else(|e| panic!("{e}"));
    let n = 50u32;
    let mut csv = String::from("reference,service,addressee,address,mobile,cod_paise\n");
    for i in 0..n {
        let r = handover_core::s10::make("EE", i, "IN").unwrap_or_default();
        csv.push_str(&format!("{r},parcel,A,B,98765{i:05},\n"));
    }
    let rows = bookings::parse(Programme::Post, csv.as_bytes(), office.cod_payee(), 2026)
        .unwrap_or_else(|e| panic!("{e}"));
    let issued = office
        .issue(
            &IssueRequest {
                device_id: &id,
                programme: Programme::Post,
                bookings: &rows,
                policy: None,
                valid_from: now - chrono::Duration::hours(1),
                valid_until: now + chrono::Duration::hours(8),
                reissue: &[],
                missing: handover_office::issue::Missing::Refuse,
                now,
            },
            &|| {},
            |_| Ok(()),
        )
        .unwrap_or_else(|e| panic!("{e}"));
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
    if elapsed > DAY_TARGET {
        eprintln!(
            "day over target: {:.2} s > {} s",
            elapsed.as_secs_f64(),
            DAY_TARGET.as_secs()
        );
        std::process::exit(1);
    }
}
