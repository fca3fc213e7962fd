//! Sending one simulated device's batches as a device does
//! (`docs/sync-api.md`):
//!
//! 1. Each batch is signed when it is sent. A dropped answer (on purpose,
//!    `--drop`) or a transport failure sends it again; `429` and `503`
//!    wait and send again, for up to [`RETRY_FOR`] (a database restart or
//!    a failover to a standby takes seconds).
//! 2. The sealed ack of every batch is kept, as a device keeps its acks.
//! 3. A `409 gap` with `need_seq` means the office lost events it had
//!    acknowledged (a failover to a standby that was behind, a restore):
//!    the batches from `need_seq` are sent again, each with its ack, then
//!    the refused batch.
//! 4. After the last batch, a pull reporting `acknowledged_through`, as a
//!    device's next sync starts: an office that lost the tail answers with
//!    `need_seq`, and the tail is sent again the same way.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration as StdDuration, Instant};

use handover_core::api::{self, ApiError, ErrorCode, ManifestsRequest, ManifestsResponse};
use handover_core::device::HttpResponse;
use handover_core::sync::Batch;

use super::SimDevice;
use crate::client::OfficeLink;
use crate::error::{Error, Result};

/// How long a request is tried again while the office answers `429` or
/// `503` or cannot be reached.
pub(super) const RETRY_FOR: StdDuration = StdDuration::from_secs(60);

/// Most `gap` answers followed for one batch (a device follows three a
/// sync).
const MAX_GAPS: u32 = 3;

/// Requests sent again, over all devices.
#[derive(Default)]
pub(super) struct Resends {
    /// Batches sent again after a dropped answer.
    pub(super) dropped: AtomicU64,
    /// Events sent again because the office asked for them (`need_seq`).
    pub(super) refilled: AtomicU64,
}

/// One device's sending: its link, its batches and the acks it was given.
pub(super) struct Sender<'a> {
    link: &'a OfficeLink,
    sim: &'a SimDevice,
    resends: &'a Resends,
    /// The sealed ack of each batch sent so far, in order.
    acks: Vec<Vec<u8>>,
}

/// The office's answer to a batch.
enum Answer {
    /// 200: the sealed ack, and how long the answer took.
    Ack(Vec<u8>, StdDuration),
    /// 409 `gap`: the seq the office needs.
    Gap(u64),
}

impl<'a> Sender<'a> {
    pub(super) fn new(link: &'a OfficeLink, sim: &'a SimDevice, resends: &'a Resends) -> Self {
        Sender {
            link,
            sim,
            resends,
            acks: Vec::with_capacity(sim.batches.len()),
        }
    }

    /// Whether every batch was acknowledged.
    pub(super) fn done(&self) -> bool {
        self.acks.len() >= self.sim.batches.len()
    }

    /// Send the next batch until it is acknowledged, refilling the office
    /// first if it asks; the time from the first send to the answer kept.
    pub(super) fn send_next(
        &mut self,
        drop_share: f64,
        roll: &mut dyn FnMut() -> f64,
    ) -> Result<StdDuration> {
        let k = self.acks.len();
        let body = self
            .sim
            .batches
            .get(k)
            .ok_or(Error::Usage("no batch left to send".into()))?;
        for _ in 0..=MAX_GAPS {
            match self.post(body, drop_share, roll)? {
                Answer::Ack(ack, took) => {
                    self.acks.push(ack);
                    return Ok(took);
                }
                Answer::Gap(need) => self.refill(need)?,
            }
        }
        Err(self.refused("gap", "it kept asking for events already sent again"))
    }

