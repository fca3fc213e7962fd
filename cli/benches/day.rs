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
//! * The device's manifest import (5,000 items) against its raw floor: the
//!   manifest's signature check and parse plus a bulk insert of the same
//!   rows into tables of the same shape (the device's columns, keys, check
//!   and index) and of the signed manifest (which the device keeps), in one
//!   durable transaction (target: within 1.5×);
//!   its batch export (1,000 events) against a plain select of the same
//!   rows (target: within 1.3×). Best of nine imports and five exports: a durable commit's
//!   time varies by more than the work. Before each timed import (and its
//!   floor) the machine's dirty pages are written out (`sync`), and the two
//!   take turns going first, so neither pays for the other's writeback or
//!   for the build's; a target counts as missed only when three rounds in a
//!   row miss it.

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
/// Rounds of [`import_export`] before its targets count as missed.
const IMPORT_ROUNDS: usize = 3;

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
    if std::env::var("ONLY_IMPORT").is_ok() {
        for _ in 0..5 {
            import_export();
        }
        return;
    }
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
    // A round whose every trial met a busy disk can miss on noise alone:
    // a target counts as missed when it is missed in each of three rounds
    // (each round printed).
    failed |= (0..IMPORT_ROUNDS).all(|_| import_export());
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

const IMPORT_ITEMS: u32 = 5_000;
const EXPORT_EVENTS: u32 = 1_000;
const IMPORT_TARGET: f64 = 1.5;
const EXPORT_TARGET: f64 = 1.3;

/// A SQLite file set up as the device's store is (WAL, synchronous=FULL),
/// with a table of the shape of the device's items.
fn raw_items_table(path: &std::path::Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap_or_else(|e| panic!("{e}"));
    // The device's tables as they are (schema version 3): their columns,
    // keys, check and index are the shape of the data, not the device's
    // overhead.
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;
         CREATE TABLE manifests (manifest_id TEXT PRIMARY KEY, sealed BLOB NOT NULL) STRICT;
         CREATE TABLE items (
             manifest_id TEXT NOT NULL REFERENCES manifests(manifest_id),
             reference TEXT NOT NULL, code_version INTEGER NOT NULL, policy TEXT NOT NULL,
             verifier_salt BLOB NOT NULL, verifier_tag BLOB NOT NULL, details TEXT,
             state TEXT NOT NULL
                 CHECK (state IN ('pending', 'handed_over', 'exception', 'locked', 'withdrawn')),
             exception_reason TEXT, attempts INTEGER NOT NULL DEFAULT 0, outcome_seq INTEGER,
             paid INTEGER NOT NULL DEFAULT 0, upi_requests INTEGER NOT NULL DEFAULT 0,
             PRIMARY KEY (manifest_id, reference)) STRICT;
         CREATE INDEX items_by_reference ON items(reference, code_version);",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    conn
}

/// How long `work` takes, once every dirty page the machine holds (the
/// bench's own set-up and the build before it) is written out, so that a
/// timed durable commit waits for its own data only: on ext4 an `fsync`
/// can wait for other files' writeback, and a CI machine that has just
/// built the workspace has gigabytes of it.
fn settled(work: impl FnOnce()) -> Duration {
    // Best effort: without `sync` the timings are only noisier.
    let _ = std::process::Command::new("sync").status();
    let t = Instant::now();
    work();
    t.elapsed()
}

