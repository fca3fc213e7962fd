//! The checks every signed request passes.
//!
//! A signed request must come from an enrolled device, carry a valid
//! signature over its method, path, body, time and nonce, be within five
//! minutes of the office's clock (compared without overflow, whatever time
//! it names), come from a device that is not revoked, and use a nonce not
//! seen before.
//!
//! In two steps, so that the service can limit a device's rate between
//! them and a batch costs one transaction, not three:
//!
//! 1. [`Office::check_request`]: the device's key (read once per device
//!    and kept: a device id is a hash of its key, so the key held for an id
//!    never changes), the signature and the time. No write.
//! 2. The nonce and the revocation, in the transaction that does the
//!    request's work: [`Office::authenticate`] for a request that only
//!    reads (manifests), [`Office::ingest_request`] for a batch, whose
//!    nonce goes in with its events (on a refused batch, in a transaction
//!    of its own: a nonce is spent whatever the answer).

use std::collections::HashMap;
use std::sync::RwLock;

use chrono::{DateTime, Utc};
use handover_core::api::{verify_request, SignedRequest, REQUEST_WINDOW_MS};
use handover_core::keys::PublicKey;

use crate::error::{Error, Result};
use crate::store::sql::P;
use crate::store::{ps, Tx};
use crate::{ms, Office};

/// Enrolled devices' keys by device id, filled as requests come. Only keys
/// read from the store go in, and a device's key never changes, so an entry
/// is never stale; revocation is read in each request's transaction.
#[derive(Debug, Default)]
pub(crate) struct DeviceKeys(RwLock<HashMap<String, PublicKey>>);

impl DeviceKeys {
    fn get(&self, device_id: &str) -> Option<PublicKey> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(device_id)
            .copied()
    }

    fn keep(&self, device_id: &str, key: PublicKey) {
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(device_id.to_owned(), key);
    }
}

/// A signed request whose device, signature and time check out; its nonce
/// is not spent yet (step 2 above).
#[derive(Debug)]
pub struct CheckedRequest {
    device_id: String,
    nonce: [u8; 16],
    now_ms: i64,
}

impl CheckedRequest {
    /// The device that signed the request.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// Spend the request's nonce and check that its device is not revoked,
    /// in `tx`.
    pub(crate) fn spend(&self, tx: &mut Tx<'_, '_>) -> Result<()> {
        let revoked: Option<bool> = tx.opt(
            "SELECT revoked_at IS NOT NULL AS revoked FROM devices WHERE device_id = $1",
            ps![&self.device_id],
            |r| r.get("revoked"),
        )?;
        match revoked {
            None => return Err(Error::UnknownDevice(self.device_id.clone())),
            Some(true) => return Err(Error::DeviceRevoked(self.device_id.clone())),
            Some(false) => {}
        }
        self.spend_nonce(tx)
    }

    /// Spend the nonce only (the caller has checked the revocation).
    pub(crate) fn spend_nonce(&self, tx: &mut Tx<'_, '_>) -> Result<()> {
        let fresh = if tx.is_pg() {
            const SPEND: &str = concat!(spend_nonce_with!(), " SELECT count(*) AS n FROM spent");
            tx.int(SPEND, &self.nonce_params())?
        } else {
            let p = self.nonce_params();
            let fresh = tx.exec(
                "INSERT INTO request_nonces (device_id, nonce, seen_at) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &p[..3],
            )?;
            if fresh != 0 {
                tx.exec(
                    "DELETE FROM request_nonces WHERE device_id = $1 AND seen_at < $2",
                    ps![&self.device_id, p[3]],
                )?;
            }
            fresh as i64
        };
        if fresh == 0 {
            return Err(Error::ReplayedRequest);
        }
        Ok(())
    }

    /// The parameters of [`spend_nonce_with!`], `$1` to `$4`: the device,
    /// the nonce, now, and the time before which the device's nonces can
    /// go (older than two windows: the time check refuses their requests).
    pub(crate) fn nonce_params(&self) -> [P<'_>; 4] {
        [
            P::from(&self.device_id),
            P::from(&self.nonce),
            P::from(self.now_ms),
            P::from(self.now_ms.saturating_sub(2 * REQUEST_WINDOW_MS)),
        ]
    }
}

/// PostgreSQL: the head of a statement that spends a request's nonce
/// (`spent` holds a row if the nonce was fresh) and drops the device's
/// nonces too old to matter, in one round trip, its parameters
/// [`CheckedRequest::nonce_params`] as `$1` to `$4`. Only this device's
/// nonces go, so that concurrent requests of different devices never wait
/// on each other's deletes (several servers); a device's old nonces stay
/// until its next request. The statement's own query follows.
macro_rules! spend_nonce_with {
    () => {
        "WITH old AS (DELETE FROM request_nonces WHERE device_id = $1 AND seen_at < $4),
              spent AS (INSERT INTO request_nonces (device_id, nonce, seen_at) VALUES ($1, $2, $3)
                        ON CONFLICT DO NOTHING RETURNING 1)"
    };
}
pub(crate) use spend_nonce_with;

impl Office {
    /// Step 1: the device is enrolled, the signature and the time check
    /// out. Writes nothing.
    pub fn check_request(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        signed: &SignedRequest,
        now: DateTime<Utc>,
    ) -> Result<CheckedRequest> {
        let key = match self.device_keys.get(&signed.device_id) {
            Some(key) => key,
            None => {
                let key: Vec<u8> = self.store.read(|tx| {
                    tx.opt(
                        "SELECT public_key FROM devices WHERE device_id = $1",
                        ps![&signed.device_id],
                        |r| r.get("public_key"),
                    )?
                    .ok_or_else(|| Error::UnknownDevice(signed.device_id.clone()))
                })?;
                let key = PublicKey(
                    key.try_into()
                        .map_err(|_| Error::Store("a device key has the wrong length"))?,
                );
                self.device_keys.keep(&signed.device_id, key);
                key
            }
        };
        verify_request(&key, method, path, body, signed)?;
        let now_ms = ms(now);
        // `abs_diff` cannot overflow: `(time - now).abs()` wrapped for a
        // time near -2^63, and such a request never went stale.
        if signed.time_ms.abs_diff(now_ms) > REQUEST_WINDOW_MS.unsigned_abs() {
            return Err(Error::StaleRequest {
                server_time_ms: now_ms,
            });
        }
        Ok(CheckedRequest {
            device_id: signed.device_id.clone(),
            nonce: signed.nonce,
            now_ms,
        })
    }

    /// Both steps for a request that writes nothing else: check it, then
    /// refuse a revoked device and spend the nonce. Returns the device id.
    pub fn authenticate(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        signed: &SignedRequest,
        now: DateTime<Utc>,
    ) -> Result<String> {
        let checked = self.check_request(method, path, body, signed, now)?;
        self.store.write(|tx| checked.spend(tx))?;
        Ok(checked.device_id)
    }
}
