//! The raw baselines the benches hold the service to, measured in the same
//! run: the same devices' batches taken by the office library in this
//! process, no HTTP ([`ingest_in_process`], [`requests_in_process`]), and
//! where one request's time goes ([`request_steps`], [`RequestSteps`]).

use std::sync::Mutex;
use std::time::Instant;

use chrono::Utc;
use handover_core::api;
use handover_core::device::HttpRequest;
use handover_office::Office;
use serde::Serialize;

use super::SimDevice;
use crate::error::Result;

/// The raw baseline the benches compare HTTP with: every device's batches
/// ingested by the office library in this process, one thread per device,
/// no HTTP. Returns the events the office then holds for these devices, per
/// second; the first failed ingest is the error.
pub fn ingest_in_process(office: &Office, sims: &[SimDevice]) -> Result<f64> {
    let seconds =
        each_batch_in_process(sims, |_, batch| office.ingest(batch, Utc::now()).map(drop))?;
    let mut held = 0;
    for sim in sims {
        held += office.event_count(&sim.device_id)?;
    }
    Ok(held as f64 / seconds)
}

/// The raw baseline of one request: every batch of every device signed as
/// a request and taken by the office library exactly as `POST /v1/batches`
/// takes it (the request's checks, its nonce, the ingest, the sealed ack),
/// in this process, one thread per device, no HTTP. Returns requests per
/// second; the first refusal is the error.
pub fn requests_in_process(office: &Office, sims: &[SimDevice]) -> Result<f64> {
    let seconds =
        each_batch_in_process(sims, |sim, body| take_request(office, sim, body).map(drop))?;
    let requests: usize = sims.iter().map(|s| s.batches.len()).sum();
    Ok(requests as f64 / seconds)
}

/// Run `take` on every batch of every device, one thread per device, each
/// device's batches in order; the seconds it took, or the first failure.
fn each_batch_in_process(
    sims: &[SimDevice],
    take: impl Fn(&SimDevice, &[u8]) -> handover_office::Result<()> + Sync,
) -> Result<f64> {
    let failure: Mutex<Option<handover_office::Error>> = Mutex::new(None);
    let started = Instant::now();
    std::thread::scope(|s| {
        for sim in sims {
            let (failure, take) = (&failure, &take);
            s.spawn(move || {
                for batch in &sim.batches {
                    if let Err(e) = take(sim, batch) {
                        failure
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e.into());
    }
    Ok(seconds)
}

/// Where the time of one request goes: one device alone sending its
/// batches one after another, in this process, microseconds per request
/// (averages). The office's steps are timed through its public calls, the
/// parts of the ingest by doing the same work again beside it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RequestSteps {
    /// The device signs the request (client side).
    pub sign_us: f64,
    /// The office checks the request: the device's key (kept after the
    /// first read), the signature, the time.
    pub check_us: f64,
    /// The body parsed as a batch.
    pub parse_us: f64,
    /// The events' signatures and hashes.
    pub event_signatures_us: f64,
    /// The ack signed.
    pub ack_seal_us: f64,
    /// The rest of the ingest: its one transaction (the nonce, the
    /// device's head, the verdicts, the rows) and its commit.
    pub transaction_us: f64,
    /// Everything above.
    pub total_us: f64,
}

impl RequestSteps {
    /// The steps as a table, one line each: microseconds and share, with
    /// the service's own part (HTTP and what surrounds the office's steps)
    /// taken as the lone request's p50 over HTTP less the office's steps.
    pub fn table(&self, http_p50_ms: f64) -> String {
        let office_us = self.total_us - self.sign_us;
        let http_us = (http_p50_ms * 1e3 - office_us).max(0.0);
        let whole = self.sign_us + office_us + http_us;
        [
            ("device signs the request", self.sign_us),
            ("office checks it (key, signature, time)", self.check_us),
            ("batch parsed", self.parse_us),
            ("event signatures and hashes", self.event_signatures_us),
            (
                "the transaction (nonce, head, verdicts, rows) and its commit",
                self.transaction_us,
            ),
            ("ack sealed", self.ack_seal_us),
            (
                "HTTP and the service around it (lone request's p50 over HTTP less the office's steps)",
                http_us,
            ),
        ]
        .iter()
        .map(|(step, us)| {
            format!(
                "  {step:<90} {us:>8.0}  {:>4.0} %\n",
                100.0 * us / whole.max(f64::MIN_POSITIVE)
            )
        })
        .collect()
    }
}

/// Time [`RequestSteps`] over every batch of `sim` (sent in order).
pub fn request_steps(office: &Office, sim: &SimDevice) -> Result<RequestSteps> {
    let seal_key = handover_core::keys::SigningKey::generate()?;
    let mut s = RequestSteps::default();
    let us = |t: Instant| t.elapsed().as_secs_f64() * 1e6;
    for body in &sim.batches {
        let t = Instant::now();
        let req = sim.batch_request(body);
        s.sign_us += us(t);
        let signed = signed_headers(&req)?;
        let now = Utc::now();
        let t = Instant::now();
        let checked = office.check_request("POST", api::BATCHES, body, &signed, now)?;
        s.check_us += us(t);
        let t = Instant::now();
        let batch = handover_core::sync::Batch::from_bytes(body)?;
        s.parse_us += us(t);
        let t = Instant::now();
        for e in &batch.events {
            e.verified(&batch.device_key)?;
        }
        let signatures_us = us(t);
        let t = Instant::now();
        let ingested = office.ingest_request(&checked, &batch, now)?;
        let ingest_us = us(t);
        let ack = handover_core::sync::Ack::open(&ingested.ack, &[office.public_key()])?;
        let t = Instant::now();
        ack.seal(&seal_key)?;
        let seal_us = us(t);
        s.event_signatures_us += signatures_us;
        s.ack_seal_us += seal_us;
        // The ingest checked the signatures and sealed its ack too.
        s.transaction_us += (ingest_us - signatures_us - seal_us).max(0.0);
    }
    let n = sim.batches.len().max(1) as f64;
    for v in [
        &mut s.sign_us,
        &mut s.check_us,
        &mut s.parse_us,
        &mut s.event_signatures_us,
        &mut s.ack_seal_us,
        &mut s.transaction_us,
    ] {
        *v /= n;
    }
    s.total_us = s.sign_us
        + s.check_us
        + s.parse_us
        + s.event_signatures_us
        + s.ack_seal_us
        + s.transaction_us;
    Ok(s)
}

/// The signing fields of a request made here, read back from its headers
/// as the service reads them.
fn signed_headers(req: &HttpRequest) -> handover_core::Result<api::SignedRequest> {
    api::SignedRequest::from_headers(|h| {
        req.headers
            .iter()
            .find(|(name, _)| *name == h)
            .map(|(_, v)| v.as_str())
    })
}

/// One batch request of `sim`'s, as the service takes it.
fn take_request(office: &Office, sim: &SimDevice, body: &[u8]) -> handover_office::Result<Vec<u8>> {
    let req = sim.batch_request(body);
    let signed = signed_headers(&req)?;
    let now = Utc::now();
    let checked = office.check_request("POST", api::BATCHES, body, &signed, now)?;
    let batch = handover_core::sync::Batch::from_bytes(body)?;
    Ok(office.ingest_request(&checked, &batch, now)?.ack)
}
