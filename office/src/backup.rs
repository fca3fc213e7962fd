//! Backup and restore of an office: one encrypted file.
//!
//! A backup is an [age](https://age-encryption.org/v1) file (to a
//! passphrase, scrypt; or to an age X25519 recipient, `age1…`) whose
//! plaintext is a tar archive of:
//!
//! | entry | what |
//! |---|---|
//! | `office.toml` | the settings |
//! | `keys/…` | the signing key and every code key |
//! | `office.db` | on SQLite: a consistent copy of the store, taken while the service runs (`VACUUM INTO`, one read transaction) |
//!
//! On PostgreSQL the archive holds the keys and settings only; the database
//! is backed up with PostgreSQL's own tools (`docs/scale.md#backup-and-restore`).
//! `age -d` and `tar -t` can read a backup without this program.
//!
//! Restore, step by step ([`restore`]):
//!
//! 1. the target directory must not exist, or be empty: nothing is ever
//!    overwritten;
//! 2. the file is decrypted (a wrong passphrase or key is
//!    [`Error::Backup`], and nothing is written);
//! 3. each entry is checked before it is written: only the names above,
//!    regular files, no path that leaves the directory, sizes within bounds
//!    ([`crate::archive`], which owns the archive's format both ways);
//! 4. files are written mode 0600 in a directory of mode 0700 beside the
//!    target, the office there is opened to prove the copy whole, and only
//!    then is the directory renamed into place (a failed restore leaves
//!    nothing behind).
//!
//! A restored office is behind its devices: its chain for each device ends
//! where the backup was taken. Devices resend what it lost
//! (`docs/sync-api.md`, `gap`), with the office's own acks, so it ends with
//! every event and the same verdicts, and sends no confirmation twice.

use std::io::Write;
use std::path::{Path, PathBuf};

pub use age::secrecy::SecretString;

pub use crate::archive::BackupSummary;
use crate::archive::{self, SETTINGS};
use crate::error::{io, Error, Result};
use crate::{files, Office, DB_FILE};

/// Who can open a backup.
pub enum Sealing {
    /// A passphrase (age's scrypt recipient).
    Passphrase(SecretString),
    /// An age X25519 recipient, `age1…`.
    Recipient(String),
}

/// What opens a backup.
pub enum Opening {
    /// The passphrase it was made with.
    Passphrase(SecretString),
    /// An age identity, `AGE-SECRET-KEY-1…` (the contents of an identity
    /// file; comment lines are skipped).
    Identity(SecretString),
}