    /// After the last batch: report the acknowledged head in a pull, and
    /// send again what the office says it no longer holds.
    pub(super) fn finish(&mut self) -> Result<()> {
        let through = self
            .acks
            .len()
            .checked_sub(1)
            .and_then(|last| self.sim.last_seq.get(last))
            .copied();
        let Some(through) = through else {
            return Ok(());
        };
        let body = serde_json::to_vec(&ManifestsRequest {
            held: vec![self.sim.held.clone()],
            acknowledged_through: Some(through),
            office_keys: None,
        })
        .map_err(|_| Error::Usage("encoding".into()))?;
        let resp = self.retrying(|| self.sim.signed_request(api::MANIFESTS, &body))?;
        if resp.status != 200 {
            return Err(answered(&resp));
        }
        let answer: ManifestsResponse = serde_json::from_slice(&resp.body)
            .map_err(|_| Error::Usage("the office's manifests answer is not JSON".into()))?;
        match answer.need_seq {
            Some(need) => self.refill(need),
            None => Ok(()),
        }
    }

    /// Send again, each with its ack, the acknowledged batches from the
    /// one starting at `need`.
    fn refill(&mut self, need: u64) -> Result<()> {
        let from = self.sim.first_seq[..self.acks.len()]
            .iter()
            .position(|&first| first == need)
            .ok_or_else(|| {
                self.refused(
                    "gap",
                    &format!("it needs seq {need}, not the start of a batch this device had acknowledged"),
                )
            })?;
        let mut never = || 1.0;
        for j in from..self.acks.len() {
            let mut batch = Batch::from_bytes(&self.sim.batches[j])?;
            batch.acks = vec![api::to_base64(&self.acks[j])];
            match self.post(&batch.to_bytes()?, 0.0, &mut never)? {
                Answer::Ack(ack, _) => self.acks[j] = ack,
                Answer::Gap(_) => {
                    return Err(
                        self.refused("gap", "it refused a batch sent again from its need_seq")
                    )
                }
            }
            self.resends
                .refilled
                .fetch_add(batch.events.len() as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    /// POST one batch (signed each time it is sent); a dropped answer
    /// sends it again (at most four times).
    fn post(&self, body: &[u8], drop_share: f64, roll: &mut dyn FnMut() -> f64) -> Result<Answer> {
        let mut drops = 0;
        loop {
            let t = Instant::now();
            let resp = self.retrying(|| self.sim.batch_request(body))?;
            let took = t.elapsed();
            match resp.status {
                200 if drops < 4 && roll() < drop_share => {
                    // The answer is lost on the way: send again.
                    drops += 1;
                    self.resends.dropped.fetch_add(1, Ordering::Relaxed);
                }
                200 => return Ok(Answer::Ack(resp.body, took)),
                409 => match serde_json::from_slice::<ApiError>(&resp.body) {
                    Ok(ApiError {
                        error: ErrorCode::Gap,
                        need_seq: Some(need),
                        ..
                    }) => return Ok(Answer::Gap(need)),
                    _ => return Err(answered(&resp)),
                },
                _ => return Err(answered(&resp)),
            }
        }
    }

    /// Send `request()` (made afresh for each try) until the office
    /// answers other than `429` or `503`, for up to [`RETRY_FOR`].
    fn retrying(
        &self,
        request: impl Fn() -> handover_core::device::HttpRequest,
    ) -> Result<HttpResponse> {
        let started = Instant::now();
        let mut tries: u64 = 0;
        loop {
            tries += 1;
            let pause = StdDuration::from_millis((20 * tries).min(500));
            match self.link.send(&request()) {
                Ok(r) if matches!(r.status, 429 | 503) && started.elapsed() < RETRY_FOR => {
                    std::thread::sleep(pause)
                }
                Ok(r) => return Ok(r),
                Err(_) if started.elapsed() < RETRY_FOR => std::thread::sleep(pause),
                Err(why) => {
                    return Err(Error::Unreachable {
                        url: self.link.url().to_owned(),
                        why,
                    })
                }
            }
        }
    }

    fn refused(&self, code: &str, why: &str) -> Error {
        Error::Usage(format!(
            "the office answered {code} to device {}: {why}",
            self.sim.device_id
        ))
    }
}

/// An answer no device expects, as an error.
fn answered(resp: &HttpResponse) -> Error {
    Error::Usage(format!(
        "the office answered {}: {}",
        resp.status,
        String::from_utf8_lossy(&resp.body)
    ))
}
