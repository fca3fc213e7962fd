//! `HandoverDevice`: the device store, one per app process.

use chrono::Duration;
use handover_core::api::EnrolToken;
use handover_core::device::{self, Device};
use handover_core::event::{ExceptionReason, Fix, PaymentMethod};
use std::sync::Arc;

use crate::*;

/// The device store, for one app process. Calls are serialised inside;
/// call from a background dispatcher (they touch the disk).
#[derive(uniffi::Object)]
pub struct HandoverDevice {
    pub(crate) inner: Device,
}

#[uniffi::export]
impl HandoverDevice {
    /// Open (creating or migrating) the database at `path`. A file that is
    /// not a usable database is reported and left untouched.
    #[uniffi::constructor]
    pub fn open(path: String) -> Result<Arc<Self>> {
        Ok(Arc::new(HandoverDevice {
            inner: Device::open(path)?,
        }))
    }

    /// Open with the device key wrapped at rest by `wrapper` (on Android,
    /// an AES-256-GCM key in the Android Keystore): the database never
    /// holds the key in the clear. A store made by [`open`](Self::open) has
    /// its key wrapped on the first such open. A key the wrapper cannot
    /// unwrap is `KeyUnavailable`, and the database is left untouched.
    #[uniffi::constructor]
    pub fn open_wrapped(path: String, wrapper: Arc<dyn KeyWrapper>) -> Result<Arc<Self>> {
        let wrap = key_wrapper::Adapter(wrapper);
        Ok(Arc::new(HandoverDevice {
            inner: Device::open_wrapped(path, device::DeviceOptions::default(), &wrap)?,
        }))
    }

    /// This device's id and public key.
    pub fn identity(&self) -> DeviceIdentity {
        let id = self.inner.identity();
        DeviceIdentity {
            device_id: id.device_id,
            public_key_hex: id.public_key.to_hex(),
        }
    }

    /// Pin an office signing key (hex).
    pub fn trust_office_key(&self, public_key_hex: String, now_ms: i64) -> Result<()> {
        Ok(self
            .inner
            .trust_office_key(public_key_hex.parse()?, time(now_ms)?)?)
    }

    /// Import a signed manifest.
    pub fn import_manifest(&self, manifest: Vec<u8>, now_ms: i64) -> Result<ImportResult> {
        Ok(
            match self.inner.import_manifest(&manifest, time(now_ms)?)? {
                device::ImportOutcome::Imported {
                    manifest_id,
                    revision,
                    items,
                    ..
                } => ImportResult {
                    manifest_id,
                    revision: i64::from(revision),
                    items: i64::from(items),
                    changed: true,
                },
                device::ImportOutcome::Unchanged {
                    manifest_id,
                    revision,
                } => ImportResult {
                    manifest_id,
                    revision: i64::from(revision),
                    items: 0,
                    changed: false,
                },
                _ => {
                    return Err(HandoverError::Storage {
                        reason: "unexpected import outcome".into(),
                    })
                }
            },
        )
    }

    /// The live items.
    pub fn items(&self) -> Result<Vec<Item>> {
        Ok(self.inner.items()?.into_iter().map(Item::from).collect())
    }

    /// One item by reference.
    pub fn item(&self, reference: String) -> Result<Option<Item>> {
        Ok(self.inner.item(&reference)?.map(Item::from))
    }

    /// The receipt of an item that was handed over, as `verify` returned
    /// it: to show it again after the app was closed. Null if the item was
    /// not handed over (or its event was purged).
    pub fn receipt(&self, reference: String) -> Result<Option<EventRecord>> {
        Ok(self.inner.receipt(&reference)?.map(|r| r.event.into()))
    }

    /// Check a code at the door; committed before it returns. `at`: where
    /// the device is (the fix the app took at the door), or null.
    pub fn verify(
        &self,
        reference: String,
        code: String,
        at: Option<Fix>,
        now_ms: i64,
    ) -> Result<VerifyResult> {
        Ok(self
            .inner
            .verify_at(&reference, &code, at, time(now_ms)?)?
            .into())
    }

