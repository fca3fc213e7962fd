//! National scale: two `handover office serve` processes on one PostgreSQL,
//! and the embedded SQLite store beside them, in the same run.
//! `cargo bench -p handover-cli --bench scale`
//!
//! Everything runs on this machine: a PostgreSQL with production settings
//! (fsync and synchronous commit on; a throwaway server from Debian's
//! programs, on a loopback port), the servers, and the load generator
//! (`handover load`'s library: 50 simulated devices, 20,000 signed events
//! in batches of 100, sent all at once).
//!
//! 1. **Raw baseline**: the same load ingested in-process by the office
//!    library on the same PostgreSQL, 50 threads, no HTTP.
//! 2. **Two servers on PostgreSQL**: devices spread over both. The office
//!    then holds exactly what was sent (`lost`, `duplicated`).
//! 3. **Two servers, 10 % of answers dropped**: devices send those batches
//!    again, as after a lost response; the same check holds.
//! 4. **One event per request** (CoWIN's shape: a vaccinator online syncs
//!    each dose as it is given): 100 devices, 20 batches of one event each,
//!    through the two servers. The figure is requests a second.
//! 5. **One server on SQLite**: the embedded default under the first load.
//! 6. **Latency at an offered rate** (`handover load --rate`: an open loop,
//!    Poisson arrivals of batches of 100, latency from when a batch was
//!    due): at 50, 70 and 90 % of the capacity measured above, and at
//!    5,000 events/s, for two servers on PostgreSQL and one on SQLite.
//!
//! The servers run as an operator would run them: `handover office serve`
//! with the default `office.toml`, so they also send the SMS outbox (the
//! confirmations of the handovers) to its file every five seconds.
//!
//! Targets: at least 5,000 events/s into PostgreSQL with two servers, with
//! and without the dropped answers; nothing lost or duplicated anywhere;
//! at an offered 5,000 events/s, p99 under 250 ms and kept up, on both
//! stores.
//! The one-event-per-request figure is reported against CoWIN's national
//! peak (about 700 doses a second), not held to it: on these two shared
//! cores it is bound by the fixed cost of a request (docs/scale.md).
//! India Post's APT: 3.7 million deliveries a day. The bench exits
//! non-zero on a miss.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use chrono::Utc;
use handover_cli::client::OfficeLink;
use handover_cli::load::{self, LoadReport};
use handover_office::{bookings, Office};

#[allow(dead_code)]
#[path = "../../tests/src/pg.rs"]
mod pg;

const DEVICES: u64 = 50;
const EVENTS: u64 = 20_000;
const BATCH: u64 = 100;
const DROP: f64 = 0.10;
const TARGET_EVENTS_PER_SECOND: f64 = 5_000.0;
/// CoWIN's shape: devices, and one-event requests each.
const DOSE_DEVICES: u64 = 100;
const DOSES_EACH: u64 = 20;
/// CoWIN's national peak, doses a second: the one-event target.
const COWIN_PEAK_PER_SECOND: f64 = 700.0;
/// Rounds of the one-event measurement (each its baseline, then HTTP); the
/// median round's ratio is judged.
const DOSE_ROUNDS: usize = 3;
/// The one-event requests through two servers against the same requests
/// taken in-process by the office library, in the same round.
const DOSE_RATIO_TARGET: f64 = 0.6;
/// Requests of the lone device whose time is taken apart: within the
/// servers' default burst for one device (40), so none waits for the
/// service's rate limit.
const LONE_REQUESTS: u64 = 30;
/// Seconds each offered rate is held.
const RATE_SECONDS: f64 = 8.0;
const P99_TARGET_MS: f64 = 250.0;

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("scale bench: {what}: {e}");
    std::process::exit(1)
}

/// `handover office serve` on a loopback port, killed when dropped.
struct Serve(Child, String);

