//! The checks every signed request passes.
//!
//! A signed request ([`Office::authenticate`]) must come from an enrolled
//! device, carry a valid signature over its method, path, body, time and
//! nonce, be within five minutes of the office's clock (compared without
//! overflow, whatever time it names), and use a nonce not seen before; a
//! revoked device is refused after its signature checks.

use chrono::{DateTime, Utc};
use handover_core::api::{verify_request, SignedRequest, REQUEST_WINDOW_MS};
use handover_core::keys::PublicKey;

use crate::error::{Error, Result};
use crate::store::ps;
use crate::{ms, Office};

impl Office {
    /// Check a signed request and record its nonce; returns the device id.
    pub fn authenticate(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        signed: &SignedRequest,
        now: DateTime<Utc>,
    ) -> Result<String> {
        let (key, revoked) = self.store.read(|tx| {
            let row: Option<(Vec<u8>, bool)> = tx.opt(
                "SELECT public_key, revoked_at IS NOT NULL AS revoked FROM devices
                 WHERE device_id = $1",
                ps![&signed.device_id],
                |r| Ok((r.get("public_key")?, r.get("revoked")?)),
            )?;
            row.ok_or_else(|| Error::UnknownDevice(signed.device_id.clone()))
        })?;
        let key = PublicKey(
            key.try_into()
                .map_err(|_| Error::Store("a device key has the wrong length"))?,
        );
        verify_request(&key, method, path, body, signed)?;
        if revoked {
            return Err(Error::DeviceRevoked(signed.device_id.clone()));
        }
        let now_ms = ms(now);
        // `abs_diff` cannot overflow: `(time - now).abs()` wrapped for a
        // time near -2^63, and such a request never went stale.
        if signed.time_ms.abs_diff(now_ms) > REQUEST_WINDOW_MS.unsigned_abs() {
            return Err(Error::StaleRequest {
                server_time_ms: now_ms,
            });
        }
        self.store.write(|tx| {
            let fresh = tx.exec(
                "INSERT INTO request_nonces (device_id, nonce, seen_at) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                ps![&signed.device_id, &signed.nonce, now_ms],
            )?;
            if fresh == 0 {
                return Err(Error::ReplayedRequest);
            }
            // Nonces older than two windows can no longer be replayed: the
            // time check refuses their requests. Only this device's, so
            // that concurrent requests of different devices never wait on
            // each other's deletes (several servers on PostgreSQL). A
            // device's old nonces stay until its next request.
            tx.exec(
                "DELETE FROM request_nonces WHERE device_id = $1 AND seen_at < $2",
                ps![
                    &signed.device_id,
                    now_ms.saturating_sub(2 * REQUEST_WINDOW_MS)
                ],
            )?;
            Ok(())
        })?;
        Ok(signed.device_id.clone())
    }
}
