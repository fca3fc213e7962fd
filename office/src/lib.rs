//! # handover-office
//!
//! The office side of *handover*, as a library: it holds the code key and
//! the office signing key, enrols devices, issues each device's signed daily
//! manifest (and the SMS that carry the codes), ingests the evening's
//! batches, re-deriving and checking every handed-over code, and answers each
//! batch with a signed ack. The `handover` command line (`handover-cli`) and
//! the sync service (`handover-server`) are built on it.
//!
//! | file | concern |
//! |---|---|
//! | `lib.rs` | [`Office`]: opening, initialising, enrolment |
//! | `error.rs` | the error type |
//! | `schema.rs` | the office database |
//! | `keystore.rs` | key files (0600) |
//! | `bookings.rs` | bookings CSV |
//! | `store.rs` | the database: one writer, readers beside it |
//! | `files.rs` | private files (0600, never through a symlink) |
//! | `enrol.rs` | enrolment tokens, enrolment, signed-request checks |
//! | `serve.rs` | what the sync service reads: a device's manifests |
//! | `config.rs` | `office.toml`: the SMS sender, gateway, DLT ids, customer care, languages |
//! | `sms/` | the SMS outbox, templates (`templates/*.toml`), segments, senders |
//! | `issue.rs` | manifests and SMS |
//! | `ingest.rs` | batches, verdicts, acks, confirmations |
//! | `report.rs` | the day's report |
//!
//! ```
//! use handover_office::Office;
//! let dir = tempfile::tempdir().unwrap();
//! let office = Office::init(dir.path(), "PO-110001").unwrap();
//! let again = Office::open(dir.path()).unwrap();
//! assert_eq!(again.public_key(), office.public_key());
//! assert!(Office::init(dir.path(), "PO-110001").is_err(), "keys are never overwritten");
//! ```

#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use handover_core::codes::CodeKey;
use handover_core::keys::{PublicKey, SigningKey};
use rusqlite::{params, OptionalExtension};

pub mod bookings;
pub mod config;
pub mod enrol;
pub mod error;
pub mod files;
pub mod ingest;
pub mod issue;
mod keystore;
pub mod report;
pub mod schema;
pub mod serve;
pub mod sms;
mod store;

pub use error::{Error, Result};

const DB_FILE: &str = "office.db";

/// The `office.toml` a new office starts with: the defaults, spelled out.
const DEFAULT_CONFIG: &str = include_str!("../templates/office.toml");
const CODE_KEY_ID: &str = "k1";

/// An office: its directory, database and keys. Every method takes `&self`:
/// an `Office` is shared by the threads of a server (writes queue on one
/// writer connection, reads go to readers beside it).
pub struct Office {
    dir: PathBuf,
    store: store::Store,
    signing: SigningKey,
    code_key: CodeKey,
    office_id: String,
    cod: bookings::CodPayee,
    config: config::Config,
    templates: sms::Templates,
}

impl std::fmt::Debug for Office {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Office")
            .field("office_id", &self.office_id)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// An enrolled device as the office records it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DeviceRecord {
    /// Device id.
    pub device_id: String,
    /// Who carries it.
    pub assignee: String,
    /// Revoked devices' batches are refused.
    pub revoked: bool,
    /// Why the device was flagged (fork, tampering), if it was.
    pub flagged: Option<String>,
    /// Last seq held from it.
    pub head_seq: u64,
}

pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_ms(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(v).unwrap_or_default()
}

impl Office {
    /// Create an office in `dir`: keys (0600) and database. Refuses a
    /// directory that already holds one.
    pub fn init(dir: &Path, office_id: &str) -> Result<Office> {
        Office::init_with(dir, office_id, bookings::CodPayee::default())
    }