impl Office {
    /// Write this office's backup to `out` (a new file, mode 0600; an
    /// existing path is refused). The service may be running.
    pub fn backup(&self, out: &Path, sealing: &Sealing) -> Result<BackupSummary> {
        if std::fs::symlink_metadata(out).is_ok() {
            return Err(Error::Backup(
                "the output file exists; name a new file (a backup never overwrites)",
            ));
        }
        let parent = match out.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        // The store's copy, in a private directory inside the office's own
        // (mode 0700) on the same disk.
        let scratch = tempfile::Builder::new()
            .prefix(".backup-")
            .tempdir_in(&self.dir)
            .map_err(io(&self.dir))?;
        let mut entries: Vec<(String, PathBuf)> = vec![(SETTINGS.into(), self.dir.join(SETTINGS))];
        let keys = self.dir.join("keys");
        let mut names: Vec<String> = std::fs::read_dir(&keys)
            .map_err(io(&keys))?
            .map(|e| {
                e.map_err(io(&keys))
                    .map(|e| e.file_name().to_string_lossy().into_owned())
            })
            .collect::<Result<_>>()?;
        names.sort();
        for name in names {
            if !archive::entry_name_ok(&format!("keys/{name}")) {
                return Err(Error::Backup(
                    "the keys directory holds a file that is not a key",
                ));
            }
            entries.push((format!("keys/{name}"), keys.join(&name)));
        }
        let store_included = !self.on_postgres();
        if store_included {
            let copy = scratch.path().join(DB_FILE);
            let conn = rusqlite::Connection::open_with_flags(
                self.dir.join(DB_FILE),
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.busy_timeout(std::time::Duration::from_secs(30))?;
            let target = copy
                .to_str()
                .ok_or(Error::Backup("the office directory's path is not UTF-8"))?;
            conn.execute("VACUUM INTO ?1", [target])?;
            entries.push((DB_FILE.into(), copy));
        }

        let recipient: Box<dyn age::Recipient> = match sealing {
            Sealing::Passphrase(p) => Box::new(age::scrypt::Recipient::new(p.clone())),
            Sealing::Recipient(r) => Box::new(
                r.trim()
                    .parse::<age::x25519::Recipient>()
                    .map_err(|_| Error::Backup("the recipient is not an age X25519 key (age1…)"))?,
            ),
        };
        let encryptor = age::Encryptor::with_recipients(std::iter::once(recipient.as_ref()))
            .map_err(|_| Error::Backup("the backup could not be encrypted"))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".handover-backup-")
            .tempfile_in(parent)
            .map_err(io(parent))?;
        {
            let writer = encryptor
                .wrap_output(std::io::BufWriter::new(tmp.as_file_mut()))
                .map_err(io(out))?;
            let writer = archive::pack(writer, &entries).map_err(|e| match e {
                archive::PackError::Entry(path, e) => io(&path)(e),
                archive::PackError::Out(e) => io(out)(e),
            })?;
            writer
                .finish()
                .and_then(|mut w| w.flush())
                .map_err(io(out))?;
        }
        tmp.as_file().sync_all().map_err(io(out))?;
        let bytes = tmp.as_file().metadata().map_err(io(out))?.len();
        tmp.persist_noclobber(out).map_err(|e| io(out)(e.error))?;
        Ok(BackupSummary {
            entries: entries.into_iter().map(|(n, _)| n).collect(),
            store_included,
            bytes,
        })
    }
}

/// Restore the backup `from` into `dir`, which must not exist or be empty
/// (see the module docs). The office is opened afterwards to prove the copy
/// whole; a PostgreSQL office's database must be restored first.
pub fn restore(from: &Path, dir: &Path, opening: &Opening) -> Result<BackupSummary> {
    match std::fs::read_dir(dir) {
        Ok(mut d) => {
            if d.next().is_some() {
                return Err(Error::Backup(
                    "the directory to restore into is not empty; name a new one (a restore never overwrites)",
                ));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(dir)(e)),
    }
    let file = std::fs::File::open(from).map_err(io(from))?;
    let decryptor = age::Decryptor::new_buffered(std::io::BufReader::new(file))
        .map_err(|_| Error::Backup("not an age-encrypted handover backup"))?;
    let identity: Box<dyn age::Identity> = match opening {
        Opening::Passphrase(p) => Box::new(age::scrypt::Identity::new(p.clone())),
        Opening::Identity(text) => {
            use age::secrecy::ExposeSecret;
            let line = text
                .expose_secret()
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with('#'))
                .unwrap_or("");
            Box::new(
                line.parse::<age::x25519::Identity>()
                    .map_err(|_| Error::Backup("the identity is not an age X25519 secret key"))?,
            )
        }
    };
    let reader = decryptor
        .decrypt(std::iter::once(identity.as_ref()))
        .map_err(|_| Error::Backup("the passphrase or key does not open this backup"))?;
    // Unpacked and opened beside the target, then renamed into place: a
    // restore that fails leaves no half-written office behind.
    let parent = match dir.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let staging = tempfile::Builder::new()
        .prefix(".handover-restore-")
        .tempdir_in(parent)
        .map_err(io(parent))?;
    let unpacked = staging.path().join("office");
    files::private_dir(&unpacked)?;
    let summary = archive::unpack(reader, &unpacked)?;
    if !summary.entries.iter().any(|e| e == SETTINGS)
        || !summary.entries.iter().any(|e| e.starts_with("keys/"))
    {
        return Err(Error::Backup("the backup holds no settings or no keys"));
    }
    drop(Office::open(&unpacked)?);
    std::fs::rename(&unpacked, dir).map_err(io(dir))?;
    Ok(summary)
}
