//! Enrolment by token.
//!
//! Enrolment, step by step:
//!
//! 1. The operator makes a token for an assignee
//!    ([`Office::create_enrol_token`]): single-use, expiring, naming the
//!    office key it binds. The office keeps the token's proof key, never
//!    the token.
//! 2. The device sends an [`EnrolRequest`]: its public key, a proof that it
//!    holds the token, and a signature proving it holds its own key.
//! 3. [`Office::enrol_by_token`] checks both, enrols the device under the
//!    token's assignee, marks the token used and answers with the office key
//!    and a proof that the office knew the token: the device checks the key
//!    instead of trusting it on first use. The same device asking again with
//!    the same token (a lost response) gets the same answer; any other use of
//!    a used token is refused.

use crate::store::ps;
use chrono::{DateTime, Duration, Utc};
use handover_core::api::{enrol_key_proof, EnrolRequest, EnrolResponse, EnrolToken};
use handover_core::rules::{check_text, later, limits};

use crate::error::{Error, Result};
use crate::{ms, Office};

/// A token made for an assignee. `Debug` hides the token.
pub struct IssuedToken {
    /// The token to give the device (print it, or show it as a QR code).
    pub token: EnrolToken,
    /// Who the device will be enrolled for.
    pub assignee: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &self.token)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The longest a token may stay valid.
pub const MAX_TOKEN_VALIDITY_DAYS: i64 = 30;

impl Office {
    /// Make a single-use enrolment token for `assignee`, valid for `valid_for`.
    pub fn create_enrol_token(
        &self,
        assignee: &str,
        valid_for: Duration,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken> {
        self.create_enrol_token_as(assignee, valid_for, crate::staff::COMMAND_LINE, now)
    }

    /// [`create_enrol_token`](Self::create_enrol_token), by staff member
    /// `actor` (the audit log).
    pub fn create_enrol_token_as(
        &self,
        assignee: &str,
        valid_for: Duration,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken> {
        check_text("assignee", assignee, limits::ASSIGNEE)?;
        if valid_for <= Duration::zero() || valid_for > Duration::days(MAX_TOKEN_VALIDITY_DAYS) {
            return Err(Error::TokenValidity);
        }
        let token = EnrolToken::generate(&self.public_key())?;
        let expires_at = later(now, valid_for);
        self.store.write(|tx| {
            tx.exec(
                "INSERT INTO enrol_tokens (token_id, proof_key, assignee, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5)",
                ps![
                    &token.token_id(),
                    &token.proof_key(),
                    assignee,
                    ms(now),
                    ms(expires_at)
                ],
            )?;
            crate::staff::audit(tx, actor, "enrol token", assignee, now)
        })?;
        Ok(IssuedToken {
            token,
            assignee: assignee.to_owned(),
            expires_at,
        })
    }

    /// Enrol the device of `req` (see the module docs).
    pub fn enrol_by_token(&self, req: &EnrolRequest, now: DateTime<Utc>) -> Result<EnrolResponse> {
        struct Row {
            proof_key: Vec<u8>,
            assignee: String,
            expires_at: i64,
            used_by: Option<String>,
        }
        let token = |tx: &mut crate::store::Tx<'_, '_>| -> Result<(Row, [u8; 32])> {
            let row = tx
                .opt(
                    "SELECT proof_key, assignee, expires_at, device_id FROM enrol_tokens
                     WHERE token_id = $1",
                    ps![&req.token_id],
                    |r| {
                        Ok(Row {
                            proof_key: r.get("proof_key")?,
                            assignee: r.get("assignee")?,
                            expires_at: r.get("expires_at")?,
                            used_by: r.get("device_id")?,
                        })
                    },
                )?
                .ok_or(Error::UnknownToken)?;
            let proof_key: [u8; 32] = row
                .proof_key
                .clone()
                .try_into()
                .map_err(|_| Error::Store("a token's proof key has the wrong length"))?;
            // Whoever does not hold the token learns nothing of its state.
            req.verify(&proof_key)?;
            Ok((row, proof_key))
        };
        // The token and the proofs are checked on a reader first: a
        // stranger's request never waits for, or holds, the writer.
        self.store.read(|tx| token(tx).map(|_| ()))?;
        self.store.write(|tx| {
            tx.lock_token(&req.token_id)?;
            let (row, proof_key) = token(tx)?;
            let device_id = req.device_key.device_id();
            match &row.used_by {
                Some(d) if *d == device_id => {}
                Some(_) => return Err(Error::TokenUsed),
                None if row.expires_at < ms(now) => return Err(Error::TokenExpired),
                None if tx
                    .opt(
                        "SELECT device_id FROM devices WHERE device_id = $1",
                        ps![&device_id],
                        |r| r.get::<String>("device_id"),
                    )?
                    .is_some() =>
                {
                    // Enrolled or revoked already: the token is not used up.
                    return Err(Error::AlreadyEnrolled);
                }
                None => {
                    let added = tx.exec(
                        "INSERT INTO devices (device_id, public_key, assignee, enrolled_at)
                         VALUES ($1, $2, $3, $4) ON CONFLICT (device_id) DO NOTHING",
                        ps![&device_id, &req.device_key.0, &row.assignee, ms(now)],
                    )?;
                    if added == 0 {
                        // Enrolled at that moment by another server.
                        return Err(Error::AlreadyEnrolled);
                    }
                    tx.exec(
                        "UPDATE enrol_tokens SET used_at = $2, device_id = $3 WHERE token_id = $1",
                        ps![&req.token_id, ms(now), &device_id],
                    )?;
                }
            }
            let assignee = crate::device_record(tx, &device_id)?.assignee;
            let office_key = self.public_key();
            Ok(EnrolResponse {
                device_id,
                assignee,
                office_id: self.office_id.clone(),
                key_proof: hex::encode(enrol_key_proof(&proof_key, &office_key, &req.device_key)),
                office_key,
            })
        })
    }
}
