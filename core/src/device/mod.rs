//! The device store: the postman's or vaccinator's handheld, offline.
//!
//! [`Device`] holds one SQLite database (WAL, `synchronous=FULL`, foreign
//! keys on) with the device's Ed25519 key, the pinned office keys, the
//! imported manifests and their items, and the outbox of signed, chained
//! events. Every call that changes an item appends its event in the same
//! transaction and commits before it returns: an outcome the UI was told
//! about is on disk.
//!
//! | file | concern |
//! |---|---|
//! | `mod.rs` | opening the database, identity, the API's types |
//! | `schema.rs` | tables and step-by-step migrations |
//! | `items.rs` | item rows and views |
//! | `import.rs` | manifest import and the revision rules |
//! | `doorstep.rs` | verify, exceptions, payments, UPI requests |
//! | `sync.rs` | export, ack, purge |
//! | `outbox.rs` | appending to the chain, clock checks |
//! | `client.rs` | the sync API from the device's side: enrolment, signed requests, the sync session |
//!
//! ```
//! use handover_core::device::Device;
//! let dir = tempfile::tempdir().unwrap();
//! let device = Device::open(dir.path().join("device.db")).unwrap();
//! let id = device.identity();
//! assert_eq!(id.device_id, id.public_key.device_id());
//! // Reopening keeps the same key.
//! drop(device);
//! let again = Device::open(dir.path().join("device.db")).unwrap();
//! assert_eq!(again.identity(), id);
//! ```

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Duration, Utc};
use rusqlite::{params, Connection, Transaction, TransactionBehavior};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::event::Event;
use crate::keys::{PublicKey, SigningKey};

mod client;
mod doorstep;
mod import;
mod items;
mod outbox;
pub mod schema;
mod sync;

pub use client::{HttpRequest, HttpResponse, SyncSession, SyncSummary};
pub use doorstep::{Receipt, VerifyOutcome};
pub use import::ImportOutcome;
pub use items::{ItemState, ItemView};
pub use sync::{AckSummary, PurgeSummary};

const DEVICE_KEY: &str = "device_pkcs8";

/// Tunables of a device store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceOptions {
    /// How far the clock may stray, both for validity windows and for
    /// detecting a clock set back.
    pub clock_tolerance: Duration,
}

impl Default for DeviceOptions {
    fn default() -> Self {
        DeviceOptions {
            clock_tolerance: crate::rules::clock_tolerance(),
        }
    }
}

/// Who this device is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// Short hash of the public key.
    pub device_id: String,
    /// The device's Ed25519 public key, to enrol at the office.
    pub public_key: PublicKey,
}

/// The device store. Thread-safe: calls are serialised on one connection.
pub struct Device {
    conn: Mutex<Connection>,
    key: SigningKey,
    device_id: String,
    options: DeviceOptions,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

impl Device {
    /// Open (creating or migrating) the database at `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Device> {
        Device::open_with(path, DeviceOptions::default())
    }

    /// Open with `options`. A file that is not a usable database is reported
    /// as [`Error::DatabaseUnusable`] and left exactly as it was.
    pub fn open_with(path: impl AsRef<Path>, options: DeviceOptions) -> Result<Device> {
        let mut conn = crate::db::open(path.as_ref(), true, schema::STEPS)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let key = match outbox::meta_blob(&tx, DEVICE_KEY)? {
            Some(pkcs8) => SigningKey::from_pkcs8(&pkcs8)
                .map_err(|_| Error::DatabaseUnusable("stored device key is damaged".into()))?,
            None => {
                let key = SigningKey::generate()?;
                outbox::set_meta(&tx, DEVICE_KEY, key.pkcs8())?;
                key
            }
        };
        tx.commit()?;
        let device_id = key.public_key().device_id();
        Ok(Device {
            conn: Mutex::new(conn),
            key,
            device_id,
            options,
        })
    }

    /// This device's id and public key.
    pub fn identity(&self) -> Identity {
        Identity {
            device_id: self.device_id.clone(),
            public_key: self.key.public_key(),
        }
    }

    /// Pin an office signing key: manifests and acks signed by it are accepted.
    pub fn trust_office_key(&self, key: PublicKey, now: DateTime<Utc>) -> Result<()> {
        let conn = self.lock();
        conn.execute(
            "INSERT INTO office_keys (key_id, public_key, added_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(key_id) DO NOTHING",
            params![key.key_id(), &key.0[..], now.timestamp_millis()],
        )?;
        Ok(())
    }

    /// The pinned office keys.
    pub fn office_keys(&self) -> Result<Vec<PublicKey>> {
        trusted_keys(&self.lock())
    }

    /// Every stored event, oldest first (purged ones are gone).
    pub fn events(&self) -> Result<Vec<Event>> {
        outbox::read_events(&self.lock(), false, u64::MAX)
    }

    /// The chain head: last seq written and its hash.
    pub fn head(&self) -> Result<(u64, [u8; 32])> {
        let head = outbox::head(&self.lock())?;
        Ok((head.seq(), head.hash()))
    }

    /// Items of the imported manifests, withdrawn ones left out.
    pub fn items(&self) -> Result<Vec<ItemView>> {
        items::all(&self.lock())?.iter().map(|r| r.view()).collect()
    }

    /// The live item with `reference`, if any.
    pub fn item(&self, reference: &str) -> Result<Option<ItemView>> {
        items::find(&self.lock(), reference)?
            .map(|r| r.view())
            .transpose()
    }

    /// Events not yet acknowledged by the office.
    pub fn pending_count(&self) -> Result<u64> {
        let n: i64 =
            self.lock()
                .query_row("SELECT COUNT(*) FROM events WHERE acked = 0", [], |r| {
                    r.get(0)
                })?;
        Ok(n as u64)
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic in another call cannot leave a half-written transaction:
        // SQLite rolls back on drop. The connection is safe to keep using.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run `f` in an immediate transaction after the clock check; commit if it
    /// returns `Ok`.
    fn write<T>(
        &self,
        now: DateTime<Utc>,
        f: impl FnOnce(&Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        outbox::check_clock(
            &tx,
            &self.key,
            &self.device_id,
            now,
            self.options.clock_tolerance,
        )?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    fn append(
        &self,
        tx: &Transaction<'_>,
        now: DateTime<Utc>,
        kind: crate::event::EventKind,
    ) -> Result<Event> {
        outbox::append(tx, &self.key, &self.device_id, now, kind)
    }
}

fn trusted_keys(conn: &Connection) -> Result<Vec<PublicKey>> {
    let mut stmt = conn.prepare_cached("SELECT public_key FROM office_keys ORDER BY added_at")?;
    let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
    rows.map(|r| {
        let bytes: [u8; 32] = r?
            .try_into()
            .map_err(|_| Error::DatabaseUnusable("stored office key is damaged".into()))?;
        Ok(PublicKey(bytes))
    })
    .collect()
}
