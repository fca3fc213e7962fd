//! At the door: verifying a code, recording exceptions and payments, and
//! building UPI requests.

use chrono::{DateTime, Utc};
use rusqlite::params;
use serde::Serialize;

use super::items::{self, ItemState};
use super::Device;
use crate::codes::Code;
use crate::error::{Error, Result};
use crate::event::{Event, EventBody, EventKind, ExceptionReason, Fix, PaymentMethod};
use crate::keys::PublicKey;
use crate::manifest::CashOnDelivery;
use crate::rules::{earlier, later};
use crate::upi::{self, UpiRequest};

/// A signed `handed_over` event: the recipient's receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Receipt {
    /// The device that signed it.
    pub device_id: String,
    /// The signed event.
    pub event: Event,
}

impl Receipt {
    /// Check the receipt against the device's public key and return its body.
    pub fn verify(&self, device_key: &PublicKey) -> Result<EventBody> {
        self.event.verify(device_key)
    }
}

/// The answer to a code entered at the door.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
#[non_exhaustive]
pub enum VerifyOutcome {
    /// Right code: hand the item over. The receipt is already on disk.
    Accepted {
        /// The signed handover event.
        receipt: Receipt,
    },
    /// Wrong code; `attempts_left` more are allowed.
    Refused {
        /// Wrong codes still allowed.
        attempts_left: u32,
    },
    /// No more attempts: the item needs a re-issued code.
    Locked,
    /// Already handed over.
    AlreadyDone,
    /// The manifest's window has not opened yet.
    NotYetValid,
    /// The manifest's window has closed.
    Expired,
    /// No such item on this device.
    UnknownItem,
    /// Not a code of the right length; no attempt was counted.
    Malformed {
        /// How many digits the code has.
        digits: u8,
    },
}

impl Device {
    /// Check `code` for `reference` at `now`. Attempts and lockout persist;
    /// the outcome and its events are committed before this returns.
    pub fn verify(&self, reference: &str, code: &str, now: DateTime<Utc>) -> Result<VerifyOutcome> {
        self.verify_at(reference, code, None, now)
    }

    /// [`verify`](Self::verify), with where the device was (the fix the app
    /// took at the door): it goes into the signed handover or wrong-code
    /// event. `None` records that there was no fix.
    pub fn verify_at(
        &self,
        reference: &str,
        code: &str,
        at: Option<Fix>,
        now: DateTime<Utc>,
    ) -> Result<VerifyOutcome> {
        let tolerance = self.options.clock_tolerance;
        self.write(now, |tx| {
            let Some(item) = items::find(tx, reference)? else {
                return Ok(VerifyOutcome::UnknownItem);
            };
            match item.state {
                ItemState::HandedOver => return Ok(VerifyOutcome::AlreadyDone),
                ItemState::Locked => return Ok(VerifyOutcome::Locked),
                s if !s.accepts_codes() => return Ok(VerifyOutcome::UnknownItem),
                _ => {}
            }
            if now < earlier(item.valid_from, tolerance) {
                return Ok(VerifyOutcome::NotYetValid);
            }
            if now > later(item.valid_until, tolerance) {
                return Ok(VerifyOutcome::Expired);
            }
            // The SMS and the recipient give the code in groups ("351 886",
            // "351-886"): spaces and hyphens are not digits of it.
            let typed: zeroize::Zeroizing<String> = code
                .chars()
                .filter(|c| !c.is_whitespace() && *c != '-')
                .collect::<String>()
                .into();
            let Ok(code) = Code::parse(&typed, item.policy.digits) else {
                return Ok(VerifyOutcome::Malformed {
                    digits: item.policy.digits,
                });
            };
            if item.verifier.check(&code, &item.reference, &item.policy) {
                let state = item.state.hand_over()?;
                let event = self.append_at(
                    tx,
                    now,
                    EventKind::HandedOver {
                        manifest_id: item.manifest_id.clone(),
                        revision: item.revision,
                        reference: item.reference.clone(),
                        code_version: item.code_version,
                        code,
                    },
                    at,
                )?;
                tx.execute(
                    "UPDATE items SET state = ?3, outcome_seq = ?4
                     WHERE manifest_id = ?1 AND reference = ?2",
                    params![item.manifest_id, item.reference, state, event.seq as i64],
                )?;
                return Ok(VerifyOutcome::Accepted {
                    receipt: Receipt {
                        device_id: self.device_id.clone(),
                        event,
                    },
                });
            }
            let attempts = item.attempts.saturating_add(1);
            let attempts_left = item.policy.max_attempts.saturating_sub(attempts);
            self.append_at(
                tx,
                now,
                EventKind::AttemptFailed {
                    manifest_id: item.manifest_id.clone(),
                    reference: item.reference.clone(),
                    code_version: item.code_version,
                    attempts_left,
                },
                at,
            )?;
            let state = item.state.fail_attempt(attempts_left);
            if state == ItemState::Locked {
                self.append(
                    tx,
                    now,
                    EventKind::Locked {
                        manifest_id: item.manifest_id.clone(),
                        reference: item.reference.clone(),
                        code_version: item.code_version,
                    },
                )?;
            }
            tx.execute(
                "UPDATE items SET attempts = ?3, state = ?4
                 WHERE manifest_id = ?1 AND reference = ?2",
                params![item.manifest_id, item.reference, attempts, state],
            )?;
            Ok(if state == ItemState::Locked {
                VerifyOutcome::Locked
            } else {
                VerifyOutcome::Refused { attempts_left }
            })
        })
    }

