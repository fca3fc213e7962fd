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
//!    regular files, no path that leaves the directory, sizes within bounds;
//! 4. files are written mode 0600 in a directory of mode 0700 beside the
//!    target, the office there is opened to prove the copy whole, and only
//!    then is the directory renamed into place (a failed restore leaves
//!    nothing behind).
//!
//! A restored office is behind its devices: its chain for each device ends
//! where the backup was taken. Devices resend what it lost
//! (`docs/sync-api.md`, `gap`), with the office's own acks, so it ends with
//! every event and the same verdicts, and sends no confirmation twice.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

pub use age::secrecy::SecretString;
use serde::Serialize;

use crate::error::{io, Error, Result};
use crate::{files, Office, DB_FILE};

/// The settings file's name in an office directory (and in a backup).
const SETTINGS: &str = "office.toml";
/// Largest entry a backup may hold (the store of a busy office fits).
const MAX_ENTRY_BYTES: u64 = 256 * 1024 * 1024 * 1024;
/// Largest key or settings file.
const MAX_SMALL_BYTES: u64 = 1024 * 1024;
/// Most entries a backup may hold.
const MAX_ENTRIES: usize = 10_000;

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

/// What a backup or restore holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BackupSummary {
    /// Entries, in order.
    pub entries: Vec<String>,
    /// Whether the store's copy is in the file (SQLite); on PostgreSQL it is
    /// not, and the database is backed up with PostgreSQL's tools.
    pub store_included: bool,
    /// Bytes of the encrypted file (backup) or written (restore).
    pub bytes: u64,
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
            if !entry_name_ok(&format!("keys/{name}")) {
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
            let mut archive = tar::Builder::new(writer);
            archive.mode(tar::HeaderMode::Deterministic);
            for (name, path) in &entries {
                let mut file = std::fs::File::open(path).map_err(io(path))?;
                let len = file.metadata().map_err(io(path))?.len();
                let mut header = tar::Header::new_gnu();
                header.set_size(len);
                header.set_mode(0o600);
                header.set_entry_type(tar::EntryType::Regular);
                archive
                    .append_data(&mut header, name, &mut file)
                    .map_err(io(path))?;
            }
            let writer = archive.into_inner().map_err(io(out))?;
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

/// Whether `name` is an entry a backup may hold.
fn entry_name_ok(name: &str) -> bool {
    let key_file = |f: &str| {
        !f.is_empty()
            && f.len() <= 64
            && !f.starts_with('.')
            && f.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    name == SETTINGS || name == DB_FILE || name.strip_prefix("keys/").is_some_and(key_file)
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
    let summary = unpack(reader, &unpacked)?;
    if !summary.entries.iter().any(|e| e == SETTINGS)
        || !summary.entries.iter().any(|e| e.starts_with("keys/"))
    {
        return Err(Error::Backup("the backup holds no settings or no keys"));
    }
    drop(Office::open(&unpacked)?);
    std::fs::rename(&unpacked, dir).map_err(io(dir))?;
    Ok(summary)
}

/// Write the entries of the tar archive `reader` into the empty directory
/// `dir`, each checked first (module docs, step 3). Outside bytes: every
/// refusal is [`Error::Backup`] and nothing is written outside `dir`.
pub fn unpack(reader: impl Read, dir: &Path) -> Result<BackupSummary> {
    let mut archive = tar::Archive::new(reader);
    let mut entries = Vec::new();
    let mut bytes = 0u64;
    let bad = |_| Error::Backup("the backup's archive is damaged");
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        if entries.len() >= MAX_ENTRIES {
            return Err(Error::Backup("the backup holds too many entries"));
        }
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(Error::Backup(
                "the backup holds something other than a file",
            ));
        }
        let path = entry.path().map_err(bad)?.into_owned();
        let name = path
            .components()
            .map(|c| match c {
                Component::Normal(s) => s.to_str().map(str::to_owned),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map(|parts| parts.join("/"))
            .filter(|n| entry_name_ok(n))
            .ok_or(Error::Backup(
                "the backup holds a file that is not part of an office",
            ))?;
        if entries.contains(&name) {
            return Err(Error::Backup("the backup holds a file twice"));
        }
        let size = entry.header().size().map_err(bad)?;
        let limit = if name == DB_FILE {
            MAX_ENTRY_BYTES
        } else {
            MAX_SMALL_BYTES
        };
        if size > limit {
            return Err(Error::Backup(
                "a file in the backup is larger than it can be",
            ));
        }
        let target = dir.join(&name);
        if let Some(parent) = target.parent() {
            if parent != dir {
                files::private_dir(parent)?;
            }
        }
        let mut out = {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600).custom_flags(libc::O_NOFOLLOW);
            }
            opts.open(&target).map_err(io(&target))?
        };
        let copied = std::io::copy(&mut (&mut entry).take(limit), &mut out).map_err(io(&target))?;
        if copied != size {
            return Err(Error::Backup("the backup's archive is damaged"));
        }
        out.sync_all().map_err(io(&target))?;
        bytes += copied;
        entries.push(name);
    }
    Ok(BackupSummary {
        store_included: entries.iter().any(|e| e == DB_FILE),
        entries,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(entries: &[(&str, &[u8], tar::EntryType)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data, kind) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_entry_type(*kind);
            h.set_mode(0o600);
            // Set the raw name so that hostile paths reach the reader as is.
            let raw = &mut h.as_old_mut().name;
            raw[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn unpack_refuses_what_is_not_an_office_and_writes_nothing_outside() {
        let cases: &[(&str, tar::EntryType)] = &[
            ("../escape", tar::EntryType::Regular),
            ("/etc/passwd", tar::EntryType::Regular),
            ("keys/../../x", tar::EntryType::Regular),
            ("notes.txt", tar::EntryType::Regular),
            ("keys/.hidden", tar::EntryType::Regular),
            ("keys/code-k1.key", tar::EntryType::Symlink),
            ("keys", tar::EntryType::Directory),
        ];
        for (name, kind) in cases {
            let outer = tempfile::tempdir().unwrap();
            let dir = outer.path().join("office");
            std::fs::create_dir(&dir).unwrap();
            let bytes = archive(&[(name, b"x", *kind)]);
            let err = unpack(&bytes[..], &dir).unwrap_err();
            assert!(matches!(err, Error::Backup(_)), "{name}: {err}");
            assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "{name}");
            assert_eq!(
                std::fs::read_dir(outer.path()).unwrap().count(),
                1,
                "{name}"
            );
        }
    }

    #[test]
    fn unpack_takes_an_office_and_refuses_a_file_twice() {
        let dir = tempfile::tempdir().unwrap();
        let good = archive(&[
            ("office.toml", b"# settings\n", tar::EntryType::Regular),
            ("keys/code-k1.key", b"00", tar::EntryType::Regular),
        ]);
        let s = unpack(&good[..], dir.path()).unwrap();
        assert_eq!(s.entries, ["office.toml", "keys/code-k1.key"]);
        assert!(!s.store_included);
        assert_eq!(
            std::fs::read(dir.path().join("keys/code-k1.key")).unwrap(),
            b"00"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("office.toml"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = tempfile::tempdir().unwrap();
        let twice = archive(&[
            ("office.toml", b"a", tar::EntryType::Regular),
            ("office.toml", b"b", tar::EntryType::Regular),
        ]);
        assert!(matches!(
            unpack(&twice[..], other.path()),
            Err(Error::Backup("the backup holds a file twice"))
        ));
    }

    #[test]
    fn unpack_never_panics_on_damaged_archives() {
        let good = archive(&[
            ("office.toml", b"# settings\n", tar::EntryType::Regular),
            ("keys/code-k1.key", b"00", tar::EntryType::Regular),
        ]);
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..300 {
            let mut bytes = good.clone();
            for _ in 0..4 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let i = (seed as usize) % bytes.len();
                bytes[i] = (seed >> 32) as u8;
            }
            let cut = (seed as usize >> 8) % (bytes.len() + 1);
            let outer = tempfile::tempdir().unwrap();
            let dir = outer.path().join("o");
            std::fs::create_dir(&dir).unwrap();
            let _ = unpack(&bytes[..cut], &dir);
            // Whatever happened, only the office's own names were written.
            assert_eq!(std::fs::read_dir(outer.path()).unwrap().count(), 1);
            for e in std::fs::read_dir(&dir).unwrap() {
                let name = e.unwrap().file_name().into_string().unwrap();
                assert!(
                    name == "office.toml" || name == "keys" || name == "office.db",
                    "{name}"
                );
            }
        }
    }
}
