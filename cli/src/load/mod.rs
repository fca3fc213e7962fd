//! `handover load`: a load generator for the sync service.
//!
//! 1. **Prepare**: enrol N simulated devices by token over HTTP, mark them
//!    simulated at the office (left out of its report, never sent an SMS), issue each
//!    a manifest (cheap verifiers: the load is on the service, not PBKDF2),
//!    and build every device's signed, chained events ahead of time, cut
//!    into batches: a manifest import, a handover per item with its right
//!    code, and an exception before every tenth handover.
//! 2. **Drive**: every device sends its batches in order, all devices at
//!    once, spread over the servers given; each request is signed when it
//!    is sent. A share of answers can be dropped on purpose, so that the
//!    device sends the batch again, as after a lost response. That is a
//!    closed loop (each device sends its next batch when the last is
//!    answered: throughput at saturation). With a rate ([`drive_at_rate`]),
//!    an open loop: batches are due at Poisson arrivals whether or not
//!    earlier ones were answered, and a batch's latency runs from when it
//!    was due, so queueing shows.
//!    Devices send as real ones do (`send.rs`): they wait out `503`, keep
//!    the office's acks, and refill an office that lost events it had
//!    acknowledged (a failover to a standby that was behind).
//! 3. **Check** what the office holds against what was sent: per device,
//!    the head and the number of events (`lost`, `duplicated`).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, Utc};
use handover_core::api::{self, EnrolRequest, EnrolResponse};
use handover_core::codes::{Code, Policy, Programme};
use handover_core::device::HttpRequest;
use handover_core::event::{ChainCursor, Event, EventBody, EventKind, ExceptionReason};
use handover_core::keys::SigningKey;
use handover_core::sync::{Batch, BATCH_FORMAT};
use handover_office::issue::IssueRequest;
use handover_office::{bookings, Office};
use serde::Serialize;

use crate::client::OfficeLink;
use crate::error::{Error, Result};

mod baseline;
mod send;

pub use baseline::{ingest_in_process, request_steps, requests_in_process, RequestSteps};

use send::{Resends, Sender};

/// What the load generator reports. Its JSON (`handover load --json`) is a
/// stable interface: fields are only ever added.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LoadReport {
    /// Simulated devices.
    pub devices: u64,
    /// Events sent (each counted once, however often it was resent).
    pub events: u64,
    /// Events per second over the drive phase.
    pub events_per_second: f64,
    /// Batches sent (each counted once, however often it was resent): one
    /// request each.
    pub requests: u64,
    /// Requests (batches) per second over the drive phase: with
    /// `--batch 1`, CoWIN's shape, the figure to read.
    pub requests_per_second: f64,
    /// Median time to answer one batch, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile, milliseconds.
    pub p99_ms: f64,
    /// 99.9th percentile, milliseconds.
    pub p999_ms: f64,
    /// The offered rate of an open-loop run (`--rate`), events per second;
    /// absent for a closed loop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offered_events_per_second: Option<f64>,
    /// Whether the achieved rate stayed within 5 % of the offered one
    /// (open loop only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_up: Option<bool>,
    /// Events sent that the office does not hold.
    pub lost: u64,
    /// Events the office holds more than once, or beyond what was sent.
    pub duplicated: u64,
    /// Batches sent again after a dropped answer.
    pub resent: u64,
    /// Events sent again because the office asked for them: it had lost
    /// events it acknowledged (a failover to a standby that was behind, a
    /// restore) and answered with `need_seq`.
    pub refilled: u64,
    /// Events per batch.
    pub batch_events: u64,
    /// Seconds the drive phase took.
    pub seconds: f64,
}

/// One simulated device: its key and its batches, built ahead of time.
pub struct SimDevice {
    key: SigningKey,
    device_id: String,
    batches: Vec<Vec<u8>>,
    /// The first and last seq of each batch.
    first_seq: Vec<u64>,
    last_seq: Vec<u64>,
    /// Its manifest, as its pulls report it.
    held: api::Held,
    events: u64,
}

impl SimDevice {
    /// The device id.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// Its batches' bodies, in order.
    pub fn batches(&self) -> &[Vec<u8>] {
        &self.batches
    }

    /// `body` as a batch to the office, signed now with a new nonce.
    pub fn batch_request(&self, body: &[u8]) -> HttpRequest {
        self.signed_request(api::BATCHES, body)
    }