    /// Record why `reference` was not handed over at this visit.
    pub fn record_exception(
        &self,
        reference: &str,
        reason: ExceptionReason,
        now: DateTime<Utc>,
    ) -> Result<Event> {
        self.record_exception_at(reference, reason, None, now)
    }

    /// [`record_exception`](Self::record_exception), with where the device
    /// was: an exception written away from the door shows at the office.
    pub fn record_exception_at(
        &self,
        reference: &str,
        reason: ExceptionReason,
        at: Option<Fix>,
        now: DateTime<Utc>,
    ) -> Result<Event> {
        self.write(now, |tx| {
            let item = items::find(tx, reference)?.ok_or(Error::UnknownItem)?;
            let state = item.state.record_exception()?;
            let event = self.append_at(
                tx,
                now,
                EventKind::Exception {
                    manifest_id: item.manifest_id.clone(),
                    reference: item.reference.clone(),
                    reason,
                },
                at,
            )?;
            tx.execute(
                "UPDATE items SET exception_reason = ?3, state = ?4
                 WHERE manifest_id = ?1 AND reference = ?2",
                params![item.manifest_id, item.reference, reason, state],
            )?;
            Ok(event)
        })
    }

    /// Record the cash-on-delivery payment of `reference`.
    pub fn record_payment(
        &self,
        reference: &str,
        method: PaymentMethod,
        now: DateTime<Utc>,
    ) -> Result<Event> {
        self.record_payment_at(reference, method, None, now)
    }

    /// [`record_payment`](Self::record_payment), with where the device was.
    pub fn record_payment_at(
        &self,
        reference: &str,
        method: PaymentMethod,
        at: Option<Fix>,
        now: DateTime<Utc>,
    ) -> Result<Event> {
        if let PaymentMethod::Upi { txn_ref } = &method {
            upi::validate_utr(txn_ref)?;
        }
        self.write(now, |tx| {
            let (item, cod) = handed_over_unpaid_cod_item(tx, reference)?;
            let event = self.append_at(
                tx,
                now,
                EventKind::Payment {
                    manifest_id: item.manifest_id.clone(),
                    reference: item.reference.clone(),
                    amount_paise: cod.amount_paise,
                    method,
                },
                at,
            )?;
            tx.execute(
                "UPDATE items SET paid = 1 WHERE manifest_id = ?1 AND reference = ?2",
                params![item.manifest_id, item.reference],
            )?;
            Ok(event)
        })
    }

    /// A UPI request for the cash-on-delivery of `reference`, with a
    /// transaction reference never used before for this item.
    pub fn upi_request(&self, reference: &str, now: DateTime<Utc>) -> Result<UpiRequest> {
        self.write(now, |tx| {
            let (item, cod) = unpaid_cod_item(tx, reference)?;
            if cod.payee_upi.is_empty() {
                return Err(Error::NotAllowed(
                    "the office has not set up a UPI payee for cash on delivery: take cash",
                ));
            }
            let n = item.upi_requests + 1;
            tx.execute(
                "UPDATE items SET upi_requests = ?3 WHERE manifest_id = ?1 AND reference = ?2",
                params![item.manifest_id, item.reference, n],
            )?;
            UpiRequest::new(
                &cod.payee_upi,
                &cod.payee_name,
                cod.amount_paise,
                &format!("{}-{n}", item.reference),
                &format!("COD {}", item.reference),
            )
        })
    }
}

/// The live item `reference` with its cash on delivery, still unpaid.
fn unpaid_cod_item(
    tx: &rusqlite::Connection,
    reference: &str,
) -> Result<(items::ItemRow, CashOnDelivery)> {
    let item = items::find(tx, reference)?.ok_or(Error::UnknownItem)?;
    let cod = item
        .details()?
        .cod()
        .cloned()
        .ok_or(Error::NotAllowed("item has no cash on delivery"))?;
    if item.paid {
        return Err(Error::NotAllowed("payment already recorded"));
    }
    Ok((item, cod))
}

/// [`unpaid_cod_item`], handed over: a payment is recorded after the
/// recipient's code (the article is paid for as it changes hands).
fn handed_over_unpaid_cod_item(
    tx: &rusqlite::Connection,
    reference: &str,
) -> Result<(items::ItemRow, CashOnDelivery)> {
    let (item, cod) = unpaid_cod_item(tx, reference)?;
    if item.state != ItemState::HandedOver {
        return Err(Error::NotAllowed(
            "the item is not yet handed over: verify the recipient's code first",
        ));
    }
    Ok((item, cod))
}