impl Serve {
    fn start(office_dir: &Path) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_handover"))
            .args(["office", "serve", "--dir"])
            .arg(office_dir)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| fail("office serve", e));
        let mut line = String::new();
        let stdout = child
            .stdout
            .take()
            .unwrap_or_else(|| fail("serve", "no stdout"));
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap_or_else(|e| fail("serve", e));
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| fail("serve", format!("first line {line:?}")))
            .to_owned();
        Serve(child, url)
    }

    fn link(&self) -> OfficeLink {
        OfficeLink::new(&self.1, None).unwrap_or_else(|e| fail("link", e))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Prepare new devices and drive them through `servers`, then check.
fn run(office: &Office, servers: &[&Serve], drop_share: f64) -> LoadReport {
    run_shaped(office, servers, drop_share, DEVICES, EVENTS, BATCH)
}

/// Simulated devices ready to send, and links spreading them over `servers`.
fn prepared(
    office: &Office,
    servers: &[&Serve],
    devices: u64,
    events: u64,
    batch: u64,
) -> (Vec<load::SimDevice>, Vec<OfficeLink>) {
    let sims = load::prepare(office, &servers[0].link(), devices, events, batch)
        .unwrap_or_else(|e| fail("prepare", e));
    // Two connections' worth of links per server.
    let links = servers
        .iter()
        .cycle()
        .take(servers.len() * 2)
        .map(|s| s.link())
        .collect();
    (sims, links)
}

/// [`run`] with `devices` sending `events` in all, `batch` per request.
fn run_shaped(
    office: &Office,
    servers: &[&Serve],
    drop_share: f64,
    devices: u64,
    events: u64,
    batch: u64,
) -> LoadReport {
    let (sims, links) = prepared(office, servers, devices, events, batch);
    let mut report = load::drive(&links, &sims, drop_share).unwrap_or_else(|e| fail("drive", e));
    load::check(office, &sims, &mut report).unwrap_or_else(|e| fail("check", e));
    report
}

/// An open loop at `rate` events/s for [`RATE_SECONDS`] through `servers`.
fn run_at_rate(office: &Office, servers: &[&Serve], rate: f64) -> LoadReport {
    let events = (rate * RATE_SECONDS).round() as u64;
    let (sims, links) = prepared(office, servers, DEVICES, events, BATCH);
    let mut report = load::drive_at_rate(&links, &sims, rate, BATCH)
        .unwrap_or_else(|e| fail("drive at a rate", e));
    load::check(office, &sims, &mut report).unwrap_or_else(|e| fail("check", e));
    report
}

/// Open-loop rows at 50, 70 and 90 % of `capacity`, then at the target.
fn latency_rows(office: &Office, servers: &[&Serve], capacity: f64) -> Vec<(String, LoadReport)> {
    let mut rows: Vec<(String, LoadReport)> = [0.5, 0.7, 0.9]
        .iter()
        .map(|share| {
            (
                format!("{:.0} % of capacity", share * 100.0),
                run_at_rate(office, servers, capacity * share),
            )
        })
        .collect();
    rows.push((
        format!("{TARGET_EVENTS_PER_SECOND:.0} events/s"),
        run_at_rate(office, servers, TARGET_EVENTS_PER_SECOND),
    ));
    rows
}

fn rate_line(store: &str, what: &str, r: &LoadReport) {
    println!(
        "{store}, offered {what} ({:.0}/s): p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms; achieved {:.0}/s, {}; lost {}, duplicated {}",
        r.offered_events_per_second.unwrap_or(0.0),
        r.p50_ms,
        r.p99_ms,
        r.p999_ms,
        r.events_per_second,
        if r.kept_up == Some(true) { "kept up" } else { "fell behind" },
        r.lost,
        r.duplicated
    );
}

/// Where a lone one-event request's time goes on PostgreSQL: one device,
/// [`LONE_REQUESTS`] requests one after another (so no commit is shared),
/// in-process step by step, then the same over HTTP through `server`.
fn lone_request(office: &Office, server: &Serve) {
    let (lone, _) = prepared(office, &[server], 1, LONE_REQUESTS, 1);
    let steps = load::request_steps(office, &lone[0]).unwrap_or_else(|e| fail("steps", e));
    let (lone, links) = prepared(office, &[server], 1, LONE_REQUESTS, 1);
    let http = load::drive(&links[..1], &lone, 0.0).unwrap_or_else(|e| fail("drive", e));
    println!("where a lone one-event request's time goes on PostgreSQL (one device, {LONE_REQUESTS} requests one after another), µs per request:");
    print!("{}", steps.table(http.p50_ms));
}

/// `SCALE_ONLY=one-event`: the one-event rounds alone, on a fresh
/// PostgreSQL and two servers (a minute, for working on that figure).
fn one_event_only() {
    let postgres = pg::Postgres::start(true).unwrap_or_else(|e| fail("PostgreSQL", e));
    let dir = tempfile::tempdir().unwrap_or_else(|e| fail("tempdir", e));
    let pg_dir = dir.path().join("pg-office");
    let office = Office::init_in(
        &pg_dir,
        "PO-SCALE",
        bookings::CodPayee::default(),
        Some(&postgres.database()),
    )
    .unwrap_or_else(|e| fail("init on PostgreSQL", e));
    let (a, b) = (Serve::start(&pg_dir), Serve::start(&pg_dir));
    let rounds = dose_rounds(&office, &[&a, &b]);
    lone_request(&office, &a);
    drop((a, b));
    if judge_doses(&rounds) {
        std::process::exit(1);
    }
}

/// Items issued a second into the store: 20 manifests of 500 items, with
/// the cheapest verifiers, so the figure is the store's work, not PBKDF2's.
fn issue_rate(office: &Office) -> f64 {
    use handover_core::codes::{Policy, Programme};
    let now = Utc::now();
    let mut items = 0;
    let mut took = 0.0;
    for d in 0..20u32 {
        let key = handover_core::keys::SigningKey::generate().unwrap_or_else(|e| fail("key", e));
        let device = office
            .enroll(key.public_key(), &format!("Issue {d}"), now)
            .unwrap_or_else(|e| fail("enroll", e));
        let mut csv = String::from("reference,service,addressee,address,mobile,cod_paise\n");
        for i in 0..500u32 {
            let r = handover_core::s10::make("IS", d * 1000 + i, "IN")
                .unwrap_or_else(|e| fail("ref", e));
            csv.push_str(&format!("{r},parcel,Issue {i},{i} Issue Road,9{i:09},\n"));
        }
        let rows = bookings::parse(Programme::Post, csv.as_bytes(), office.cod_payee(), 2026)
            .unwrap_or_else(|e| fail("bookings", e));
        let started = Instant::now();
        office
            .issue(
                &handover_office::issue::IssueRequest {
                    device_id: &device,
                    programme: Programme::Post,
                    bookings: &rows,
                    policy: Some(Policy {
                        digits: 6,
                        tag_bits: 16,
                        iterations: 1,
                        max_attempts: 3,
                    }),
                    valid_from: now - chrono::Duration::hours(1),
                    valid_until: now + chrono::Duration::hours(8),
                    reissue: &[],
                    missing: handover_office::issue::Missing::Refuse,
                    now,
                },
                &|| {},
                |_| Ok(()),
            )
            .unwrap_or_else(|e| fail("issue", e));
        took += started.elapsed().as_secs_f64();
        items += rows.len();
    }
    items as f64 / took
}

/// The events table's size on disk (with indexes and TOAST) per event held.
fn bytes_per_event(url: &str) -> f64 {
    let mut client = postgres::Client::connect(url, postgres::NoTls)
        .unwrap_or_else(|e| fail("connect for sizes", e));
    client
        .batch_execute("VACUUM ANALYZE events")
        .unwrap_or_else(|e| fail("vacuum", e));
    let row = client
        .query_one(
            "SELECT pg_total_relation_size('events')::FLOAT8 / GREATEST(count(*), 1) FROM events",
            &[],
        )
        .unwrap_or_else(|e| fail("sizes", e));
    row.get(0)
}

fn line(what: &str, r: &LoadReport) {
    println!(
        "{what}: {:.0} events/s; batch p50 {:.1} ms, p99 {:.1} ms; resent {}; lost {}, duplicated {}",
        r.events_per_second, r.p50_ms, r.p99_ms, r.resent, r.lost, r.duplicated
    );
}

/// CoWIN's shape, [`DOSE_ROUNDS`] times: the raw baseline (the office
/// library taking the signed one-event requests in-process, one thread per
/// device, as `POST /v1/batches` takes them), then new devices through
/// `servers`. Sorted by the ratio of the two; the median is `[DOSE_ROUNDS / 2]`.
fn dose_rounds(office: &Office, servers: &[&Serve]) -> Vec<(f64, f64, LoadReport)> {
    let mut rounds: Vec<(f64, f64, LoadReport)> = (0..DOSE_ROUNDS)
        .map(|_| {
            let (sims, _) = prepared(office, servers, DOSE_DEVICES, DOSE_DEVICES * DOSES_EACH, 1);
            let in_process = load::requests_in_process(office, &sims)
                .unwrap_or_else(|e| fail("in-process requests", e));
            let http = run_shaped(
                office,
                servers,
                0.0,
                DOSE_DEVICES,
                DOSE_DEVICES * DOSES_EACH,
                1,
            );
            (http.requests_per_second / in_process, in_process, http)
        })
        .collect();
    rounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    rounds
}

/// Print the one-event rounds and judge the median; whether it missed.
fn judge_doses(rounds: &[(f64, f64, LoadReport)]) -> bool {
    let ratios: Vec<String> = rounds.iter().map(|r| format!("{:.2}", r.0)).collect();
    let Some((ratio, in_process, http)) = rounds.get(DOSE_ROUNDS / 2) else {
        return true;
    };
    let peak_met = http.requests_per_second >= COWIN_PEAK_PER_SECOND;
    let ratio_met = *ratio >= DOSE_RATIO_TARGET;
    println!(
        "one event per request, two servers on PostgreSQL ({DOSE_DEVICES} devices × {DOSES_EACH}, the median of {DOSE_ROUNDS} rounds, ratios {}): {:.0} requests/s, p50 {:.1} ms, p99 {:.1} ms; in-process (raw baseline: the same checks, nonce, ingest and ack) {:.0} requests/s; ratio {:.2} (target {DOSE_RATIO_TARGET}): {}; CoWIN's peak of {COWIN_PEAK_PER_SECOND:.0}/s: {}",
        ratios.join(" "),
        http.requests_per_second,
        http.p50_ms,
        http.p99_ms,
        in_process,
        ratio,
        if ratio_met { "met" } else { "MISSED" },
        if peak_met { "met" } else { "MISSED" },
    );
    let lossy = rounds
        .iter()
        .any(|(_, _, r)| r.lost > 0 || r.duplicated > 0);
    if lossy {
        eprintln!("scale bench: a one-event round lost or duplicated events");
    }
    !(ratio_met && peak_met) || lossy
}

fn main() {
    if std::env::var("SCALE_ONLY").as_deref() == Ok("one-event") {
        one_event_only();
        return;
    }
    let postgres = pg::Postgres::start(true).unwrap_or_else(|e| fail("PostgreSQL", e));
    let dir = tempfile::tempdir().unwrap_or_else(|e| fail("tempdir", e));

    // PostgreSQL: the office, the in-process baseline, two servers.
    let pg_dir = dir.path().join("pg-office");
    let url = postgres.database();
    let office = Office::init_in(
        &pg_dir,
        "PO-SCALE",
        bookings::CodPayee::default(),
        Some(&url),
    )
    .unwrap_or_else(|e| fail("init on PostgreSQL", e));
    let (a, b) = (Serve::start(&pg_dir), Serve::start(&pg_dir));

    let sims = load::prepare(&office, &a.link(), DEVICES, EVENTS, BATCH)
        .unwrap_or_else(|e| fail("prepare", e));
    let baseline =
        load::ingest_in_process(&office, &sims).unwrap_or_else(|e| fail("in-process ingest", e));

    let issue_rate = issue_rate(&office);
    let two = run(&office, &[&a, &b], 0.0);
    let dropped = run(&office, &[&a, &b], DROP);
    let dose_rounds = dose_rounds(&office, &[&a, &b]);
    let pg_rates = latency_rows(&office, &[&a, &b], two.events_per_second);
    lone_request(&office, &a);
    drop((a, b));
    let bytes_per_event = bytes_per_event(&url);

    // SQLite: the embedded default, one server.
    let sqlite_dir = dir.path().join("sqlite-office");
    let sqlite = Office::init(&sqlite_dir, "PO-SCALE").unwrap_or_else(|e| fail("init", e));
    let one = Serve::start(&sqlite_dir);
    let embedded = run(&sqlite, &[&one], 0.0);
    let sqlite_rates = latency_rows(&sqlite, &[&one], embedded.events_per_second);
    drop(one);

    println!(
        "load: {DEVICES} devices at once, {EVENTS} events in batches of {BATCH}; generator, servers and PostgreSQL (fsync on) on this machine"
    );
    println!("in-process ingest into PostgreSQL (raw baseline): {baseline:.0} events/s");
    println!(
        "issue into PostgreSQL: {issue_rate:.0} items/s (store work only: verifiers of 1 PBKDF2 iteration)"
    );
    line("two servers on PostgreSQL", &two);
    line(
        &format!(
            "two servers on PostgreSQL, {:.0} % of answers dropped",
            DROP * 100.0
        ),
        &dropped,
    );
    line("one server on SQLite", &embedded);
    println!(
        "storage in PostgreSQL: {bytes_per_event:.0} bytes per event (the events table with its indexes and TOAST)"
    );
    println!(
        "ratios: two servers / in-process {:.2}; with drops / in-process {:.2}; SQLite server / PostgreSQL servers {:.2}",
        two.events_per_second / baseline,
        dropped.events_per_second / baseline,
        embedded.events_per_second / two.events_per_second
    );
    for (what, r) in &pg_rates {
        rate_line("two servers on PostgreSQL", what, r);
    }
    for (what, r) in &sqlite_rates {
        rate_line("one server on SQLite", what, r);
    }
    let mut missed = false;
    for (store, rows) in [("PostgreSQL", &pg_rates), ("SQLite", &sqlite_rates)] {
        let Some((_, at_target)) = rows.last() else {
            continue;
        };
        if at_target.p99_ms > P99_TARGET_MS || at_target.kept_up != Some(true) {
            eprintln!(
                "{store}: at {TARGET_EVENTS_PER_SECOND:.0} events/s p99 {:.1} ms (target under {P99_TARGET_MS} ms), {}",
                at_target.p99_ms,
                if at_target.kept_up == Some(true) { "kept up" } else { "fell behind" }
            );
            missed = true;
        }
        if rows.iter().any(|(_, r)| r.lost > 0 || r.duplicated > 0) {
            eprintln!("{store}: an open-loop run lost or duplicated events");
            missed = true;
        }
    }
    for (what, r) in [
        ("two servers", &two),
        ("with drops", &dropped),
        ("SQLite", &embedded),
    ] {
        if r.lost > 0 || r.duplicated > 0 {
            eprintln!(
                "scale bench: {what}: {} lost, {} duplicated",
                r.lost, r.duplicated
            );
            missed = true;
        }
    }
    if dropped.resent == 0 {
        eprintln!("scale bench: no answer was dropped: the retry path was not exercised");
        missed = true;
    }
    for (what, r) in [("two servers", &two), ("with drops", &dropped)] {
        let met = r.events_per_second >= TARGET_EVENTS_PER_SECOND;
        println!(
            "target {TARGET_EVENTS_PER_SECOND:.0} events/s into PostgreSQL, {what}: {}",
            if met { "met" } else { "MISSED" }
        );
        missed |= !met;
    }
    missed |= judge_doses(&dose_rounds);
    if let Some((_, _, doses)) = dose_rounds.get(DOSE_ROUNDS / 2) {
        println!(
            "one-event requests: {:.2} of CoWIN's peak of {COWIN_PEAK_PER_SECOND:.0} doses/s on this machine; batched: {:.1}x",
            doses.requests_per_second / COWIN_PEAK_PER_SECOND,
            two.events_per_second / COWIN_PEAK_PER_SECOND
        );
    }
    if missed {
        std::process::exit(1);
    }
}