    /// A POST of JSON `body` to `path`, signed now with a new nonce.
    fn signed_request(&self, path: &'static str, body: &[u8]) -> HttpRequest {
        let mut nonce = [0u8; 16];
        let _ = handover_core::keys::fill_random(&mut nonce);
        let mut headers = api::sign_request(
            &self.key,
            "POST",
            path,
            body,
            Utc::now().timestamp_millis(),
            nonce,
        );
        headers.push(("content-type", "application/json".into()));
        HttpRequest {
            method: "POST",
            path,
            headers,
            body: body.to_vec(),
        }
    }
}

fn load_policy() -> Policy {
    Policy {
        digits: 6,
        tag_bits: 16,
        iterations: 1,
        max_attempts: 3,
    }
}

/// Enrol `devices` simulated devices through `link` and build their
/// batches: `events` in all, `batch_events` per batch.
pub fn prepare(
    office: &Office,
    link: &OfficeLink,
    devices: u64,
    events: u64,
    batch_events: u64,
) -> Result<Vec<SimDevice>> {
    let devices = devices.max(1);
    let per_device = (events / devices).max(2);
    // 1 import + k handovers + k/10 exceptions ≈ per_device.
    let items = ((per_device - 1) * 10 / 11).max(1);
    let now = Utc::now();
    let run = now.timestamp_millis().unsigned_abs() % 1_000_000;
    let mut out = Vec::with_capacity(devices as usize);
    for d in 0..devices {
        let key = SigningKey::generate()?;
        let token =
            office.create_enrol_token(&format!("Load device {d}"), Duration::hours(1), now)?;
        let req = EnrolRequest::new(&token.token, &key, now.timestamp_millis());
        let body = serde_json::to_vec(&req).map_err(|_| Error::Usage("encoding".into()))?;
        // The service limits enrolments per address (20 a second after a
        // burst): many simulated devices wait their turn, as phones would.
        let started = std::time::Instant::now();
        let resp = loop {
            let resp = link
                .send(&HttpRequest {
                    method: "POST",
                    path: api::ENROL,
                    headers: vec![("content-type", "application/json".to_owned())],
                    body: body.clone(),
                })
                .map_err(|why| Error::Unreachable {
                    url: link.url().to_owned(),
                    why,
                })?;
            if resp.status == 429 && started.elapsed() < std::time::Duration::from_secs(60) {
                std::thread::sleep(std::time::Duration::from_millis(100));
                continue;
            }
            break resp;
        };
        let enrolled: EnrolResponse = serde_json::from_slice(&resp.body)
            .map_err(|_| Error::Usage(format!("enrolment refused: {}", resp.status)))?;
        enrolled.verify(&token.token, &key.public_key())?;
        // Before anything is issued to it: out of the report, no SMS.
        office.mark_as_simulated(&enrolled.device_id)?;
        let mut csv = String::from("reference,service,addressee,address,mobile,cod_paise\n");
        for i in 0..items {
            // Serial numbers unique per run and device.
            let serial = ((run * 97 + d * 100_003 + i) % 100_000_000) as u32;
            let r = handover_core::s10::make("LD", serial, "IN")?;
            csv.push_str(&format!(
                "{r},parcel,Load {d}/{i},{i} Load Street,9{:09},\n",
                i
            ));
        }
        let rows = bookings::parse(Programme::Post, csv.as_bytes(), office.cod_payee(), 2026)?;
        let issued = office.issue(
            &IssueRequest::working_day(
                &enrolled.device_id,
                Programme::Post,
                &rows,
                load_policy(),
                now,
            ),
            &|| {},
            |_| Ok(()),
        )?;
        let codes: BTreeMap<&str, String> = issued
            .sms
            .iter()
            .map(|s| (s.reference.as_str(), s.code.clone()))
            .collect();
        let mut cursor = ChainCursor::genesis();
        let mut counter = now.timestamp_millis();
        let mut chain: Vec<Event> = Vec::new();
        let mut push = |kind: EventKind| -> Result<()> {
            counter += 1;
            let body = EventBody {
                device_id: enrolled.device_id.clone(),
                seq: cursor.next_seq(),
                time: now,
                counter,
                clock_suspect: false,
                kind,
                at: None,
            };
            chain.push(cursor.append(&body, &key)?);
            Ok(())
        };
        push(EventKind::ManifestImported {
            manifest_id: issued.manifest_id.clone(),
            revision: issued.revision,
            items: issued.items as u32,
        })?;
        for (i, b) in rows.iter().enumerate() {
            if i % 10 == 9 {
                push(EventKind::Exception {
                    manifest_id: issued.manifest_id.clone(),
                    reference: b.reference.clone(),
                    reason: ExceptionReason::NotHome,
                })?;
            }
            let code = codes
                .get(b.reference.as_str())
                .ok_or(Error::Usage("a code is missing".into()))?;
            push(EventKind::HandedOver {
                manifest_id: issued.manifest_id.clone(),
                revision: issued.revision,
                reference: b.reference.clone(),
                code_version: 1,
                code: Code::parse(code, 6)?,
            })?;
        }
        let chunks = || chain.chunks(batch_events.max(1) as usize);
        let first_seq = chunks().map(|c| c[0].seq).collect();
        let last_seq = chunks().map(|c| c[c.len() - 1].seq).collect();
        let batches = chunks()
            .map(|events| {
                Batch {
                    format: BATCH_FORMAT.into(),
                    device_id: enrolled.device_id.clone(),
                    device_key: key.public_key(),
                    events: events.to_vec(),
                    acks: Vec::new(),
                }
                .to_bytes()
            })
            .collect::<handover_core::Result<_>>()?;
        out.push(SimDevice {
            events: chain.len() as u64,
            key,
            device_id: enrolled.device_id,
            batches,
            first_seq,
            last_seq,
            held: api::Held {
                manifest_id: issued.manifest_id.clone(),
                revision: issued.revision,
            },
        });
    }
    Ok(out)
}