    /// [`init`](Self::init) with the cash-on-delivery payee.
    pub fn init_with(dir: &Path, office_id: &str, cod: bookings::CodPayee) -> Result<Office> {
        handover_core::rules::check_id("office id", office_id)?;
        handover_core::upi::validate_vpa(&cod.upi)?;
        if dir.join(DB_FILE).exists() || dir.join("keys").exists() {
            return Err(Error::AlreadyInitialised(dir.to_owned()));
        }
        files::private_dir(dir)?;
        keystore::create(dir, CODE_KEY_ID)?;
        let store = store::Store::open(&dir.join(DB_FILE), true)?;
        store.write(|tx| {
            for (k, v) in [
                ("office_id", office_id),
                ("code_key_id", CODE_KEY_ID),
                ("cod_upi", &cod.upi),
                ("cod_name", &cod.name),
            ] {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                    params![k, v],
                )?;
            }
            Ok::<_, Error>(())
        })?;
        drop(store);
        let settings = dir.join(config::FILE);
        if !settings.exists() {
            std::fs::write(&settings, DEFAULT_CONFIG).map_err(error::io(&settings))?;
        }
        Office::open(dir)
    }

    /// Open the office in `dir`.
    pub fn open(dir: &Path) -> Result<Office> {
        let db = dir.join(DB_FILE);
        if !db.exists() {
            return Err(Error::NotInitialised(dir.to_owned()));
        }
        let store = store::Store::open(&db, false)?;
        let meta = |k: &str| -> Result<String> {
            store.read(|tx| {
                tx.query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0))
                    .optional()?
                    .ok_or_else(|| Error::NotInitialised(dir.to_owned()))
            })
        };
        let office_id = meta("office_id")?;
        let code_key = keystore::code_key(dir, &meta("code_key_id")?)?;
        let cod = bookings::CodPayee {
            upi: meta("cod_upi")?,
            name: meta("cod_name")?,
        };
        let signing = keystore::signing_key(dir)?;
        Ok(Office {
            config: config::Config::load(dir)?,
            templates: sms::Templates::builtin()?,
            dir: dir.to_owned(),
            store,
            signing,
            code_key,
            office_id,
            cod,
        })
    }

    /// The office signing public key, to pin on devices.
    pub fn public_key(&self) -> PublicKey {
        self.signing.public_key()
    }

    /// The office id.
    pub fn office_id(&self) -> &str {
        &self.office_id
    }

    /// The office directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The office's configuration (`office.toml`).
    pub fn config(&self) -> &config::Config {
        &self.config
    }

    /// The cash-on-delivery payee.
    pub fn cod_payee(&self) -> &bookings::CodPayee {
        &self.cod
    }

    /// Enrol a device by its public key; returns its device id. Enrolling the
    /// same key again is a no-op.
    pub fn enroll(
        &self,
        device_key: PublicKey,
        assignee: &str,
        now: DateTime<Utc>,
    ) -> Result<String> {
        handover_core::rules::check_text(
            "assignee",
            assignee,
            handover_core::rules::limits::ASSIGNEE,
        )?;
        let device_id = device_key.device_id();
        self.store.write(|tx| {
            tx.execute(
                "INSERT INTO devices (device_id, public_key, assignee, enrolled_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(device_id) DO NOTHING",
                params![device_id, &device_key.0[..], assignee, ms(now)],
            )?;
            Ok::<_, Error>(())
        })?;
        Ok(device_id)
    }

    /// Revoke a device: its later batches are refused.
    pub fn revoke(&self, device_id: &str, now: DateTime<Utc>) -> Result<()> {
        self.store.write(|tx| {
            let n = tx.execute(
                "UPDATE devices SET revoked_at = COALESCE(revoked_at, ?2) WHERE device_id = ?1",
                params![device_id, ms(now)],
            )?;
            if n == 0 {
                return Err(Error::UnknownDevice(device_id.to_owned()));
            }
            Ok(())
        })
    }

    /// An enrolled device.
    pub fn device(&self, device_id: &str) -> Result<DeviceRecord> {
        self.store.read(|tx| device_record(tx, device_id))
    }
}

/// The device row, read in `tx`.
pub(crate) fn device_record(tx: &rusqlite::Connection, device_id: &str) -> Result<DeviceRecord> {
    tx.query_row(
        "SELECT device_id, assignee, revoked_at IS NOT NULL AS revoked, flagged, head_seq
         FROM devices WHERE device_id = ?1",
        [device_id],
        |r| {
            Ok(DeviceRecord {
                device_id: r.get("device_id")?,
                assignee: r.get("assignee")?,
                revoked: r.get("revoked")?,
                flagged: r.get("flagged")?,
                head_seq: r.get::<_, i64>("head_seq")?.max(0) as u64,
            })
        },
    )
    .optional()?
    .ok_or_else(|| Error::UnknownDevice(device_id.to_owned()))
}
