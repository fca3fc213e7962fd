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
//! | `retired.rs` | a store whose device key is lost: its signed events still reach the office |
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
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::event::Event;
use crate::keys::{PublicKey, SigningKey};

mod client;
mod doorstep;
mod import;
mod items;
mod outbox;
mod retired;
pub mod schema;
mod sync;

pub use client::{
    acceptable_server_time, HttpRequest, HttpResponse, SyncSession, SyncSummary,
    MAX_SERVER_TIME_CORRECTION_MS,
};
pub use doorstep::{Receipt, VerifyOutcome};
pub use import::ImportOutcome;
pub use items::{ItemState, ItemView};
pub use retired::RetiredOutbox;
pub use sync::{AckSummary, DeviceStatus, HeldManifest, PurgeSummary};

const DEVICE_KEY: &str = "device_pkcs8";
const DEVICE_KEY_WRAPPED: &str = "device_key_wrapped";
/// The device's public key, kept beside the (wrapped) private key so that a
/// store whose key is lost can still export its signed events
/// ([`RetiredOutbox`]).
const DEVICE_PUBLIC_KEY: &str = "device_public_key";

/// Keeps the device key wrapped at rest: the host's own key (on Android an
/// AES-256-GCM key in the Android Keystore, in StrongBox when the phone
/// has one) encrypts the device key's PKCS#8 document before it is stored,
/// and decrypts it when the store opens. The database then never holds the
/// device key in the clear. Open with [`Device::open_wrapped`].
///
/// ```
/// use handover_core::device::{Device, DeviceOptions, KeyWrap};
/// struct Xor(u8); // a toy: use a real cipher
/// impl KeyWrap for Xor {
///     fn wrap(&self, key: &[u8]) -> Result<Vec<u8>, String> {
///         Ok(key.iter().map(|b| b ^ self.0).collect())
///     }
///     fn unwrap(&self, wrapped: &[u8]) -> Result<Vec<u8>, String> {
///         self.wrap(wrapped)
///     }
/// }
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("device.db");
/// let id = Device::open_wrapped(&path, DeviceOptions::default(), &Xor(0x5a)).unwrap().identity();
/// // The same key comes back only through the wrapper.
/// let again = Device::open_wrapped(&path, DeviceOptions::default(), &Xor(0x5a)).unwrap();
/// assert_eq!(again.identity(), id);
/// assert!(Device::open(&path).is_err());
/// ```
pub trait KeyWrap: Send + Sync {
    /// Encrypt the device key (a PKCS#8 document).
    fn wrap(&self, key: &[u8]) -> std::result::Result<Vec<u8>, String>;
    /// Decrypt what [`wrap`](Self::wrap) returned.
    fn unwrap(&self, wrapped: &[u8]) -> std::result::Result<Vec<u8>, String>;
}

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
        Device::open_inner(path.as_ref(), options, None)
    }

    /// Open with the device key wrapped at rest by `wrap` (see [`KeyWrap`]).
    /// A store whose key is still in the clear (made by [`open`](Self::open))
    /// has it wrapped, checked to unwrap to the same key, and the clear copy
    /// deleted (SQLite's `secure_delete` overwrites it; the write-ahead log
    /// is truncated) in one step. A key that cannot be unwrapped is
    /// [`Error::KeyUnavailable`], and the database is left untouched.
    pub fn open_wrapped(
        path: impl AsRef<Path>,
        options: DeviceOptions,
        wrap: &dyn KeyWrap,
    ) -> Result<Device> {
        Device::open_inner(path.as_ref(), options, Some(wrap))
    }

    fn open_inner(
        path: &Path,
        options: DeviceOptions,
        wrap: Option<&dyn KeyWrap>,
    ) -> Result<Device> {
        let mut conn = crate::db::open(path, true, schema::STEPS)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let clear = outbox::meta_blob(&tx, DEVICE_KEY)?;
        let wrapped = outbox::meta_blob(&tx, DEVICE_KEY_WRAPPED)?;
        let damaged = || Error::DatabaseUnusable("stored device key is damaged".into());
        let mut rewrapped = false;
        let key = match (wrap, wrapped, clear) {
            (Some(wrap), Some(wrapped), _) => {
                let pkcs8 =
                    zeroize::Zeroizing::new(wrap.unwrap(&wrapped).map_err(Error::KeyUnavailable)?);
                SigningKey::from_pkcs8(&pkcs8).map_err(|_| {
                    Error::KeyUnavailable("the unwrapped device key is not a key".into())
                })?
            }
            (None, Some(_), _) => {
                return Err(Error::KeyUnavailable(
                    "the device key is wrapped: open the store with its key wrapper".into(),
                ))
            }
            (Some(wrap), None, clear) => {
                let key = match clear {
                    Some(pkcs8) => SigningKey::from_pkcs8(&pkcs8).map_err(|_| damaged())?,
                    None => SigningKey::generate()?,
                };
                let wrapped = wrap.wrap(key.pkcs8()).map_err(Error::KeyUnavailable)?;
                let back =
                    zeroize::Zeroizing::new(wrap.unwrap(&wrapped).map_err(Error::KeyUnavailable)?);
                if back.as_slice() != key.pkcs8() {
                    return Err(Error::KeyUnavailable(
                        "the key wrapper does not give back what it wrapped".into(),
                    ));
                }
                outbox::set_meta(&tx, DEVICE_KEY_WRAPPED, wrapped)?;
                tx.execute("DELETE FROM meta WHERE key = ?1", [DEVICE_KEY])?;
                rewrapped = true;
                key
            }
            (None, None, Some(pkcs8)) => SigningKey::from_pkcs8(&pkcs8).map_err(|_| damaged())?,
            (None, None, None) => {
                let key = SigningKey::generate()?;
                outbox::set_meta(&tx, DEVICE_KEY, key.pkcs8())?;
                key
            }
        };
        if outbox::meta_blob(&tx, DEVICE_PUBLIC_KEY)?.is_none() {
            outbox::set_meta(&tx, DEVICE_PUBLIC_KEY, &key.public_key().0[..])?;
        }
        tx.commit()?;
        if rewrapped {
            // The clear key's page was overwritten in the database
            // (secure_delete); older copies of it in the log go too.
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
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

    /// The pinned office keys, retired ones included.
    pub fn office_keys(&self) -> Result<Vec<PublicKey>> {
        trusted_keys(&self.lock(), None)
    }

    /// The office keys trusted at `now` (a retired one no longer).
    pub fn office_keys_at(&self, now: DateTime<Utc>) -> Result<Vec<PublicKey>> {
        trusted_keys(&self.lock(), Some(now))
    }

    /// Take the office's statement that its signing key changed
    /// ([`crate::statement`]): checked against the keys trusted now, the
    /// new key is pinned and the old one kept until the statement's
    /// `old_key_until`. A key has one successor: a second statement naming
    /// another for the same key is refused (the old key is in other hands).
    /// Whether the key was new to this device.
    pub fn accept_key_statement(&self, sealed: &[u8], now: DateTime<Utc>) -> Result<bool> {
        let mut conn = self.lock();
        let trusted = trusted_keys(&conn, Some(now))?;
        let s = crate::statement::KeyStatement::open(sealed, &trusted)?;
        let (old_id, new_id) = (s.old_key.key_id(), s.new_key.key_id());
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let successor: Option<String> = tx.query_row(
            "SELECT successor FROM office_keys WHERE key_id = ?1",
            params![old_id],
            |r| r.get("successor"),
        )?;
        match successor {
            Some(known) if known == new_id => return Ok(false),
            Some(_) => {
                return Err(Error::malformed(
                    "key statement",
                    "a second successor for the same office key",
                ))
            }
            None => {}
        }
        let until = s.old_key_until.timestamp_millis();
        tx.execute(
            "UPDATE office_keys SET successor = ?2, retire_at = MIN(COALESCE(retire_at, ?3), ?3)
             WHERE key_id = ?1",
            params![old_id, new_id, until],
        )?;
        let added = tx.execute(
            "INSERT INTO office_keys (key_id, public_key, added_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(key_id) DO NOTHING",
            params![new_id, &s.new_key.0[..], now.timestamp_millis()],
        )?;
        tx.commit()?;
        Ok(added == 1)
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

    /// The receipt of the live item's handover, if it was handed over and
    /// its event is still held (not purged): to show it again after the
    /// app was closed, as it was when [`verify`](Self::verify) accepted.
    pub fn receipt(&self, reference: &str) -> Result<Option<Receipt>> {
        let conn = self.lock();
        let Some(item) = items::find(&conn, reference)? else {
            return Ok(None);
        };
        if item.state != ItemState::HandedOver {
            return Ok(None);
        }
        let seq: Option<i64> = conn
            .query_row(
                "SELECT seq FROM events
                 WHERE kind = 'handed_over' AND manifest_id = ?1 AND reference = ?2
                 ORDER BY seq DESC LIMIT 1",
                params![item.manifest_id, item.reference],
                |r| r.get("seq"),
            )
            .optional()?;
        let Some(seq) = seq else { return Ok(None) };
        Ok(outbox::read_event(&conn, seq)?.map(|event| Receipt {
            device_id: self.device_id.clone(),
            event,
        }))
    }

    /// The device's high-water mark of time (its hybrid logical clock), if
    /// it ever wrote an event.
    pub(crate) fn clock_mark(&self) -> Result<Option<i64>> {
        outbox::high_water_mark(&self.lock())
    }

    /// Events not yet acknowledged by the office.
    pub fn pending_count(&self) -> Result<u64> {
        outbox::pending_count(&self.lock())
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
        outbox::append(tx, &self.key, &self.device_id, now, kind, None)
    }

    /// [`append`](Self::append) a doorstep event, with the fix the app
    /// took at that moment, if any.
    fn append_at(
        &self,
        tx: &Transaction<'_>,
        now: DateTime<Utc>,
        kind: crate::event::EventKind,
        at: Option<crate::event::Fix>,
    ) -> Result<Event> {
        outbox::append(tx, &self.key, &self.device_id, now, kind, at)
    }
}

/// The pinned office keys trusted at `now` (all of them for `None`): a
/// key retired by a statement is trusted until its `retire_at`, by the
/// later of `now` and the device's high-water mark of time (a clock set
/// back does not bring a retired key back).
fn trusted_keys(conn: &Connection, now: Option<DateTime<Utc>>) -> Result<Vec<PublicKey>> {
    let at = match now {
        Some(now) => outbox::high_water_mark(conn)?
            .unwrap_or(i64::MIN)
            .max(now.timestamp_millis()),
        None => i64::MIN,
    };
    let mut stmt = conn.prepare_cached(
        "SELECT public_key FROM office_keys WHERE retire_at IS NULL OR retire_at > ?1
         ORDER BY added_at",
    )?;
    let rows = stmt.query_map([at], |r| r.get::<_, Vec<u8>>(0))?;
    rows.map(|r| {
        let bytes: [u8; 32] = r?
            .try_into()
            .map_err(|_| Error::DatabaseUnusable("stored office key is damaged".into()))?;
        Ok(PublicKey(bytes))
    })
    .collect()
}
