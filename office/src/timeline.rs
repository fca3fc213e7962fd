//! Finding an item and its story, for the console's Items page (issue 16):
//! by reference, or by the last digits of the recipient's mobile; then the
//! item's timeline: the manifests that carried it, its code versions, the
//! events devices recorded about it with the office's verdicts, and its
//! SMS with their status. Mobile numbers are shown masked; codes never
//! (the office does not store them).

use chrono::{DateTime, Utc};
use handover_core::codes::Programme;

use crate::error::{Error, Result};
use crate::sms::SmsRecord;
use crate::store::{ps, Tx};
use crate::{from_ms, Office};

/// Most items a search returns.
pub const MAX_HITS: i64 = 50;

/// An item found.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ItemHit {
    /// Programme.
    pub programme: String,
    /// Reference (article number or beneficiary reference).
    pub reference: String,
    /// The manifest that carries it.
    pub manifest_id: String,
    /// The device it is issued to.
    pub device_id: String,
    /// Who carries that device.
    pub assignee: String,
    /// The recipient's mobile, all but the last four digits hidden.
    pub mobile: String,
    /// Its code version in that manifest.
    pub code_version: u32,
    /// Withdrawn from the device.
    pub withdrawn: bool,
}

/// A code version of an item.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CodeVersion {
    /// Version.
    pub version: u32,
    /// The code key it came from.
    pub key_id: String,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
}

/// An event a device recorded about an item.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ItemEvent {
    /// The device.
    pub device_id: String,
    /// Its seq.
    pub seq: u64,
    /// `handed_over`, `attempt_failed`, `exception`, `payment`, …
    pub kind: String,
    /// The exception's reason or the payment's method, if any.
    pub detail: Option<String>,
    /// The office's verdict.
    pub verdict: String,
    /// The device's time.
    pub device_time: DateTime<Utc>,
    /// When the office received it.
    pub received_at: DateTime<Utc>,
}

/// An item's story.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Timeline {
    /// The manifests that carry it.
    pub issued: Vec<ItemHit>,
    /// Its code versions, oldest first.
    pub codes: Vec<CodeVersion>,
    /// What devices recorded, in the order the office received it.
    pub events: Vec<ItemEvent>,
    /// Its SMS, oldest first.
    pub sms: Vec<SmsRecord>,
}

const HIT: &str = "SELECT i.programme AS programme, i.reference AS reference,
        i.manifest_id AS manifest_id, m.device_id AS device_id, d.assignee AS assignee,
        i.mobile AS mobile, i.code_version AS code_version, i.withdrawn_at AS withdrawn_at
    FROM items i JOIN manifests m ON m.manifest_id = i.manifest_id
        JOIN devices d ON d.device_id = m.device_id";

fn hits(
    tx: &mut Tx<'_, '_>,
    tail: &str,
    params: &[crate::store::sql::P<'_>],
) -> Result<Vec<ItemHit>> {
    tx.all(&format!("{HIT} {tail}"), params, |r| {
        Ok(ItemHit {
            programme: r.get("programme")?,
            reference: r.get("reference")?,
            manifest_id: r.get("manifest_id")?,
            device_id: r.get("device_id")?,
            assignee: r.get("assignee")?,
            mobile: crate::sms::mask(&r.get::<String>("mobile")?),
            code_version: u32::try_from(r.get::<i64>("code_version")?)
                .map_err(|_| Error::Store("a code version is out of range"))?,
            withdrawn: r.get::<Option<i64>>("withdrawn_at")?.is_some(),
        })
    })
}

impl Office {
    /// Items whose reference is `query` (any case), or, for 4 to 10
    /// digits, whose recipient's mobile ends in them; newest manifest
    /// first, at most [`MAX_HITS`].
    pub fn find_items(&self, query: &str) -> Result<Vec<ItemHit>> {
        let q = query.trim();
        if q.is_empty() || q.len() > 64 {
            return Ok(Vec::new());
        }
        let digits = (4..=10).contains(&q.len()) && q.bytes().all(|b| b.is_ascii_digit());
        self.store.read(|tx| {
            if digits {
                hits(
                    tx,
                    "WHERE i.mobile LIKE $1 ORDER BY m.valid_from DESC, i.reference LIMIT $2",
                    ps![format!("%{q}").as_str(), MAX_HITS],
                )
            } else {
                hits(
                    tx,
                    "WHERE i.reference = $1 ORDER BY m.valid_from DESC LIMIT $2",
                    ps![q.to_ascii_uppercase().as_str(), MAX_HITS],
                )
            }
        })
    }

    /// The story of item `reference` of `programme`.
    pub fn item_timeline(&self, programme: Programme, reference: &str) -> Result<Timeline> {
        let p = programme.as_str();
        let (issued, codes, events) = self.store.read(|tx| {
            let issued = hits(
                tx,
                "WHERE i.programme = $1 AND i.reference = $2 ORDER BY m.valid_from",
                ps![p, reference],
            )?;
            let codes = tx.all(
                "SELECT code_version, code_key_id, issued_at FROM codes
                 WHERE programme = $1 AND reference = $2 ORDER BY code_version",
                ps![p, reference],
                |r| {
                    Ok(CodeVersion {
                        version: u32::try_from(r.get::<i64>("code_version")?)
                            .map_err(|_| Error::Store("a code version is out of range"))?,
                        key_id: r.get("code_key_id")?,
                        issued_at: from_ms(r.get("issued_at")?),
                    })
                },
            )?;
            let events = tx.all(
                "SELECT e.device_id AS device_id, e.seq AS seq, e.kind AS kind, e.detail AS detail,
                        e.verdict AS verdict, e.device_time AS device_time,
                        e.received_at AS received_at
                 FROM events e JOIN manifests m ON m.manifest_id = e.manifest_id
                 WHERE e.reference = $1 AND m.programme = $2
                 ORDER BY e.received_at, e.device_id, e.seq",
                ps![reference, p],
                |r| {
                    Ok(ItemEvent {
                        device_id: r.get("device_id")?,
                        seq: u64::try_from(r.get::<i64>("seq")?).unwrap_or(0),
                        kind: r.get("kind")?,
                        detail: r.get("detail")?,
                        verdict: r.get("verdict")?,
                        device_time: from_ms(r.get("device_time")?),
                        received_at: from_ms(r.get("received_at")?),
                    })
                },
            )?;
            Ok((issued, codes, events))
        })?;
        if issued.is_empty() {
            return Err(Error::UnknownReference(reference.to_owned()));
        }
        Ok(Timeline {
            issued,
            codes,
            events,
            sms: self.sms_of(programme, reference)?,
        })
    }
}
