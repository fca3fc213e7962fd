//! Sending the outbox: claim a batch, send it with several messages in
//! flight, record the batch's outcomes in one transaction, and stop when
//! the gateway keeps failing.
//!
//! 1. **Claim** up to a hundred queued rows ([`CLAIM_BATCH`]), marking them
//!    `sending` (a claim older than ten minutes is taken again).
//! 2. **Send** them on `sms.concurrency` threads (8 by default; one for the
//!    file sender, whose file keeps the outbox's order): each
//!    renders its text, hands it to the [`Sender`] and retries a `Later`
//!    answer with doubling waits, up to `sms.max_attempts`.
//! 3. **Record** every outcome of the batch in one write: sent (with the
//!    gateway's id) or failed (with the reason).
//! 4. **Break**: when `sms.breaker_failures` messages in a row (5 by
//!    default; 0: never) end on the gateway's failure (no answer, a timeout,
//!    an overload after every attempt), no further message is started; the
//!    claimed ones not started go back to `queued`, and the summary says why
//!    ([`SendSummary::stopped`]). The next send (the service's next tick, or
//!    the operator's next `sms send`) tries again.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};

use super::{segments, Attempt, Claimed, Outgoing, Purpose, SendSummary, Sender};
use super::{CLAIM_BATCH, CLAIM_EXPIRES_MINUTES};
use crate::error::Result;
use crate::store::ps;
use crate::{ms, Office};

/// One message's end: sent (the gateway's id) or failed (why), after
/// `attempts`, taking `segments`; `gateway_down` when the last attempt was
/// the gateway's failure, not a refusal of this message.
struct Outcome {
    id: i64,
    attempts: u32,
    segments: usize,
    result: std::result::Result<Option<String>, String>,
    gateway_down: bool,
}

impl Office {
    /// Send every queued message with `sender`.
    pub fn sms_send(&self, sender: &dyn Sender, now: DateTime<Utc>) -> Result<SendSummary> {
        self.sms_send_with(sender, None, now, &|_| {})
    }

    /// Send the queued messages among `ids` (or every queued one) with `sender`.
    pub fn sms_send_some(
        &self,
        sender: &dyn Sender,
        ids: Option<&[i64]>,
        now: DateTime<Utc>,
    ) -> Result<SendSummary> {
        self.sms_send_with(sender, ids, now, &|_| {})
    }

