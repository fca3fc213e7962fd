//! What the sync service reads from the office: a device's live manifests,
//! and the figures its metrics expose.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use handover_core::api::{to_base64, Held, ManifestsResponse, ServedManifest};
use handover_core::rules::{clock_tolerance, earlier};

use crate::error::{Error, Result};
use crate::store::ps;
use crate::{ms, Office};

/// Figures for `/metrics`, read from the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreFigures {
    /// Events held, by verdict.
    pub events_by_verdict: BTreeMap<String, u64>,
    /// Devices flagged (fork).
    pub devices_flagged: u64,
    /// Devices enrolled.
    pub devices: u64,
}

impl Office {
    /// The manifests issued to `device_id` whose window has not closed and
    /// that are newer than what the device reports holding, oldest window
    /// first. Served only to the device they are bound to: the caller has
    /// authenticated it.
    pub fn manifests_for(
        &self,
        device_id: &str,
        held: &[Held],
        now: DateTime<Utc>,
    ) -> Result<ManifestsResponse> {
        let held: BTreeMap<&str, u32> = held
            .iter()
            .map(|h| (h.manifest_id.as_str(), h.revision))
            .collect();
        let open_after = ms(earlier(now, clock_tolerance()));
        self.store.read(|tx| {
            let rows = tx.all(
                "SELECT manifest_id, revision, sealed FROM manifests
                 WHERE device_id = $1 AND valid_until >= $2 ORDER BY valid_from, manifest_id",
                ps![device_id, open_after],
                |r| {
                    Ok((
                        r.get::<String>("manifest_id")?,
                        r.get::<i64>("revision")?,
                        r.get::<Vec<u8>>("sealed")?,
                    ))
                },
            )?;
            let mut manifests = Vec::new();
            for (manifest_id, revision, sealed) in rows {
                let revision = u32::try_from(revision)
                    .map_err(|_| Error::Store("a manifest revision is out of range"))?;
                if held
                    .get(manifest_id.as_str())
                    .is_some_and(|h| *h >= revision)
                {
                    continue;
                }
                manifests.push(ServedManifest {
                    manifest_id,
                    revision,
                    sealed: to_base64(&sealed),
                });
            }
            Ok(ManifestsResponse { manifests })
        })
    }

    /// Events held from `device_id`.
    pub fn event_count(&self, device_id: &str) -> Result<u64> {
        self.store.read(|tx| {
            let n = tx.int(
                "SELECT COUNT(*) AS n FROM events WHERE device_id = $1",
                ps![device_id],
            )?;
            Ok(n.max(0) as u64)
        })
    }

    /// Figures for the service's metrics.
    pub fn store_figures(&self) -> Result<StoreFigures> {
        self.store.read(|tx| {
            let mut figures = StoreFigures::default();
            for (verdict, n) in tx.all(
                "SELECT verdict, COUNT(*) AS n FROM events GROUP BY verdict",
                ps![],
                |r| Ok((r.get::<String>("verdict")?, r.get::<i64>("n")?)),
            )? {
                figures.events_by_verdict.insert(verdict, n.max(0) as u64);
            }
            let (devices, flagged) = tx.one(
                "SELECT COUNT(*) AS devices, COUNT(flagged) AS flagged FROM devices",
                ps![],
                |r| Ok((r.get::<i64>("devices")?, r.get::<i64>("flagged")?)),
            )?;
            figures.devices = devices.max(0) as u64;
            figures.devices_flagged = flagged.max(0) as u64;
            Ok(figures)
        })
    }
}
