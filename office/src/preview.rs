//! What an issue would do, before anything is issued (the console's
//! preview, issue 16): the same checks and plan as [`Office::issue`], in a
//! read transaction, without deriving a verifier (no PBKDF2) or writing.

use handover_core::codes::{Policy, RiskFigures};

use crate::bookings::Booking;
use crate::error::Result;
use crate::issue::{missing_items, plan_revision, IssueRequest};
use crate::Office;

/// What issuing a request would do.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct IssuePreview {
    /// The manifest.
    pub manifest_id: String,
    /// The revision it would get.
    pub revision: u32,
    /// Items in it.
    pub items: usize,
    /// Items with a new code (each gets an SMS).
    pub new_codes: usize,
    /// Items whose code stays as the device holds it.
    pub unchanged: usize,
    /// Items the bookings leave out, withdrawn from the device.
    pub withdrawn: usize,
    /// SMS segments the new codes take (what the office pays for).
    pub sms_segments: usize,
    /// The policy.
    pub policy: Policy,
    /// What it costs: the policy's risk figures.
    pub risk: RiskFigures,
}

impl Office {
    /// What [`issue`](Office::issue) would do with `req`; the same
    /// refusals (a device that is not enrolled, bookings that would
    /// withdraw items when that is refused, …).
    pub fn preview_issue(&self, req: &IssueRequest<'_>) -> Result<IssuePreview> {
        let checked = self.check_issue(req)?;
        let default_language = self.config.default_language()?;
        self.store.read(|tx| {
            let (missing, kept) = missing_items(tx, req, &checked.manifest_id)?;
            let all: Vec<Booking> = req.bookings.iter().cloned().chain(kept).collect();
            let req = IssueRequest {
                bookings: &all,
                ..req.clone()
            };
            let plan = plan_revision(tx, &req, &checked, default_language)?;
            let mut sms_segments = 0;
            let mut new_codes = 0;
            for p in plan.items.iter().filter(|p| p.new_code) {
                new_codes += 1;
                if !checked.simulated {
                    sms_segments += self.code_segments(
                        req.programme,
                        &p.booking.reference,
                        p.language,
                        p.policy.digits,
                    )?;
                }
            }
            Ok(IssuePreview {
                manifest_id: checked.manifest_id.clone(),
                revision: plan.revision,
                items: plan.items.len(),
                new_codes,
                unchanged: plan.items.len() - new_codes,
                withdrawn: missing.len(),
                sms_segments,
                policy: checked.policy,
                risk: checked.policy.risk(),
            })
        })
    }
}
