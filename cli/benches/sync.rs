//! Sync throughput through HTTP into the SQLite store, against in-process
//! ingest of the same kind of batches measured in the same run.
//! `cargo bench -p handover-cli --bench sync`
//!
//! * 50 simulated devices, 20,000 events in batches of 100 (a handover per
//!   item with its right code, an exception before every tenth), all
//!   devices at once: events/s and batch latency under that load; then the
//!   office holds exactly what was sent.
//! * The same load ingested in-process, 50 threads calling the office
//!   library directly: the raw baseline. The ratio is HTTP / in-process.
//! * One device alone sending 100-event batches one after another: the
//!   latency of a batch without contention.
//! * CoWIN's shape, one event per request: 100 devices × 20 requests through
//!   HTTP, against the same requests taken in-process as the service takes
//!   them (checks, nonce, ingest, ack); then where a lone request's time
//!   goes, step by step.
//!
//! Target: at least 5,000 events/s through HTTP on this 2-core machine (the
//! generator, the service and SQLite all on it). CoWIN's national peak was
//! about 700 doses a second. One event per request: at least 0.6 of the
//! in-process baseline (1,000 requests/s on the machine of docs/scale.md,
//! reported). The bench exits non-zero below a target.

use std::sync::Arc;

use handover_cli::client::OfficeLink;
use handover_cli::load;
use handover_office::Office;
use handover_server::Limits;

const DEVICES: u64 = 50;
const EVENTS: u64 = 20_000;
const BATCH: u64 = 100;
const TARGET_EVENTS_PER_SECOND: f64 = 5_000.0;
/// CoWIN's shape: devices, one-event requests each.
const DOSE_DEVICES: u64 = 100;
const DOSES_EACH: u64 = 20;
/// One-event requests a second, one server on SQLite, on the 2-core
/// machine the figures in docs/scale.md come from: reported, not enforced
/// (another machine's disk and cores give another figure)…
const TARGET_REQUESTS_PER_SECOND: f64 = 1_000.0;
/// …what is enforced is HTTP against the in-process baseline of the same
/// requests, measured in the same run (0.68–0.72 measured where 1,000
/// requests/s was met).
const TARGET_REQUEST_RATIO: f64 = 0.6;
/// Rounds of the one-event-a-request measurement; the median is judged.
const DOSE_ROUNDS: usize = 3;
/// One-event requests of a device alone, for where the time goes.
const LONE_REQUESTS: u64 = 200;

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("sync bench: {what}: {e}");
    std::process::exit(1)
}

