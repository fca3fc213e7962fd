//! Delivery reports from the SMS gateway (`POST /v1/sms/status`): a
//! message's state only moves forward, and the gateway's free text is
//! cleaned before the office keeps it.

use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::store::ps;
use crate::{ms, Office};

impl Office {
    /// A gateway's delivery report for its message `gateway_id`: `delivered`
    /// or `failed` (with a reason). Returns whether a message was updated.
    pub fn sms_delivery(
        &self,
        gateway_id: &str,
        delivered: bool,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let reason = reason.map(clean_reason);
        // States only move forward: sent, then failed or delivered; failed
        // may still become delivered (the operator's network retried);
        // delivered is final.
        let from: &[&str] = if delivered {
            &["sent", "failed"]
        } else {
            &["sent"]
        };
        self.store.write(|tx| {
            let n = tx.exec(
                "UPDATE sms_outbox SET status = $2, reason = $3, updated_at = $4
                 WHERE gateway_id = $1 AND (status = $5 OR status = $6)",
                ps![
                    gateway_id,
                    if delivered { "delivered" } else { "failed" },
                    reason.as_deref(),
                    ms(now),
                    from[0],
                    from[from.len() - 1]
                ],
            )?;
            Ok(n > 0)
        })
    }
}

/// The longest gateway reason the office keeps, in characters.
pub const MAX_REASON_CHARS: usize = 200;

/// A gateway's free-text reason as the office keeps it: no control
/// characters (a terminal escape would reach `handover office sms list`),
/// white space folded, at most [`MAX_REASON_CHARS`] characters.
pub fn clean_reason(reason: &str) -> String {
    let mut out = String::new();
    let mut kept = 0;
    for c in reason.chars() {
        if kept >= MAX_REASON_CHARS {
            break;
        }
        if c.is_control() || c.is_whitespace() {
            if !out.is_empty() && !out.ends_with(' ') {
                out.push(' ');
                kept += 1;
            }
        } else if !matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        {
            out.push(c);
            kept += 1;
        }
    }
    out.trim_end().to_owned()
}
