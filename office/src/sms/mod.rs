//! The SMS outbox: every message the office owes, and what became of it.
//!
//! A message's life:
//!
//! 1. **Queued**, in the same transaction as its cause: issuing queues a
//!    `code` message per item that needs a code (new item, re-issued code,
//!    changed policy); a verified handover queues its `confirmation` and, for
//!    vaccination, its `certificate` notice. A row holds the reference, the
//!    code version, the purpose, the language and the number: **never the
//!    code**, and never a rendered text.
//! 2. **Sending**: a sender claims a batch of queued rows; the text is
//!    rendered then (the code derived from the code key at that moment),
//!    handed to the [`Sender`], and dropped. A claim older than ten minutes
//!    (a sender that died) is claimed again.
//! 3. **Sent** (with the gateway's message id), or **failed** with the
//!    reason, after the configured attempts with doubling waits; then
//!    **delivered** or failed by the gateway's delivery report
//!    ([`delivery`]: states only move forward).
//!
//! A failed message stays on record; `resend` queues the current code of an
//! item again (the "code not received" exception). Sending runs several
//! messages at once and stops when the gateway keeps failing ([`send`]).

pub use crate::language::Language;

use crate::store::sql::P;
use crate::store::{ps, Tx};
use chrono::{DateTime, Duration, Utc};
use handover_core::codes::{derive_code, Programme};
use handover_core::manifest::ItemDetails;
use handover_core::rules::later;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::{from_ms, ms, Office};

pub mod delivery;
pub mod file;
mod gateway;
pub mod msdg;
pub mod nic;
pub mod segments;
mod send;
pub mod sender;
pub mod template;
pub mod templates;

pub use sender::{Attempt, FileSender, HttpSender, Outgoing, Sender};
pub use templates::{Templates, Values};

/// Why a message is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// The one-time code.
    Code,
    /// A verified handover's confirmation.
    Confirmation,
    /// A vaccination certificate's notice.
    Certificate,
}

impl Purpose {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Code => "code",
            Purpose::Confirmation => "confirmation",
            Purpose::Certificate => "certificate",
        }
    }

    fn parse(s: &str) -> Result<Purpose> {
        [Purpose::Code, Purpose::Confirmation, Purpose::Certificate]
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or(Error::Store("an SMS has an unknown purpose"))
    }
}

/// An outbox row as `handover office sms list` shows it: the number masked,
/// no text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SmsRecord {
    /// The row.
    pub id: i64,
    /// Why it is sent.
    pub purpose: Purpose,
    /// Programme.
    pub programme: String,
    /// The item.
    pub reference: String,
    /// The code version (code messages).
    pub code_version: Option<u32>,
    /// The number, all but its last four digits hidden.
    pub mobile: String,
    /// `en`, `hi` or `hi+en`.
    pub language: String,
    /// `queued`, `sending`, `sent`, `delivered` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: u32,
    /// Segments the text takes (what the office pays for).
    pub segments: u32,
    /// Why it failed.
    pub reason: Option<String>,
    /// The gateway's message id.
    pub gateway_id: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When its status last changed.
    pub updated_at: DateTime<Utc>,
}

/// What a send did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SendSummary {
    /// Messages sent.
    pub sent: u64,
    /// Messages that failed (reason on record).
    pub failed: u64,
    /// Attempts made in all.
    pub attempts: u64,
    /// Segments sent.
    pub segments: u64,
    /// Set when the gateway failed `sms.breaker_failures` times in a row and
    /// the send stopped (the rest stay queued for the next send): why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

/// A message to queue.
pub(crate) struct Queued<'a> {
    pub purpose: Purpose,
    pub programme: Programme,
    pub reference: &'a str,
    pub code_version: Option<u32>,
    pub event: Option<(&'a str, u64)>,
    pub mobile: &'a str,
    pub language: Language,
    pub segments: usize,
}

fn queue_rows<'q>(all: &'q [Queued<'q>], at: &'q i64) -> Vec<Vec<P<'q>>> {
    all.iter()
        .map(|q| {
            let (device, seq) = q
                .event
                .map_or((None, None), |(d, s)| (Some(d), Some(s as i64)));
            vec![
                P::from(q.purpose.as_str()),
                P::from(q.programme.as_str()),
                P::from(q.reference),
                P::from(q.code_version),
                P::from(device),
                P::from(seq),
                P::from(q.mobile),
                P::from(q.language.as_str()),
                P::from("queued"),
                P::from(q.segments as i64),
                P::from(*at),
                P::from(*at),
            ]
        })
        .collect()
}