fn main() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| fail("tempdir", e));
    let office = Arc::new(
        Office::init(&dir.path().join("office"), "PO-BENCH").unwrap_or_else(|e| fail("init", e)),
    );
    // Throughput is measured here, not the service's limits: hundreds of
    // simulated devices enrol from one address in a few seconds.
    let limits = Limits {
        per_device_per_second: 1e6,
        per_device_burst: 1e6,
        enrol_per_address_per_second: 1e6,
        enrol_per_address_burst: 1e6,
        ..Limits::default()
    };
    let server = handover_server::spawn(
        office.clone(),
        "127.0.0.1:0".parse().unwrap_or_else(|e| fail("addr", e)),
        None,
        limits,
    )
    .unwrap_or_else(|e| fail("serve", e));
    let url = format!("http://{}", server.addr());
    let link = OfficeLink::new(&url, None).unwrap_or_else(|e| fail("link", e));

    // The raw baseline: the office library, in-process, 50 threads.
    let sims = load::prepare(&office, &link, DEVICES, EVENTS, BATCH)
        .unwrap_or_else(|e| fail("prepare", e));
    let in_process_rate =
        load::ingest_in_process(&office, &sims).unwrap_or_else(|e| fail("in-process ingest", e));

    // Through HTTP: new devices, the same load.
    let sims = load::prepare(&office, &link, DEVICES, EVENTS, BATCH)
        .unwrap_or_else(|e| fail("prepare", e));
    let links: Vec<OfficeLink> = (0..4)
        .map(|_| OfficeLink::new(&url, None).unwrap_or_else(|e| fail("link", e)))
        .collect();
    let mut report = load::drive(&links, &sims, 0.0).unwrap_or_else(|e| fail("drive", e));
    load::check(&office, &sims, &mut report).unwrap_or_else(|e| fail("check", e));

    // One device alone: a 100-event batch without contention.
    let alone =
        load::prepare(&office, &link, 1, 20 * BATCH, BATCH).unwrap_or_else(|e| fail("prepare", e));
    let single =
        load::drive(std::slice::from_ref(&link), &alone, 0.0).unwrap_or_else(|e| fail("drive", e));

    // CoWIN's shape: each dose synced as it is given, one event a request.
    // Three rounds, each the baseline then HTTP on new devices, and the
    // median round's ratio: on two shared cores one round's ratio moves by
    // ±0.05 with whatever else the machine does.
    let mut rounds = Vec::with_capacity(DOSE_ROUNDS);
    for _ in 0..DOSE_ROUNDS {
        let doses = load::prepare(&office, &link, DOSE_DEVICES, DOSE_DEVICES * DOSES_EACH, 1)
            .unwrap_or_else(|e| fail("prepare", e));
        let in_process = load::requests_in_process(&office, &doses)
            .unwrap_or_else(|e| fail("in-process requests", e));
        let doses = load::prepare(&office, &link, DOSE_DEVICES, DOSE_DEVICES * DOSES_EACH, 1)
            .unwrap_or_else(|e| fail("prepare", e));
        let mut dose = load::drive(&links, &doses, 0.0).unwrap_or_else(|e| fail("drive", e));
        load::check(&office, &doses, &mut dose).unwrap_or_else(|e| fail("check", e));
        rounds.push((dose.requests_per_second / in_process, in_process, dose));
    }
    rounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    let ratios: Vec<String> = rounds.iter().map(|r| format!("{:.2}", r.0)).collect();
    let (dose_ratio, dose_in_process, dose) = rounds.swap_remove(DOSE_ROUNDS / 2);

    // Where a lone one-event request's time goes: in-process step by step,
    // then the same over HTTP.
    let lone =
        load::prepare(&office, &link, 1, LONE_REQUESTS, 1).unwrap_or_else(|e| fail("prepare", e));
    let steps = load::request_steps(&office, &lone[0]).unwrap_or_else(|e| fail("steps", e));
    let lone =
        load::prepare(&office, &link, 1, LONE_REQUESTS, 1).unwrap_or_else(|e| fail("prepare", e));
    let lone_http =
        load::drive(std::slice::from_ref(&link), &lone, 0.0).unwrap_or_else(|e| fail("drive", e));
    server.stop().unwrap_or_else(|e| fail("stop", e));

    println!(
        "sync over HTTP: {:.0} events/s ({} devices at once, {} events in batches of {}); batch latency p50 {:.1} ms, p99 {:.1} ms; lost {}, duplicated {}",
        report.events_per_second, report.devices, report.events, BATCH, report.p50_ms, report.p99_ms,
        report.lost, report.duplicated
    );
    println!(
        "in-process ingest (raw baseline, same load): {:.0} events/s; ratio HTTP / in-process {:.2}",
        in_process_rate,
        report.events_per_second / in_process_rate
    );
    println!(
        "one device alone: a {}-event batch in p50 {:.1} ms, p99 {:.1} ms ({:.0} events/s)",
        BATCH, single.p50_ms, single.p99_ms, single.events_per_second
    );
    println!(
        "target {:.0} events/s: {}",
        TARGET_EVENTS_PER_SECOND,
        if report.events_per_second >= TARGET_EVENTS_PER_SECOND {
            "met"
        } else {
            "MISSED"
        }
    );
    println!(
        "one event per request ({} devices × {}, the median of {} rounds, ratios {}): {:.0} requests/s over HTTP, p50 {:.1} ms, p99 {:.1} ms; in-process (raw baseline, the same checks, nonce, ingest and ack) {:.0} requests/s; ratio HTTP / in-process {:.2}; target {:.0} requests/s: {}",
        DOSE_DEVICES, DOSES_EACH, DOSE_ROUNDS, ratios.join(" "), dose.requests_per_second, dose.p50_ms, dose.p99_ms,
        dose_in_process, dose_ratio, TARGET_REQUESTS_PER_SECOND,
        if dose.requests_per_second >= TARGET_REQUESTS_PER_SECOND { "met" } else { "MISSED" }
    );
    println!("where a lone one-event request's time goes (one device, {LONE_REQUESTS} requests one after another), µs per request:");
    print!("{}", steps.table(lone_http.p50_ms));
    if dose.lost > 0 || dose.duplicated > 0 {
        fail(
            "check",
            format!(
                "one event per request: {} lost, {} duplicated",
                dose.lost, dose.duplicated
            ),
        );
    }
    if dose_ratio < TARGET_REQUEST_RATIO {
        eprintln!(
            "sync bench: one event per request: {dose_ratio:.2} of the in-process baseline, below {TARGET_REQUEST_RATIO}"
        );
        std::process::exit(1);
    }
    if report.lost > 0 || report.duplicated > 0 {
        fail(
            "check",
            format!("{} lost, {} duplicated", report.lost, report.duplicated),
        );
    }
    if report.events_per_second < TARGET_EVENTS_PER_SECOND {
        std::process::exit(1);
    }
}
