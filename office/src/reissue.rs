//! Re-issuing one item with a new code (the console's Items page, issue
//! 16): the next revision of the manifest that holds it, in its own window
//! and policy, the other items kept as they are, this one with a new code
//! version and a new code SMS. The same as `handover office issue
//! --reissue REF` with the day's bookings, without needing the file.

use chrono::{DateTime, Utc};
use handover_core::codes::{Policy, Programme};

use crate::bookings::Booking;
use crate::error::{Error, Result};
use crate::issue::{IssueRequest, Issued, Missing};
use crate::store::ps;
use crate::{from_ms, Office};

impl Office {
    /// Give item `reference` of `programme` a new code (module docs), by
    /// staff member `actor`. Refused for an item in no open manifest.
    pub fn reissue_item_as(
        &self,
        programme: Programme,
        reference: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Issued> {
        let open_after = crate::ms(now);
        let found = self.store.read(|tx| {
            tx.opt(
                "SELECT m.device_id AS device_id, m.valid_from AS valid_from,
                        m.valid_until AS valid_until, m.policy AS policy,
                        i.mobile AS mobile, i.details AS details, i.language AS language,
                        i.digipin AS digipin
                 FROM items i JOIN manifests m ON m.manifest_id = i.manifest_id
                 WHERE i.programme = $1 AND i.reference = $2 AND i.withdrawn_at IS NULL
                     AND m.valid_until >= $3
                 ORDER BY m.valid_from DESC LIMIT 1",
                ps![programme.as_str(), reference, open_after],
                |r| {
                    Ok((
                        r.get::<String>("device_id")?,
                        r.get::<i64>("valid_from")?,
                        r.get::<i64>("valid_until")?,
                        r.get::<String>("policy")?,
                        Booking {
                            line: 0,
                            reference: reference.to_owned(),
                            mobile: r.get("mobile")?,
                            details: serde_json::from_str(&r.get::<String>("details")?)
                                .map_err(|_| Error::Store("stored item details are unreadable"))?,
                            language: r.get::<String>("language")?.parse().ok(),
                            digipin: r.get("digipin")?,
                        },
                    ))
                },
            )
        })?;
        let Some((device_id, from, until, policy, booking)) = found else {
            return Err(Error::UnknownReference(reference.to_owned()));
        };
        let policy: Policy = serde_json::from_str(&policy)
            .map_err(|_| Error::Store("a stored policy is unreadable"))?;
        let reissue = [reference.to_owned()];
        let bookings = [booking];
        let req = IssueRequest {
            policy: Some(policy),
            valid_from: from_ms(from),
            valid_until: from_ms(until),
            reissue: &reissue,
            missing: Missing::Keep,
            ..IssueRequest::new(&device_id, programme, &bookings, now)
        };
        self.issue_as(&req, actor, &|| {}, |_| Ok(()))
    }
}