    /// Record why an item was not handed over, and where.
    pub fn record_exception(
        &self,
        reference: String,
        reason: ExceptionReason,
        at: Option<Fix>,
        now_ms: i64,
    ) -> Result<EventRecord> {
        Ok(self
            .inner
            .record_exception_at(&reference, reason, at, time(now_ms)?)?
            .into())
    }

    /// Record a cash-on-delivery payment, and where.
    pub fn record_payment(
        &self,
        reference: String,
        payment: Payment,
        at: Option<Fix>,
        now_ms: i64,
    ) -> Result<EventRecord> {
        let method = match payment {
            Payment::Cash => PaymentMethod::Cash,
            Payment::Upi { txn_ref } => PaymentMethod::Upi { txn_ref },
        };
        Ok(self
            .inner
            .record_payment_at(&reference, method, at, time(now_ms)?)?
            .into())
    }

    /// A fresh UPI request for an item's cash on delivery.
    pub fn upi_request(&self, reference: String, now_ms: i64) -> Result<UpiPayment> {
        let r = self.inner.upi_request(&reference, time(now_ms)?)?;
        let qr = r.qr_modules()?;
        Ok(UpiPayment {
            uri: r.uri(),
            amount_paise: signed(r.amount_paise),
            txn_ref: r.txn_ref,
            qr_width: i32::try_from(qr.width).map_err(|_| out_of_range("QR width"))?,
            qr_modules: qr.modules,
        })
    }

    /// The next batch (JSON bytes) of at most `max` (1 or more)
    /// unacknowledged events.
    pub fn export_batch(&self, max: i32) -> Result<Vec<u8>> {
        let max = batch_size(max)?;
        Ok(self.inner.export_batch(max)?.to_bytes()?)
    }

    /// Apply the office's signed ack.
    pub fn apply_ack(&self, ack: Vec<u8>, now_ms: i64) -> Result<AckResult> {
        Ok(self.inner.apply_ack(&ack, time(now_ms)?)?.into())
    }

    /// The enrolment request for a token from `handover office enrol-token`.
    pub fn enrol_request(&self, token: String, now_ms: i64) -> Result<OfficeRequest> {
        let token: EnrolToken = token.parse()?;
        Ok(self.inner.enrol_request(&token, time(now_ms)?)?.into())
    }

    /// Check the office's answer to the enrolment request (the office key
    /// must be the one the token binds) and pin the key.
    pub fn finish_enrolment(
        &self,
        token: String,
        status: i32,
        body: Vec<u8>,
        now_ms: i64,
    ) -> Result<Enrolment> {
        let token: EnrolToken = token.parse()?;
        let response = device::HttpResponse {
            status: u16::try_from(status).map_err(|_| HandoverError::InvalidInput {
                reason: "HTTP status out of range".into(),
            })?,
            body,
        };
        let e = self
            .inner
            .finish_enrolment(&token, &response, time(now_ms)?)?;
        Ok(Enrolment {
            device_id: e.device_id,
            assignee: Sensitive(e.assignee),
            office_id: e.office_id,
            office_key_hex: e.office_key.to_hex(),
        })
    }

    /// A sync with the office, at most `max_events` (1 or more) per batch.
    pub fn sync_session(self: Arc<Self>, max_events: i32) -> Result<Arc<SyncSession>> {
        let max = batch_size(max_events)?;
        Ok(Arc::new(SyncSession {
            inner: std::sync::Mutex::new(device::SyncSession::new(max)),
            refusal: std::sync::Mutex::new(None),
            device: self,
        }))
    }

    /// Events not yet acknowledged.
    pub fn pending_count(&self) -> Result<i64> {
        Ok(signed(self.inner.pending_count()?))
    }

    /// Remove acknowledged events older than `retention_days`, and reduce
    /// finished manifests to tombstones; returns how many of each went.
    pub fn purge(&self, retention_days: i32, now_ms: i64) -> Result<i64> {
        if retention_days < 0 {
            return Err(out_of_range("retention"));
        }
        let retention = Duration::try_days(i64::from(retention_days))
            .ok_or_else(|| out_of_range("retention"))?;
        let s = self.inner.purge(retention, time(now_ms)?)?;
        Ok(signed(s.events + s.manifests))
    }
}