/// Send every device's batches, all devices at once over `links` (device
/// `i` uses link `i % links.len()`), dropping a `drop_share` of answers.
/// Fills every field of the report except `lost` and `duplicated`.
pub fn drive(links: &[OfficeLink], sims: &[SimDevice], drop_share: f64) -> Result<LoadReport> {
    let tally = Tally::default();
    let started = Instant::now();
    let senders = std::thread::scope(|s| {
        let running: Vec<_> = sims
            .iter()
            .enumerate()
            .map(|(i, sim)| {
                let link = &links[i % links.len()];
                let tally = &tally;
                s.spawn(move || {
                    let mut rng = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                    let mut roll = move || {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        (rng % 10_000) as f64 / 10_000.0
                    };
                    let mut sender = Sender::new(link, sim, &tally.resends);
                    while !sender.done() {
                        if !tally.record(sender.send_next(drop_share, &mut roll)) {
                            return None;
                        }
                    }
                    Some(sender)
                })
            })
            .collect();
        joined(running)
    });
    let seconds = started.elapsed().as_secs_f64();
    finish(&tally, senders);
    tally.report(sims, seconds)
}

/// The senders the drive's threads hand back (those that did not fail).
fn joined<'a, 's>(
    running: Vec<std::thread::ScopedJoinHandle<'s, Option<Sender<'a>>>>,
) -> Vec<Sender<'a>> {
    running
        .into_iter()
        .filter_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
        .collect()
}

/// Every device's next pull, after the timed drive (`send.rs`: an office
/// that lost what it acknowledged asks for it again), all at once.
fn finish(tally: &Tally, senders: Vec<Sender<'_>>) {
    std::thread::scope(|s| {
        for mut sender in senders {
            s.spawn(move || tally.record_failure(sender.finish()));
        }
    });
}

/// What the drive's threads record: each batch's latency, the resends and
/// the first failure.
#[derive(Default)]
struct Tally {
    latencies: Mutex<Vec<StdDuration>>,
    resends: Resends,
    failure: Mutex<Option<Error>>,
}

impl Tally {
    /// Record a batch's latency, or the failure; false when the device's
    /// thread must stop.
    fn record(&self, sent: Result<StdDuration>) -> bool {
        match sent {
            Ok(latency) => {
                self.latencies
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(latency);
                true
            }
            Err(e) => {
                self.failure
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert(e);
                false
            }
        }
    }

    /// Record a failure, if it is one.
    fn record_failure(&self, done: Result<()>) {
        if let Err(e) = done {
            self.failure
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert(e);
        }
    }

    /// The report, or the first failure.
    fn report(self, sims: &[SimDevice], seconds: f64) -> Result<LoadReport> {
        if let Some(e) = self.failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        let lat = self
            .latencies
            .into_inner()
            .unwrap_or_else(|p| p.into_inner());
        let mut r = report(
            sims,
            &lat,
            seconds,
            self.resends.dropped.load(Ordering::Relaxed),
        );
        r.refilled = self.resends.refilled.load(Ordering::Relaxed);
        Ok(r)
    }
}

