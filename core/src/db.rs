//! Opening a SQLite database the way handover needs it, for the device store
//! and the office store alike.
//!
//! 1. Open (creating the file only when asked).
//! 2. `PRAGMA quick_check` **before writing anything**: a file that is not a
//!    database, or is damaged, is reported as [`Error::DatabaseUnusable`] and
//!    left exactly as it was. It may hold the only copy of a signed receipt.
//! 3. A schema newer than this build is refused ([`Error::SchemaTooNew`]),
//!    never downgraded.
//! 4. The database, its `-wal` and its `-shm` are mode 0600 whatever the
//!    umask. WAL journal, `synchronous=FULL`: a committed outcome survives power
//!    loss. `secure_delete`: what is deleted (a purged manifest's names and
//!    addresses, a purged event's code) is overwritten, not left in free
//!    pages.
//! 5. Migrations, one [`Step`] per transaction, each re-reading
//!    `user_version` inside its own transaction, so two processes opening a
//!    new file at once do not both run a step. Foreign keys are off while
//!    steps run (a step may rebuild a table) and checked before each commit.
//! 6. Foreign keys on.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use crate::error::{Error, Result};

/// One schema migration: version `i` to `i + 1`.
#[derive(Clone, Copy)]
pub struct Step {
    /// DDL and data changes, run as one batch.
    pub sql: &'static str,
    /// Work SQL cannot do (e.g. parsing stored JSON), run after `sql` in the
    /// same transaction.
    pub then: Option<fn(&Transaction<'_>) -> Result<()>>,
}

impl Step {
    /// A step of SQL only.
    pub const fn sql(sql: &'static str) -> Step {
        Step { sql, then: None }
    }
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Step")
            .field("sql_len", &self.sql.len())
            .field("then", &self.then.is_some())
            .finish()
    }
}

/// How long a connection waits for another's lock.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn unusable(e: rusqlite::Error) -> Error {
    Error::DatabaseUnusable(e.to_string())
}

/// Open the database at `path` and bring it to the version `steps` define
/// (see the module docs for the order of checks).
pub fn open(path: &Path, create: bool, steps: &[Step]) -> Result<Connection> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    if create {
        create_private(path)?;
    }
    let mut conn = Connection::open_with_flags(path, flags).map_err(unusable)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(unusable)?;
    // Plans that do not depend on bound values: otherwise SQLite prepares
    // a statement again whenever a value bound to it might change its plan
    // (a partial index, a LIKE), which made a 5,000-item manifest import
    // spend a third of its time in SQLite's parser.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(unusable)?;
    // Every statement a device runs, kept prepared (rusqlite keeps 16).
    conn.set_prepared_statement_cache_capacity(64);
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(unusable)?;
    if check != "ok" {
        return Err(Error::DatabaseUnusable("integrity check failed".into()));
    }
    let found = version(&conn)?;
    let known = steps.len() as i64;
    if found > known {
        return Err(Error::SchemaTooNew {
            found,
            supported: known,
        });
    }
    let mode = wal(&conn)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::DatabaseUnusable("cannot switch to WAL mode".into()));
    }
    keep_private(path)?;
    // Pragmas as plain SQL, not rusqlite's `pragma_update`: its value
    // formatting pulled float printing (5.6 KB) into the Android library.
    conn.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA secure_delete = ON; PRAGMA foreign_keys = OFF",
    )?;
    apply_steps(&mut conn, steps, known)?;
    conn.execute_batch("PRAGMA foreign_keys = ON")?;
    Ok(conn)
}

/// Create the database file mode 0600 if it does not exist, whatever the
/// umask: SQLite makes its `-wal` and `-shm` files with the database's mode.
fn create_private(path: &Path) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::DatabaseUnusable(format!(
            "cannot create the database file: {}",
            e.kind()
        ))),
    }
}

