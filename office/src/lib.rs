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
//! | `lib.rs` | [`Office`]: opening, initialising, enrolment by key, revocation |
//! | `error.rs` | the error type |
//! | `files.rs` | private files (0600, never through a symlink, never over what is not a regular file) |
//! | `keystore.rs` | key files (0600) |
//! | `config.rs` | `office.toml`: the store, the SMS sender, gateway, DLT ids, customer care, languages |
//! | `language.rs` | a recipient's language(s) |
//! | `bookings.rs` | bookings CSV |
//! | `store/` | the database: SQLite or PostgreSQL (`mod.rs`), statements (`sql.rs`), schema and migrations (`schema.rs`, `sqlite.sql`, `postgres.sql`), TLS to PostgreSQL (`tls.rs`) |
//! | `devices.rs` | the devices enrolled: the list operators read, simulated (load) devices |
//! | `enrol.rs` | enrolment tokens, enrolment |
//! | `auth.rs` | the checks every signed request passes |
//! | `manifests.rs` | the manifests a device is served |
//! | `issue.rs` | manifests and their code SMS |
//! | `ingest/` | batches, verdicts, acks, confirmations |
//! | `sms/` | the SMS outbox, templates (`templates/*.toml`), segments, senders, the SMS file, delivery reports |
//! | `presence.rs` | presence evidence: each doorstep event's finding against its address's DIGIPIN, and the report's figures of them |
//! | `report.rs` | the day's report, the service's figures |
//! | `check.rs` | what `office check` finds: settings, private files, the SMS sender |
//! | `backup.rs` | backup (one age-encrypted file: settings, keys, a consistent copy of the SQLite store) and restore |
//!
//! Modules depend one way: no two of them import each other.
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
#[cfg(feature = "testing")]
use handover_core::codes::Programme;
use handover_core::keys::{PublicKey, SigningKey};
use store::{ps, Tx};

#[cfg(feature = "archive")]
pub mod archive;
pub mod auth;
#[cfg(feature = "backup")]
pub mod backup;
pub mod bookings;
pub mod check;
pub mod config;
pub mod devices;
pub mod enrol;
pub mod error;
pub mod files;
pub mod ingest;
pub mod issue;
mod keystore;
pub mod language;
pub mod ledger;
pub mod manifests;
pub mod presence;
pub mod preview;
pub mod reissue;
pub mod report;
pub mod rotate;
pub mod sessions;
pub mod sms;
pub mod staff;
mod store;
pub mod timeline;

pub use error::{Error, Result};
pub use store::schema;

pub(crate) const DB_FILE: &str = "office.db";

/// The `office.toml` a new office starts with: the defaults, spelled out.
const DEFAULT_CONFIG: &str = include_str!("../templates/office.toml");
const CODE_KEY_ID: &str = "k1";