/// The report of a drive: throughput and latency percentiles.
fn report(sims: &[SimDevice], latencies: &[StdDuration], seconds: f64, resent: u64) -> LoadReport {
    let mut lat: Vec<f64> = latencies.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        lat[i.min(lat.len() - 1)]
    };
    let events: u64 = sims.iter().map(|s| s.events).sum();
    let requests = sims.iter().map(|s| s.batches.len() as u64).sum();
    LoadReport {
        devices: sims.len() as u64,
        events,
        events_per_second: events as f64 / seconds.max(1e-9),
        requests,
        requests_per_second: requests as f64 / seconds.max(1e-9),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        p999_ms: pct(0.999),
        offered_events_per_second: None,
        kept_up: None,
        lost: 0,
        duplicated: 0,
        resent,
        refilled: 0,
        batch_events: 0,
        seconds,
    }
}

/// An open loop at `events_per_second` (batches of `batch_events`): batch
/// arrivals are a Poisson process, dealt to the devices in turn; a device
/// sends its batches in order, so an arrival whose device is still busy
/// waits, and its latency counts from when it was due. Runs until every
/// batch is sent. `kept_up`: every batch answered within 5 % of the time
/// the arrivals took (the achieved rate within 5 % of the offered).
pub fn drive_at_rate(
    links: &[OfficeLink],
    sims: &[SimDevice],
    events_per_second: f64,
    batch_events: u64,
) -> Result<LoadReport> {
    if events_per_second.is_nan()
        || events_per_second <= 0.0
        || batch_events == 0
        || sims.is_empty()
    {
        return Err(Error::Usage(
            "--rate: a positive rate of events per second".into(),
        ));
    }
    let batches: usize = sims.iter().map(|s| s.batches.len()).sum();
    // Arrival times, Poisson: exponential gaps with mean 1 / per_second.
    let mut rng: u64 = 0x2545_F491_4F6C_DD1D;
    let mut uniform = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        ((rng >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    // Arrivals, Poisson: exponential gaps, scaled so that the last is due
    // when the events are offered at the rate asked (given their number, a Poisson process's
    // arrival times are uniform order statistics: the bursts are kept, and
    // the offered rate is exactly the one asked for).
    let mut gaps: Vec<f64> = (0..batches).map(|_| -uniform().ln()).collect();
    let total: f64 = gaps.iter().sum();
    let events: u64 = sims.iter().map(|s| s.events).sum();
    let span = events as f64 / events_per_second;
    for g in &mut gaps {
        *g *= span / total.max(f64::MIN_POSITIVE);
    }
    let mut due: Vec<Vec<StdDuration>> = vec![Vec::new(); sims.len()];
    let mut next = vec![0usize; sims.len()];
    let mut at = 0.0f64;
    let mut turn = 0usize;
    for gap in gaps {
        at += gap;
        // The next device in turn that has a batch left.
        while next[turn % sims.len()] >= sims[turn % sims.len()].batches.len() {
            turn += 1;
        }
        let d = turn % sims.len();
        due[d].push(StdDuration::from_secs_f64(at));
        next[d] += 1;
        turn += 1;
    }
    let tally = Tally::default();
    let started = Instant::now();
    let senders = std::thread::scope(|s| {
        let running: Vec<_> = sims
            .iter()
            .enumerate()
            .map(|(i, sim)| {
                let link = &links[i % links.len()];
                let (tally, due) = (&tally, &due[i]);
                s.spawn(move || {
                    let mut never = || 1.0;
                    let mut sender = Sender::new(link, sim, &tally.resends);
                    for when in due {
                        let elapsed = started.elapsed();
                        if *when > elapsed {
                            std::thread::sleep(*when - elapsed);
                        }
                        // From when it was due, not when it could be sent.
                        let sent = sender
                            .send_next(0.0, &mut never)
                            .map(|_| started.elapsed().saturating_sub(*when));
                        if !tally.record(sent) {
                            return None;
                        }
                    }
                    Some(sender)
                })
            })
            .collect();
        joined(running)
    });
    let seconds = started.elapsed().as_secs_f64();
    finish(&tally, senders);
    let mut r = tally.report(sims, seconds)?;
    // The arrivals were spread so as to offer exactly the rate asked.
    r.offered_events_per_second = Some(events_per_second);
    r.kept_up = Some(r.events_per_second >= events_per_second * 0.95);
    Ok(r)
}

/// Compare what the office holds with what the devices sent.
pub fn check(office: &Office, sims: &[SimDevice], report: &mut LoadReport) -> Result<()> {
    let (mut lost, mut duplicated) = (0, 0);
    for sim in sims {
        let held = office.event_count(&sim.device_id)?;
        let head = office.device(&sim.device_id)?.head_seq;
        lost += sim.events.saturating_sub(held.min(head));
        duplicated += held.saturating_sub(sim.events);
    }
    report.lost = lost;
    report.duplicated = duplicated;
    Ok(())
}