/// The import's floor: the signature check and parse, then the signed
/// manifest and its rows in one durable transaction.
fn raw_import(sealed: &[u8], key: handover_core::keys::PublicKey, conn: &mut rusqlite::Connection) {
    let manifest =
        handover_core::manifest::Manifest::open(sealed, &[key]).unwrap_or_else(|e| panic!("{e}"));
    let tx = conn.transaction().unwrap_or_else(|e| panic!("{e}"));
    // The device keeps the signed manifest as it came (evidence).
    tx.execute(
        "INSERT INTO manifests (manifest_id, sealed) VALUES (?1, ?2)",
        rusqlite::params![manifest.manifest_id, sealed],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    {
        let mut st = tx
            .prepare(
                "INSERT INTO items (manifest_id, reference, code_version, policy, verifier_salt,
                     verifier_tag, details, state) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending')",
            )
            .unwrap_or_else(|e| panic!("{e}"));
        for item in &manifest.items {
            let details = serde_json::to_string(&item.details).unwrap_or_default();
            st.execute(rusqlite::params![
                manifest.manifest_id,
                item.reference,
                item.code_version,
                item.policy,
                &item.verifier.salt[..],
                item.verifier.tag,
                details,
            ])
            .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    tx.commit().unwrap_or_else(|e| panic!("{e}"));
}

/// The export's floor: the same rows, selected.
fn raw_export(conn: &rusqlite::Connection, n: u32) -> usize {
    let mut st = conn
        .prepare(
            "SELECT seq, prev_hash, body, hash, signature FROM events
             WHERE acked = 0 ORDER BY seq LIMIT ?1",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let rows = st
        .query_map([i64::from(n)], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, Vec<u8>>(3)?,
                r.get::<_, Vec<u8>>(4)?,
            ))
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let rows: Vec<_> = rows
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}"));
    std::hint::black_box(&rows);
    rows.len()
}

/// The device's import and export against their floors; whether a target
/// was missed.
fn import_export() -> bool {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let office = Office::init(&dir.path().join("office"), "PO-1").unwrap_or_else(|e| panic!("{e}"));
    let cheap = handover_core::codes::Policy {
        digits: 6,
        tag_bits: 16,
        iterations: 1,
        max_attempts: 3,
    };
    let now = Utc::now();
    let (mut import, mut import_floor) = (Duration::MAX, Duration::MAX);
    let (mut export, mut export_floor) = (Duration::MAX, Duration::MAX);
    for trial in 0..9 {
        let path = dir.path().join(format!("import-{trial}.db"));
        let device = Device::open(&path).unwrap_or_else(|e| panic!("{e}"));
        device
            .trust_office_key(office.public_key(), now)
            .unwrap_or_else(|e| panic!("{e}"));
        let issued = issue_items(
            &office,
            device.identity().public_key,
            IMPORT_ITEMS,
            Some(cheap),
        );
        let mut raw = raw_items_table(&dir.path().join(format!("raw-{trial}.db")));
        // Each side goes first in every other trial, each after the
        // disk settled: neither pays for the other's writeback.
        let time_import = || {
            settled(|| {
                device
                    .import_manifest(&issued.sealed, now)
                    .unwrap_or_else(|e| panic!("{e}"));
            })
        };
        let mut time_floor =
            || settled(|| raw_import(&issued.sealed, office.public_key(), &mut raw));
        let (took, floor) = if trial % 2 == 0 {
            let took = time_import();
            (took, time_floor())
        } else {
            let floor = time_floor();
            (time_import(), floor)
        };
        import = import.min(took);
        import_floor = import_floor.min(floor);

        // Export: the import event and EXPORT_EVENTS - 1 items handed
        // over (cheap codes), on the first device.
        if trial == 0 {
            for s in issued.sms.iter().take(EXPORT_EVENTS as usize - 1) {
                device
                    .verify(&s.reference, &s.code, Utc::now())
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }
    let path = dir.path().join("import-0.db");
    let device = Device::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let raw = rusqlite::Connection::open(&path).unwrap_or_else(|e| panic!("{e}"));
    for _ in 0..5 {
        let t = Instant::now();
        let batch = device
            .export_batch(u64::from(EXPORT_EVENTS))
            .unwrap_or_else(|e| panic!("{e}"));
        export = export.min(t.elapsed());
        let t = Instant::now();
        let rows = raw_export(&raw, EXPORT_EVENTS);
        export_floor = export_floor.min(t.elapsed());
        assert_eq!(rows, batch.events.len());
        assert_eq!(rows, EXPORT_EVENTS as usize);
    }
    let import_ratio = import.as_secs_f64() / import_floor.as_secs_f64();
    let export_ratio = export.as_secs_f64() / export_floor.as_secs_f64();
    println!(
        "manifest import: {IMPORT_ITEMS} items in {:.1} ms; floor (signature check + bulk insert) {:.1} ms; ratio {:.2} (target {IMPORT_TARGET}): {}",
        import.as_secs_f64() * 1e3,
        import_floor.as_secs_f64() * 1e3,
        import_ratio,
        if import_ratio <= IMPORT_TARGET { "met" } else { "MISSED" }
    );
    println!(
        "batch export: {EXPORT_EVENTS} events in {:.1} ms; floor (plain select of the same rows) {:.1} ms; ratio {:.2} (target {EXPORT_TARGET}): {}",
        export.as_secs_f64() * 1e3,
        export_floor.as_secs_f64() * 1e3,
        export_ratio,
        if export_ratio <= EXPORT_TARGET { "met" } else { "MISSED" }
    );
    import_ratio > IMPORT_TARGET || export_ratio > EXPORT_TARGET
}