/// An office: its directory, database and keys. Every method takes `&self`:
/// an `Office` is shared by the threads of a server (writes queue on one
/// writer connection, reads go to readers beside it).
pub struct Office {
    dir: PathBuf,
    store: store::Store,
    /// The key that signs manifests and acks; replaced by a rotation.
    signing: std::sync::RwLock<std::sync::Arc<SigningKey>>,
    code_keys: keystore::CodeKeys,
    office_id: String,
    cod: bookings::CodPayee,
    config: config::Config,
    templates: sms::Templates,
    device_keys: auth::DeviceKeys,
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
    /// A simulated device of `handover load`: left out of reports, never
    /// sent an SMS.
    pub simulated: bool,
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
        Office::init_in(dir, office_id, cod, None)
    }

    /// [`init_with`](Self::init_with), the store in the PostgreSQL database
    /// at `database_url` when given (recorded in `office.toml`, mode 0600);
    /// the keys always stay in files under `dir`, never in a database. A
    /// URL that holds a password is taken only from the environment
    /// variable [`config::DATABASE_URL_ENV`], and `office.toml` records the
    /// variable, never the password.
    pub fn init_in(
        dir: &Path,
        office_id: &str,
        cod: bookings::CodPayee,
        database_url: Option<&str>,
    ) -> Result<Office> {
        handover_core::rules::check_id("office id", office_id)?;
        cod.check()?;
        if let Some(url) = database_url.filter(|u| config::url_has_password(u)) {
            // Recorded as the environment variable it must then come from.
            if std::env::var(config::DATABASE_URL_ENV).as_deref() != Ok(url) {
                return Err(Error::PasswordInUrl);
            }
        }
        if dir.join(DB_FILE).exists() || dir.join("keys").exists() {
            return Err(Error::AlreadyInitialised(dir.to_owned()));
        }
        files::private_dir(dir)?;
        let store = match database_url {
            Some(url) => store::Store::open_postgres(url)?,
            None => store::Store::open_sqlite(&dir.join(DB_FILE), true)?,
        };
        store.write(|tx| {
            if tx.exists("SELECT 1 FROM meta WHERE key = 'office_id'", ps![])? {
                return Err(Error::DatabaseHoldsAnOffice);
            }
            for (k, v) in [
                ("office_id", office_id),
                ("code_key_id", CODE_KEY_ID),
                ("cod_upi", &cod.upi),
                ("cod_name", &cod.name),
            ] {
                tx.exec("INSERT INTO meta (key, value) VALUES ($1, $2)", ps![k, v])?;
            }
            Ok(())
        })?;
        drop(store);
        keystore::create(dir, CODE_KEY_ID)?;
        let settings = dir.join(config::FILE);
        if !settings.exists() {
            let text = match database_url {
                // A password never goes into a file: the URL stays in the
                // environment variable it came from.
                Some(url) if config::url_has_password(url) => DEFAULT_CONFIG.replace(
                    "# database_url = \"postgres://handover@db.example/handover\"",
                    &format!(
                        "database_url_env = {}",
                        toml_string(config::DATABASE_URL_ENV)
                    ),
                ),
                Some(url) => DEFAULT_CONFIG.replace(
                    "# database_url = \"postgres://handover@db.example/handover\"",
                    &format!("database_url = {}", toml_string(url)),
                ),
                None => DEFAULT_CONFIG.to_owned(),
            };
            files::replace_private(&settings, text.as_bytes())?;
        }
        Office::open(dir)
    }

    /// Open the office in `dir`, on the store `office.toml` names (SQLite in
    /// `dir` by default).
    pub fn open(dir: &Path) -> Result<Office> {
        Office::open_in(dir, None)
    }

    /// [`open`](Self::open), on the PostgreSQL database at `database_url`
    /// when given, whatever `office.toml` says.
    pub fn open_in(dir: &Path, database_url: Option<&str>) -> Result<Office> {
        if !dir.join("keys").exists() && !dir.join(DB_FILE).exists() {
            return Err(Error::NotInitialised(dir.to_owned()));
        }
        let config = config::Config::load(dir)?;
        let url = match database_url {
            Some(u) => Some(u.to_owned()),
            None => config.database_url()?,
        };
        let store = match &url {
            Some(url) => store::Store::open_postgres(url)?,
            None => {
                let db = dir.join(DB_FILE);
                if !db.exists() {
                    return Err(Error::NotInitialised(dir.to_owned()));
                }
                store::Store::open_sqlite(&db, false)?
            }
        };
        let meta = |k: &str| -> Result<String> {
            store.read(|tx| {
                tx.opt("SELECT value FROM meta WHERE key = $1", ps![k], |r| {
                    r.get("value")
                })?
                .ok_or_else(|| Error::NotInitialised(dir.to_owned()))
            })
        };
        let office_id = meta("office_id")?;
        // Finish a signing key rotation cut short; refuse a key file older
        // than the store's newest key.
        store.read(|tx| rotate::finish_signing_rotation(dir, tx))?;
        let code_keys = keystore::CodeKeys::new(dir);
        // The current key must be here: refuse to open without it.
        code_keys.get(&meta("code_key_id")?)?;
        let cod = bookings::CodPayee {
            upi: meta("cod_upi")?,
            name: meta("cod_name")?,
        };
        let signing = keystore::signing_key(dir)?;
        Ok(Office {
            config,
            templates: sms::Templates::builtin()?,
            device_keys: Default::default(),
            dir: dir.to_owned(),
            store,
            signing: std::sync::RwLock::new(std::sync::Arc::new(signing)),
            code_keys,
            office_id,
            cod,
        })
    }

    /// The code of the latest version of `reference`, as its recipient's
    /// SMS carries it. For tests that drive the command line and must play
    /// the recipient; built only with the `testing` feature (which the
    /// test crate turns on), and called by no command.
    #[cfg(feature = "testing")]
    pub fn current_code(&self, programme: Programme, reference: &str) -> Result<String> {
        let (version, policy, key_id) = self.store.read(|tx| {
            tx.opt(
                "SELECT code_version, policy, code_key_id FROM codes
                 WHERE programme = $1 AND reference = $2
                 ORDER BY code_version DESC LIMIT 1",
                ps![programme.as_str(), reference],
                |r| {
                    Ok((
                        r.get::<i64>("code_version")?,
                        r.get::<String>("policy")?,
                        r.get::<String>("code_key_id")?,
                    ))
                },
            )?
            .ok_or(Error::Store("no code was issued for that reference"))
        })?;
        let policy: handover_core::codes::Policy = serde_json::from_str(&policy)
            .map_err(|_| Error::Store("a stored policy is unreadable"))?;
        let version =
            u32::try_from(version).map_err(|_| Error::Store("a code version is out of range"))?;
        let code = handover_core::codes::derive_code(
            &*self.code_keys.get(&key_id)?,
            programme,
            reference,
            version,
            policy.digits,
        )?;
        Ok(code.as_str().to_owned())
    }

    /// Whether the office's store is PostgreSQL.
    pub fn on_postgres(&self) -> bool {
        self.store.is_postgres()
    }

    /// On PostgreSQL, gather the planner's statistics of the office's busy
    /// tables that changed by more than a tenth (and a thousand rows) since
    /// they were last gathered, so that the plans its connections keep are
    /// made again for the tables as they are (`docs/scale.md`). Autovacuum
    /// does the same; the service also calls this every minute, so plans do
    /// not depend on autovacuum's settings. Nothing to do on SQLite.
    pub fn refresh_statistics(&self) -> Result<()> {
        self.store.refresh_statistics(&[])
    }

    /// The office signing public key, to pin on devices.
    pub fn public_key(&self) -> PublicKey {
        self.signing_key().public_key()
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

    /// Record where cash-on-delivery payments go from now on (or that UPI
    /// is not set up, with an empty payee). Items already issued keep the
    /// payee their manifest carries; a running service takes the new one
    /// when it starts again.
    pub fn set_cod_payee(&mut self, cod: bookings::CodPayee) -> Result<()> {
        cod.check()?;
        self.store.write(|tx| {
            for (k, v) in [("cod_upi", &cod.upi), ("cod_name", &cod.name)] {
                tx.exec("UPDATE meta SET value = $2 WHERE key = $1", ps![k, v])?;
            }
            Ok::<_, Error>(())
        })?;
        self.cod = cod;
        Ok(())
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
            tx.exec(
                "INSERT INTO devices (device_id, public_key, assignee, enrolled_at)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (device_id) DO NOTHING",
                ps![&device_id, &device_key.0, assignee, ms(now)],
            )?;
            Ok::<_, Error>(())
        })?;
        Ok(device_id)
    }

    /// Revoke a device: its later batches are refused.
    pub fn revoke(&self, device_id: &str, now: DateTime<Utc>) -> Result<()> {
        self.revoke_as(device_id, staff::COMMAND_LINE, now)
    }

    /// [`revoke`](Self::revoke), by staff member `actor` (the audit log).
    pub fn revoke_as(&self, device_id: &str, actor: &str, now: DateTime<Utc>) -> Result<()> {
        self.store.write(|tx| {
            let n = tx.exec(
                "UPDATE devices SET revoked_at = COALESCE(revoked_at, $2) WHERE device_id = $1",
                ps![device_id, ms(now)],
            )?;
            if n == 0 {
                return Err(Error::UnknownDevice(device_id.to_owned()));
            }
            staff::audit(tx, actor, "revoke", device_id, now)
        })
    }

    /// An enrolled device.
    pub fn device(&self, device_id: &str) -> Result<DeviceRecord> {
        self.store.read(|tx| device_record(tx, device_id))
    }
}

/// The device row, read in `tx`.
pub(crate) fn device_record(tx: &mut Tx<'_, '_>, device_id: &str) -> Result<DeviceRecord> {
    tx.opt(
        "SELECT device_id, assignee, revoked_at IS NOT NULL AS revoked, flagged, head_seq,
                simulated
         FROM devices WHERE device_id = $1",
        ps![device_id],
        |r| {
            Ok(DeviceRecord {
                device_id: r.get("device_id")?,
                assignee: r.get("assignee")?,
                revoked: r.get("revoked")?,
                flagged: r.get("flagged")?,
                head_seq: r.get::<i64>("head_seq")?.max(0) as u64,
                simulated: r.get::<i64>("simulated")? != 0,
            })
        },
    )?
    .ok_or_else(|| Error::UnknownDevice(device_id.to_owned()))
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