const QUEUE: &str = "INSERT INTO sms_outbox (purpose, programme, reference, code_version,
     event_device, event_seq, mobile, language, status, segments, created_at, updated_at)";

/// Queue messages in `tx`, in a few multi-row statements; a message queued
/// before for the same event is not queued again. Returns how many were.
pub(crate) fn queue_all(
    tx: &mut Tx<'_, '_>,
    all: &[Queued<'_>],
    now: DateTime<Utc>,
) -> Result<u64> {
    let at = ms(now);
    tx.insert_rows(QUEUE, 12, "ON CONFLICT DO NOTHING", &queue_rows(all, &at))
}

/// Queue messages in `tx`; their ids.
pub(crate) fn queue_returning(
    tx: &mut Tx<'_, '_>,
    all: &[Queued<'_>],
    now: DateTime<Utc>,
) -> Result<Vec<i64>> {
    let at = ms(now);
    tx.insert_rows_returning(QUEUE, 12, "RETURNING id", &queue_rows(all, &at), "id")
}

/// A claimed row, with what rendering it needs.
pub(crate) struct Claimed {
    id: i64,
    purpose: Purpose,
    programme: Programme,
    reference: String,
    code_version: Option<u32>,
    event: Option<(String, i64)>,
    mobile: String,
    language: Language,
}

/// How long a claim may stand before another sender takes the row.
const CLAIM_EXPIRES_MINUTES: i64 = 10;
/// Rows claimed at once.
const CLAIM_BATCH: i64 = 100;

/// `98******10` style: all but the last four digits hidden.
pub(crate) fn mask(mobile: &str) -> String {
    let n = mobile.chars().count();
    mobile
        .chars()
        .enumerate()
        .map(|(i, c)| if i + 4 < n { '*' } else { c })
        .collect()
}

/// India Standard Time is UTC+05:30 all year.
pub(crate) fn ist(t: DateTime<Utc>) -> String {
    later(t, Duration::minutes(330))
        .format("%d-%m-%Y %H:%M IST")
        .to_string()
}

impl Office {
    /// The configured sender (`office.toml`): a [`FileSender`] on the
    /// office's `sms.csv` by default.
    pub fn sender(&self) -> Result<Box<dyn Sender>> {
        let s = &self.config.sms;
        Ok(match s.sender.as_str() {
            "http" => Box::new(HttpSender::from_settings(s)?),
            "msdg" => Box::new(msdg::MsdgSender::from_settings(s)?),
            "nic" => Box::new(nic::NicSender::from_settings(s)?),
            "template" => Box::new(template::TemplateSender::from_settings(s)?),
            _ => Box::new(FileSender::new(self.dir.join(&s.file))),
        })
    }

    /// The text of one message. For a code message it holds the code:
    /// the caller drops it once sent.
    fn render(&self, tx: &mut Tx<'_, '_>, c: &Claimed) -> Result<Zeroizing<String>> {
        if c.purpose != Purpose::Code {
            let (device, seq) = c
                .event
                .as_ref()
                .ok_or(Error::Store("a confirmation SMS has no event"))?;
            let (time, item): (i64, String) = tx.one(
                "SELECT e.device_time AS device_time, i.details AS details FROM events e
                 JOIN items i ON i.manifest_id = e.manifest_id AND i.reference = e.reference
                 WHERE e.device_id = $1 AND e.seq = $2",
                ps![device, *seq],
                |r| Ok((r.get("device_time")?, r.get("details")?)),
            )?;
            let details: ItemDetails = serde_json::from_str(&item)
                .map_err(|_| Error::Store("stored item details are unreadable"))?;
            return Ok(Zeroizing::new(self.confirmation_text(
                c.programme,
                c.purpose,
                c.language,
                &c.reference,
                from_ms(time),
                &details,
            )?));
        }
        let version = c
            .code_version
            .ok_or(Error::Store("a code SMS has no code version"))?;
        let (policy, key_id): (String, String) = tx.one(
            "SELECT policy, code_key_id FROM codes
             WHERE programme = $1 AND reference = $2 AND code_version = $3",
            ps![c.programme.as_str(), &c.reference, version],
            |r| Ok((r.get("policy")?, r.get("code_key_id")?)),
        )?;
        let policy: handover_core::codes::Policy = serde_json::from_str(&policy)
            .map_err(|_| Error::Store("a stored policy is unreadable"))?;
        // The key the code was issued under, whichever is current now.
        let code = derive_code(
            &*self.code_keys.get(&key_id)?,
            c.programme,
            &c.reference,
            version,
            policy.digits,
        )?;
        Ok(Zeroizing::new(self.templates.render(
            c.programme,
            Purpose::Code,
            c.language,
            &Values {
                reference: &c.reference,
                code: Some(&code),
                care: self.care(c.programme),
                ..Values::default()
            },
        )?))
    }

    /// The text of a confirmation or certificate notice, as it will be sent.
    pub(crate) fn confirmation_text(
        &self,
        programme: Programme,
        purpose: Purpose,
        language: Language,
        reference: &str,
        when: DateTime<Utc>,
        details: &ItemDetails,
    ) -> Result<String> {
        let mut values = Values {
            reference,
            when: Some(ist(when)),
            care: self.care(programme),
            ..Values::default()
        };
        if let ItemDetails::Vaccination(v) = details {
            values.vaccine = Some(&v.vaccine);
            values.dose = Some(v.dose);
            values.beneficiary = Some(&v.beneficiary_ref);
        }
        self.templates.render(programme, purpose, language, &values)
    }

    fn care(&self, programme: Programme) -> &str {
        match programme {
            Programme::Post => &self.config.customer_care.post,
            Programme::Vaccination => &self.config.customer_care.vaccination,
        }
    }

    /// Queue every failed message again; returns how many.
    pub fn sms_requeue_failed(&self, now: DateTime<Utc>) -> Result<u64> {
        self.sms_requeue_failed_as(crate::staff::COMMAND_LINE, now)
    }

    /// [`sms_requeue_failed`](Self::sms_requeue_failed), by staff member
    /// `actor` (the audit log).
    pub fn sms_requeue_failed_as(&self, actor: &str, now: DateTime<Utc>) -> Result<u64> {
        self.store.write(|tx| {
            let n = tx.exec(
                "UPDATE sms_outbox SET status = 'queued', updated_at = $1 WHERE status = 'failed'",
                ps![ms(now)],
            )?;
            crate::staff::audit(tx, actor, "retry failed SMS", &format!("{n} messages"), now)?;
            Ok(n)
        })
    }

    /// The failed messages, newest first, at most `limit`.
    pub fn sms_failed(&self, limit: i64) -> Result<Vec<SmsRecord>> {
        self.store.read(|tx| {
            sms_rows(
                tx,
                "WHERE status = 'failed' ORDER BY updated_at DESC, id DESC LIMIT $1",
                ps![limit],
            )
        })
    }

    /// Every message in the outbox, oldest first.
    pub fn sms_list(&self) -> Result<Vec<SmsRecord>> {
        self.store.read(|tx| sms_rows(tx, "ORDER BY id", ps![]))
    }

    /// The messages of one item, oldest first.
    pub fn sms_of(&self, programme: Programme, reference: &str) -> Result<Vec<SmsRecord>> {
        self.store.read(|tx| {
            sms_rows(
                tx,
                "WHERE programme = $1 AND reference = $2 ORDER BY id",
                ps![programme.as_str(), reference],
            )
        })
    }

    /// Queue the current code of `reference` again (the recipient did not
    /// get it); returns the new message's id.
    pub fn sms_resend(&self, reference: &str, now: DateTime<Utc>) -> Result<i64> {
        self.sms_resend_as(reference, crate::staff::COMMAND_LINE, now)
    }
    /// [`sms_resend`](Self::sms_resend), by staff member `actor` (the
    /// audit log).
    pub fn sms_resend_as(&self, reference: &str, actor: &str, now: DateTime<Utc>) -> Result<i64> {
        self.store.write(|tx| {
            crate::staff::audit(tx, actor, "resend code", reference, now)?;
            let row: Option<(String, i64, String, String, i64)> = tx.opt(
                "SELECT i.programme AS programme, c.code_version AS code_version,
                        i.mobile AS mobile, i.language AS language, i.digits AS digits
                 FROM codes c JOIN items i ON i.programme = c.programme AND i.reference = c.reference
                     AND i.code_version = c.code_version
                 WHERE c.reference = $1 ORDER BY c.code_version DESC LIMIT 1",
                ps![reference],
                |r| {
                    Ok((
                        r.get("programme")?,
                        r.get("code_version")?,
                        r.get("mobile")?,
                        r.get("language")?,
                        r.get("digits")?,
                    ))
                },
            )?;
            let (programme, version, mobile, language, digits) =
                row.ok_or_else(|| Error::UnknownReference(reference.to_owned()))?;
            let programme: Programme = programme.parse()?;
            let version = u32::try_from(version).map_err(|_| Error::Store("a code version is out of range"))?;
            let language: Language = language.parse()?;
            let digits = u8::try_from(digits).map_err(|_| Error::Store("digits out of range"))?;
            let segments = self.code_segments(programme, reference, language, digits)?;
            queue_returning(
                tx,
                &[Queued {
                    purpose: Purpose::Code,
                    programme,
                    reference,
                    code_version: Some(version),
                    event: None,
                    mobile: &mobile,
                    language,
                    segments,
                }],
                now,
            )?
            .first()
            .copied()
            .ok_or(Error::Store("the message could not be queued"))
        })
    }

    /// Send one test message to `mobile` through `sender`: the English
    /// post code template with a stand-in reference and code of zeros (the
    /// DLT template the gateway knows), recorded nowhere. Returns what the
    /// gateway answered. For checking a gateway's settings.
    pub fn sms_test(&self, sender: &dyn Sender, mobile: &str) -> Result<Attempt> {
        let mobile = crate::bookings::normalise_mobile(mobile).ok_or(Error::SmsSetting(
            "the test number must be a 10-digit Indian mobile number",
        ))?;
        let stand_in = handover_core::codes::Code::parse("000000", 6)?;
        let text = self.templates.render(
            Programme::Post,
            Purpose::Code,
            Language::En,
            &Values {
                reference: "TEST",
                code: Some(&stand_in),
                care: "",
                ..Values::default()
            },
        )?;
        let (encoding, _) = segments::count(&text);
        Ok(sender.send(&Outgoing {
            id: 0,
            mobile: &mobile,
            reference: "TEST",
            text: &text,
            encoding,
            template: "post.code.en",
        }))
    }

    /// Segments of a code message: rendered with a stand-in code of the
    /// same digits, so the count is exact without the code.
    pub(crate) fn code_segments(
        &self,
        programme: Programme,
        reference: &str,
        language: Language,
        digits: u8,
    ) -> Result<usize> {
        let stand_in = handover_core::codes::Code::parse(&"0".repeat(usize::from(digits)), digits)?;
        let text = self.templates.render(
            programme,
            Purpose::Code,
            language,
            &Values {
                reference,
                code: Some(&stand_in),
                care: "",
                ..Values::default()
            },
        )?;
        Ok(segments::count(&text).1)
    }
}

/// The outbox's rows after `tail` (a WHERE and ORDER BY), numbers masked.
fn sms_rows(
    tx: &mut crate::store::Tx<'_, '_>,
    tail: &str,
    params: &[crate::store::sql::P<'_>],
) -> Result<Vec<SmsRecord>> {
    tx.all(
        &format!(
            "SELECT id, purpose, programme, reference, code_version, mobile, language, status,
                    attempts, segments, reason, gateway_id, created_at, updated_at
             FROM sms_outbox {tail}"
        ),
        params,
        |r| {
            Ok(SmsRecord {
                id: r.get("id")?,
                purpose: Purpose::parse(&r.get::<String>("purpose")?)?,
                programme: r.get("programme")?,
                reference: r.get("reference")?,
                code_version: r
                    .get::<Option<i64>>("code_version")?
                    .and_then(|v| u32::try_from(v).ok()),
                mobile: mask(&r.get::<String>("mobile")?),
                language: r.get("language")?,
                status: r.get("status")?,
                attempts: u32::try_from(r.get::<i64>("attempts")?).unwrap_or(0),
                segments: u32::try_from(r.get::<i64>("segments")?).unwrap_or(0),
                reason: r.get("reason")?,
                gateway_id: r.get("gateway_id")?,
                created_at: from_ms(r.get("created_at")?),
                updated_at: from_ms(r.get("updated_at")?),
            })
        },
    )
}
