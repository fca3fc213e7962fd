//! A store whose device key is lost (the Android Keystore key was wiped,
//! the app's data restored onto another phone): [`RetiredOutbox`].
//!
//! Its events are already signed and chained, so they need no key to reach
//! the office. The lifecycle, step by step:
//!
//! 1. opening the store with its key wrapper fails with
//!    [`Error::KeyUnavailable`]; the app moves the database aside (never
//!    deletes it) and opens a fresh store, which enrols again;
//! 2. [`RetiredOutbox::open`] opens the moved-aside file without the key;
//! 3. [`RetiredOutbox::export_batch`] gives batches of its unacknowledged
//!    events, which reach the office as any batch does (`handover office
//!    ingest`, or a file carried there) and are checked against the device
//!    key the office enrolled;
//! 4. [`RetiredOutbox::apply_ack`] applies the office's signed ack, checked
//!    against the office keys the store pinned; when
//!    [`pending_count`](RetiredOutbox::pending_count) is 0 the file can be
//!    archived.
//!
//! Nothing can be added to a retired outbox: no event can be signed.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use rusqlite::Connection;

use super::{outbox, schema, sync, AckSummary, Identity, DEVICE_PUBLIC_KEY};
use crate::error::{Error, Result};
use crate::keys::PublicKey;
use crate::sync::Batch;

/// The outbox of a store whose device key is lost: export and ack only.
pub struct RetiredOutbox {
    conn: Mutex<Connection>,
    public_key: PublicKey,
    device_id: String,
}

impl std::fmt::Debug for RetiredOutbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetiredOutbox")
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

impl RetiredOutbox {
    /// Open an existing device store without its key. A path with no store
    /// is [`Error::DatabaseUnusable`] (nothing is created); a store that
    /// never recorded its public key (made before version 0.1's retirement
    /// support, and never opened since) is [`Error::KeyUnavailable`].
    pub fn open(path: impl AsRef<Path>) -> Result<RetiredOutbox> {
        let path = path.as_ref();
        if !path.is_file() {
            return Err(Error::DatabaseUnusable(
                "no device store at that path".into(),
            ));
        }
        let conn = crate::db::open(path, false, schema::STEPS)?;
        let stored = outbox::meta_blob(&conn, DEVICE_PUBLIC_KEY)?.ok_or_else(|| {
            Error::KeyUnavailable("this store never recorded its public key".into())
        })?;
        let bytes: [u8; 32] = stored
            .try_into()
            .map_err(|_| Error::DatabaseUnusable("stored public key is damaged".into()))?;
        let public_key = PublicKey(bytes);
        Ok(RetiredOutbox {
            device_id: public_key.device_id(),
            public_key,
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Who the store was: the office knows it by this id and key.
    pub fn identity(&self) -> Identity {
        Identity {
            device_id: self.device_id.clone(),
            public_key: self.public_key,
        }
    }

    /// Events the office has not acknowledged.
    pub fn pending_count(&self) -> Result<u64> {
        outbox::pending_count(&self.lock())
    }

    /// The next batch: up to `max` unacknowledged events, oldest first.
    pub fn export_batch(&self, max: u64) -> Result<Batch> {
        sync::batch(&self.lock(), &self.device_id, self.public_key, max)
    }

    /// Apply the office's sealed ack to a batch of this store.
    pub fn apply_ack(&self, sealed: &[u8], now: DateTime<Utc>) -> Result<AckSummary> {
        sync::apply_ack(&mut self.lock(), &self.device_id, sealed, now)
    }
}