/// The outbox of a store whose device key is lost (`KeyUnavailable`):
/// its events are already signed, so they still reach the office. Open the
/// moved-aside database, send its batches (`handover office ingest`, or any
/// way a batch reaches the office), apply the acks; nothing can be added.
#[derive(uniffi::Object)]
pub struct RetiredOutbox {
    inner: device::RetiredOutbox,
}

#[uniffi::export]
impl RetiredOutbox {
    /// Open an existing store without its key; nothing is created.
    #[uniffi::constructor]
    pub fn open(path: String) -> Result<Arc<Self>> {
        Ok(Arc::new(RetiredOutbox {
            inner: device::RetiredOutbox::open(path)?,
        }))
    }

    /// Who the store was.
    pub fn identity(&self) -> DeviceIdentity {
        let id = self.inner.identity();
        DeviceIdentity {
            device_id: id.device_id,
            public_key_hex: id.public_key.to_hex(),
        }
    }

    /// Events the office has not acknowledged.
    pub fn pending_count(&self) -> Result<i64> {
        Ok(signed(self.inner.pending_count()?))
    }

    /// The next batch (JSON bytes) of at most `max` (1 or more) events.
    pub fn export_batch(&self, max: i32) -> Result<Vec<u8>> {
        Ok(self.inner.export_batch(batch_size(max)?)?.to_bytes()?)
    }

    /// Apply the office's signed ack.
    pub fn apply_ack(&self, ack: Vec<u8>, now_ms: i64) -> Result<AckResult> {
        Ok(self.inner.apply_ack(&ack, time(now_ms)?)?.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_identity_and_errors_cross_the_adapter() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let path = dir.join("d.db").to_string_lossy().into_owned();
        let d = HandoverDevice::open(path.clone()).unwrap();
        let id = d.identity();
        assert_eq!(id.public_key_hex.len(), 64);
        assert!(matches!(
            d.import_manifest(vec![1, 2, 3], 0),
            Err(HandoverError::Refused { .. })
        ));
        assert!(matches!(
            d.trust_office_key("zz".into(), 0),
            Err(HandoverError::InvalidInput { .. })
        ));
        assert!(matches!(
            d.record_exception("X".into(), ExceptionReason::NotHome, None, 0),
            Err(HandoverError::UnknownItem)
        ));
        assert!(matches!(
            d.verify("X".into(), "1234".into(), None, 0),
            Ok(VerifyResult::UnknownItem)
        ));
        assert!(matches!(
            d.verify("X".into(), "1".into(), None, i64::MAX),
            Err(HandoverError::InvalidInput { .. })
        ));
        // Extreme times and retentions are typed errors, never panics (a
        // panic would reach Kotlin as an undocumented InternalException).
        for now_ms in [i64::MIN, i64::MAX, -1, 0, 8_210_266_876_799_999] {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                (
                    d.purge(i32::MAX, now_ms).is_err(),
                    d.purge(-1, now_ms).is_err(),
                    d.export_batch(-1).is_err(),
                    d.verify("X".into(), "1234".into(), None, now_ms),
                )
            }));
            assert!(r.is_ok(), "panicked at now_ms {now_ms}");
        }
        for (what, r) in [
            ("purge(-1)", d.purge(-1, 0)),
            ("purge(MAX)", d.purge(i32::MAX, 0)),
            ("export_batch(0)", d.export_batch(0).map(|_| 0)),
            ("export_batch(-5)", d.export_batch(-5).map(|_| 0)),
        ] {
            assert!(
                matches!(r, Err(HandoverError::InvalidInput { .. })),
                "{what}: {r:?}"
            );
        }
        drop(d);
        std::fs::write(dir.join("junk.db"), b"not a database, not at all, no").unwrap();
        let junk = dir.join("junk.db").to_string_lossy().into_owned();
        assert!(matches!(
            HandoverDevice::open(junk),
            Err(HandoverError::Storage { .. })
        ));
    }
}