/// Take group and other permissions off the database, its `-wal` and its
/// `-shm` (a database made by an earlier version under a lax umask).
fn keep_private(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            let file = Path::new(&name);
            let Ok(meta) = std::fs::metadata(file) else {
                continue;
            };
            let mode = meta.permissions().mode();
            if meta.is_file() && mode & 0o077 != 0 {
                std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode & 0o700))
                    .map_err(|e| {
                        Error::DatabaseUnusable(format!(
                            "cannot make the database files private: {}",
                            e.kind()
                        ))
                    })?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Switch to WAL. The switch needs an exclusive lock, and SQLite answers
/// "busy" at once, without its busy handler, when two connections try it on
/// a new file together: retry for up to the busy timeout.
fn wal(conn: &Connection) -> Result<String> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    let mut pause = std::time::Duration::from_millis(2);
    loop {
        match conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)) {
            Ok(mode) => return Ok(mode),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(100));
            }
            Err(e) => return Err(unusable(e)),
        }
    }
}

/// Copy the WAL into the database and truncate it, so pages that held
/// deleted data leave the WAL file too. Best effort: a reader holding the
/// WAL makes it a partial checkpoint, completed by a later one.
pub fn checkpoint(conn: &Connection) -> Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

/// The database's schema version (`user_version`).
pub fn version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// Apply `steps[i]` (version `i` to `i + 1`) for every version the database
/// lacks, up to `target`, one immediate transaction per step, re-reading the
/// version inside it. Refuses a database newer than `steps` knows.
pub fn apply_steps(conn: &mut Connection, steps: &[Step], target: i64) -> Result<()> {
    let known = steps.len() as i64;
    for (i, step) in steps.iter().enumerate() {
        let to = i as i64 + 1;
        if to > target {
            break;
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found = version(&tx)?;
        if found > known {
            return Err(Error::SchemaTooNew {
                found,
                supported: known,
            });
        }
        if found >= to {
            continue;
        }
        tx.execute_batch(step.sql)?;
        if let Some(then) = step.then {
            then(&tx)?;
        }
        let broken: Option<String> = {
            let mut stmt = tx.prepare("PRAGMA foreign_key_check")?;
            let mut rows = stmt.query([])?;
            match rows.next()? {
                Some(r) => Some(r.get(0)?),
                None => None,
            }
        };
        if broken.is_some() {
            return Err(Error::DatabaseUnusable(
                "a migration left a broken foreign key".into(),
            ));
        }
        // `to` is a step number of our own, not outside input.
        tx.execute_batch(&format!("PRAGMA user_version = {to}"))?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_opens_durable_private_and_at_its_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let steps = [
            Step::sql("CREATE TABLE a (id INTEGER PRIMARY KEY) STRICT;"),
            Step::sql("CREATE TABLE b (a INTEGER NOT NULL REFERENCES a(id)) STRICT;"),
        ];
        let conn = open(&path, true, &steps).unwrap();
        let pragma = |name: &str| -> String {
            conn.query_row(&format!("PRAGMA {name}"), [], |r| {
                r.get::<_, rusqlite::types::Value>(0)
            })
            .map(|v| match v {
                rusqlite::types::Value::Integer(i) => i.to_string(),
                rusqlite::types::Value::Text(t) => t,
                other => format!("{other:?}"),
            })
            .unwrap()
        };
        // FULL is 2: a commit is on disk when it returns.
        assert_eq!(pragma("synchronous"), "2");
        assert_eq!(pragma("secure_delete"), "1");
        assert_eq!(pragma("foreign_keys"), "1");
        assert_eq!(pragma("journal_mode"), "wal");
        assert_eq!(version(&conn).unwrap(), 2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Foreign keys are enforced after the migrations.
        assert!(conn.execute("INSERT INTO b (a) VALUES (7)", []).is_err());
        drop(conn);
        // A store newer than this code is refused, not touched.
        let conn = open(&path, false, &steps[..1]);
        assert!(matches!(
            conn,
            Err(Error::SchemaTooNew {
                found: 2,
                supported: 1
            })
        ));
    }
}
