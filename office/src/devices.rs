//! The devices an office has enrolled, as its operators see them: who
//! carries each, when it was enrolled and last sent a batch, how many of
//! its events the office holds, whether it is revoked or flagged
//! (`handover office devices`).
//!
//! Devices that `handover load` enrols are marked **simulated**
//! ([`Office::mark_as_simulated`]): their manifests, items and events stay
//! out of the report (its `report_*` views), and no SMS is queued for their
//! items or handovers. [`Office::real_devices`] is how `load` tells a live
//! office from a test one.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::store::ps;
use crate::{from_ms, ms, Office};

/// A device in the office's list. Its JSON (`office devices --json`) is a
/// stable interface: fields are only ever added.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeviceSummary {
    /// Device id.
    pub device_id: String,
    /// Who carries it.
    pub assignee: String,
    /// When it was enrolled.
    pub enrolled_at: DateTime<Utc>,
    /// When its last batch with new events arrived, if ever.
    pub last_sync_at: Option<DateTime<Utc>>,
    /// Its events the office holds.
    pub events_held: u64,
    /// Its last seq the office holds.
    pub head_seq: u64,
    /// Items in its manifests issued for days not yet over, not withdrawn.
    pub items_open: u64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Why it was flagged (`fork`, `code_guessing`, …), if it was.
    pub flagged: Option<String>,
    /// A simulated device of `handover load`.
    pub simulated: bool,
}

impl Office {
    /// Every enrolled device, flagged ones first, then by assignee;
    /// simulated devices only when `with_simulated`.
    pub fn devices(&self, with_simulated: bool, now: DateTime<Utc>) -> Result<Vec<DeviceSummary>> {
        self.store.read(|tx| {
            tx.all(
                "SELECT d.device_id, d.assignee, d.enrolled_at, d.last_seen_at, d.head_seq,
                        d.revoked_at, d.flagged, d.simulated,
                        (SELECT COUNT(*) FROM events e WHERE e.device_id = d.device_id) AS events_held,
                        (SELECT COUNT(*) FROM items i JOIN manifests m ON m.manifest_id = i.manifest_id
                         WHERE m.device_id = d.device_id AND m.valid_until > $2
                           AND i.withdrawn_at IS NULL) AS items_open
                 FROM devices d
                 WHERE d.simulated = 0 OR $1
                 ORDER BY d.flagged IS NULL, d.assignee, d.device_id",
                ps![with_simulated, ms(now)],
                |r| {
                    Ok(DeviceSummary {
                        device_id: r.get("device_id")?,
                        assignee: r.get("assignee")?,
                        enrolled_at: from_ms(r.get("enrolled_at")?),
                        last_sync_at: r.get::<Option<i64>>("last_seen_at")?.map(from_ms),
                        events_held: r.get::<i64>("events_held")?.max(0) as u64,
                        head_seq: r.get::<i64>("head_seq")?.max(0) as u64,
                        items_open: r.get::<i64>("items_open")?.max(0) as u64,
                        revoked_at: r.get::<Option<i64>>("revoked_at")?.map(from_ms),
                        flagged: r.get("flagged")?,
                        simulated: r.get::<i64>("simulated")? != 0,
                    })
                },
            )
        })
    }

    /// Devices that are not simulated: any means the office is live.
    pub fn real_devices(&self) -> Result<u64> {
        self.store.read(|tx| {
            Ok(tx
                .int(
                    "SELECT COUNT(*) AS n FROM devices WHERE simulated = 0",
                    ps![],
                )?
                .max(0) as u64)
        })
    }

    /// Mark a device as simulated by `handover load` (before anything is
    /// issued to it): left out of reports, never sent an SMS.
    pub fn mark_as_simulated(&self, device_id: &str) -> Result<()> {
        self.store.write(|tx| {
            let n = tx.exec(
                "UPDATE devices SET simulated = 1 WHERE device_id = $1",
                ps![device_id],
            )?;
            if n == 0 {
                return Err(Error::UnknownDevice(device_id.to_owned()));
            }
            Ok(())
        })
    }
}
