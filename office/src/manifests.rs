//! The manifests a device is served: those issued to it whose window has
//! not closed and that are newer than what it holds.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use handover_core::api::{to_base64, ManifestsRequest, ManifestsResponse, ServedManifest};
use handover_core::rules::{clock_tolerance, earlier};

use crate::error::{Error, Result};
use crate::store::ps;
use crate::{ms, Office};

impl Office {
    /// The manifests issued to `device_id` whose window has not closed and
    /// that are newer than what the device reports holding, oldest window
    /// first. Served only to the device they are bound to: the caller has
    /// authenticated it. When the device reports acknowledgements beyond
    /// the chain the office holds for it (the office lost events), the
    /// answer says where to resend from.
    pub fn manifests_for(
        &self,
        device_id: &str,
        request: &ManifestsRequest,
        now: DateTime<Utc>,
    ) -> Result<ManifestsResponse> {
        let held: BTreeMap<&str, u32> = request
            .held
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
            let need_seq = match request.acknowledged_through {
                Some(acked) if acked > 0 => {
                    let head = tx
                        .opt(
                            "SELECT head_seq FROM devices WHERE device_id = $1",
                            ps![device_id],
                            |r| r.get::<i64>("head_seq"),
                        )?
                        .and_then(|h| u64::try_from(h).ok())
                        .unwrap_or(0);
                    (head < acked).then_some(head + 1)
                }
                _ => None,
            };
            // A device that says which keys it trusts gets the key
            // statements it lacks (an older one would refuse the field).
            let key_statements = match &request.office_keys {
                Some(trusted) => crate::rotate::statements_for(tx, trusted)?
                    .iter()
                    .map(|s| to_base64(s))
                    .collect(),
                None => Vec::new(),
            };
            Ok(ManifestsResponse {
                manifests,
                need_seq,
                key_statements,
            })
        })
    }
}