    /// [`sms_send_some`](Self::sms_send_some), calling `progress` with the
    /// number of messages finished so far (for a progress bar).
    pub fn sms_send_with(
        &self,
        sender: &dyn Sender,
        ids: Option<&[i64]>,
        now: DateTime<Utc>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<SendSummary> {
        let threads = if sender.in_parallel() {
            self.config.sms.concurrency.clamp(1, 64)
        } else {
            1
        };
        let breaker = self.config.sms.breaker_failures;
        let mut summary = SendSummary::default();
        let in_a_row = AtomicU32::new(0);
        loop {
            let claimed = self.claim(ids, now)?;
            if claimed.is_empty() {
                return Ok(summary);
            }
            let tripped = AtomicBool::new(false);
            let next = AtomicUsize::new(0);
            let done = AtomicU64::new(summary.sent + summary.failed);
            let outcomes = Mutex::new(Vec::with_capacity(claimed.len()));
            std::thread::scope(|scope| {
                for _ in 0..threads.min(claimed.len()) {
                    scope.spawn(|| loop {
                        if tripped.load(Ordering::Acquire) {
                            return;
                        }
                        let i = next.fetch_add(1, Ordering::AcqRel);
                        let Some(c) = claimed.get(i) else { return };
                        let o = self.send_one(sender, c);
                        if o.gateway_down {
                            let n = in_a_row.fetch_add(1, Ordering::AcqRel) + 1;
                            if breaker > 0 && n >= breaker {
                                tripped.store(true, Ordering::Release);
                            }
                        } else {
                            in_a_row.store(0, Ordering::Release);
                        }
                        outcomes.lock().unwrap_or_else(|p| p.into_inner()).push(o);
                        progress(done.fetch_add(1, Ordering::AcqRel) + 1);
                    });
                }
            });
            let outcomes = outcomes.into_inner().unwrap_or_else(|p| p.into_inner());
            // Every index a thread took was sent; the rest were never started.
            let started = next.into_inner().min(claimed.len());
            let unsent: Vec<i64> = claimed[started..].iter().map(|c| c.id).collect();
            self.finish_all(&outcomes, &unsent, &mut summary, Utc::now())?;
            if tripped.load(Ordering::Acquire) {
                summary.stopped = Some(format!(
                    "the gateway failed {} messages in a row; {} left queued: try again later",
                    in_a_row.load(Ordering::Acquire),
                    unsent.len()
                ));
                return Ok(summary);
            }
        }
    }

    /// Messages waiting to be sent (queued, or claimed by a sender).
    pub fn sms_waiting(&self) -> Result<u64> {
        self.store.read(|tx| {
            let n: i64 = tx.one(
                "SELECT COUNT(*) AS n FROM sms_outbox WHERE status IN ('queued', 'sending')",
                ps![],
                |r| r.get("n"),
            )?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    fn claim(&self, ids: Option<&[i64]>, now: DateTime<Utc>) -> Result<Vec<Claimed>> {
        const COLUMNS: &str =
            "SELECT id, purpose, programme, reference, code_version, event_device,
            event_seq, mobile, language FROM sms_outbox";
        let stale = ms(now) - CLAIM_EXPIRES_MINUTES * 60_000;
        let read = |r: &crate::store::sql::Row<'_, '_>| -> Result<Claimed> {
            Ok(Claimed {
                id: r.get("id")?,
                purpose: Purpose::parse(&r.get::<String>("purpose")?)?,
                programme: r.get::<String>("programme")?.parse()?,
                reference: r.get("reference")?,
                code_version: r
                    .get::<Option<i64>>("code_version")?
                    .and_then(|v| u32::try_from(v).ok()),
                event: r
                    .get::<Option<String>>("event_device")?
                    .zip(r.get::<Option<i64>>("event_seq")?),
                mobile: r.get("mobile")?,
                language: r.get::<String>("language")?.parse()?,
            })
        };
        self.store.write(|tx| {
            let candidates: Vec<Claimed> = match ids {
                None => tx.all(
                    &format!(
                        // IN, so both stores look the two statuses up in
                        // `sms_by_status` (SQLite is built without its OR
                        // optimisation: .cargo/config.toml).
                        "{COLUMNS} WHERE status IN ('queued', 'sending')
                             AND (status = 'queued' OR claimed_at < $1)
                         ORDER BY id LIMIT $2"
                    ),
                    ps![stale, CLAIM_BATCH],
                    read,
                )?,
                Some(ids) => {
                    let mut out = Vec::new();
                    for id in ids {
                        out.extend(tx.opt(
                            &format!("{COLUMNS} WHERE id = $1 AND status = 'queued'"),
                            ps![*id],
                            read,
                        )?);
                    }
                    out
                }
            };
            // The claim holds only if the row is still claimable when the
            // update runs: on PostgreSQL another server may have claimed it
            // since the select.
            let mut claimed = Vec::with_capacity(candidates.len());
            for c in candidates {
                let n = tx.exec(
                    "UPDATE sms_outbox SET status = 'sending', claimed_at = $2
                     WHERE id = $1 AND (status = 'queued' OR (status = 'sending' AND claimed_at < $3))",
                    ps![c.id, ms(now), stale],
                )?;
                if n == 1 {
                    claimed.push(c);
                }
            }
            Ok(claimed)
        })
    }

    /// Render and send one message, retrying `Later` with doubling waits.
    fn send_one(&self, sender: &dyn Sender, c: &Claimed) -> Outcome {
        let failed = |why: String| Outcome {
            id: c.id,
            attempts: 0,
            segments: 0,
            result: Err(why),
            gateway_down: false,
        };
        let text = match self.store.read(|tx| self.render(tx, c)) {
            Ok(t) => t,
            Err(e) => return failed(format!("could not be written: {e}")),
        };
        let (encoding, segments) = segments::count(&text);
        let template = format!(
            "{}.{}.{}",
            c.programme.as_str(),
            c.purpose.as_str(),
            c.language.as_str()
        );
        let outgoing = Outgoing {
            id: c.id,
            mobile: &c.mobile,
            reference: &c.reference,
            text: &text,
            encoding,
            template: &template,
        };
        let max = self.config.sms.max_attempts.max(1);
        let mut wait = StdDuration::from_millis(self.config.sms.backoff_ms);
        let mut attempts = 0;
        let (result, gateway_down) = loop {
            attempts += 1;
            match sender.send(&outgoing) {
                Attempt::Sent { gateway_id } => break (Ok(gateway_id), false),
                Attempt::Refused(reason) => break (Err(reason), false),
                Attempt::Later(reason) if attempts >= max => break (Err(reason), true),
                Attempt::Later(_) => {
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(StdDuration::from_secs(30));
                }
            }
        };
        Outcome {
            id: c.id,
            attempts,
            segments,
            result,
            gateway_down,
        }
    }

    /// Record a batch's outcomes, and put back the claimed rows not sent
    /// (the breaker tripped), in one write.
    fn finish_all(
        &self,
        outcomes: &[Outcome],
        unsent: &[i64],
        summary: &mut SendSummary,
        now: DateTime<Utc>,
    ) -> Result<()> {
        for o in outcomes {
            summary.attempts += u64::from(o.attempts);
            match &o.result {
                Ok(_) => {
                    summary.sent += 1;
                    summary.segments += o.segments as u64;
                }
                Err(_) => summary.failed += 1,
            }
        }
        self.store.write(|tx| {
            for o in outcomes {
                match &o.result {
                    Ok(gateway_id) => tx.exec(
                        "UPDATE sms_outbox SET status = 'sent', attempts = attempts + $2,
                             segments = $3, gateway_id = $4, reason = NULL, updated_at = $5,
                             claimed_at = NULL WHERE id = $1",
                        ps![
                            o.id,
                            o.attempts,
                            o.segments as i64,
                            gateway_id.as_deref(),
                            ms(now)
                        ],
                    )?,
                    Err(reason) => tx.exec(
                        "UPDATE sms_outbox SET status = 'failed', attempts = attempts + $2,
                             reason = $3, updated_at = $4, claimed_at = NULL WHERE id = $1",
                        ps![
                            o.id,
                            o.attempts,
                            reason.chars().take(300).collect::<String>().as_str(),
                            ms(now)
                        ],
                    )?,
                };
            }
            for id in unsent {
                tx.exec(
                    "UPDATE sms_outbox SET status = 'queued', claimed_at = NULL
                     WHERE id = $1 AND status = 'sending'",
                    ps![*id],
                )?;
            }
            Ok(())
        })
    }
}
