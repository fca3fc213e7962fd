//! The backup's plaintext: a tar archive of an office's files, written by
//! [`pack`] and read back, checked entry by entry, by [`unpack`].
//!
//! The archive is outside bytes when it is restored (whoever holds the
//! passphrase or key chose it), so [`unpack`] takes only what an office is
//! made of, and says no to the rest with [`Error::Backup`]:
//!
//! | entry | limit |
//! |---|---|
//! | `office.toml` | 1 MiB |
//! | `keys/<name>` (letters, digits, `-`, `_`, `.`; not hidden; up to 64) | 1 MiB |
//! | `office.db` | 256 GiB |
//!
//! regular files only (no link, directory or device), each name once, at
//! most 10,000 entries, no path that leaves the directory; files are created
//! new (never over an existing one, never through a link), mode 0600, and
//! synced. The encryption around the archive is [`crate::backup`]'s; the
//! fuzz target `backup_archive` feeds [`unpack`] arbitrary bytes.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use crate::error::{io, Error, Result};
use crate::{files, DB_FILE};

/// The settings file's name in an office directory (and in a backup).
pub(crate) const SETTINGS: &str = "office.toml";
/// Largest entry a backup may hold (the store of a busy office fits).
const MAX_ENTRY_BYTES: u64 = 256 * 1024 * 1024 * 1024;
/// Largest key or settings file.
const MAX_SMALL_BYTES: u64 = 1024 * 1024;
/// Most entries a backup may hold.
const MAX_ENTRIES: usize = 10_000;

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

/// Whether `name` is an entry a backup may hold.
pub(crate) fn entry_name_ok(name: &str) -> bool {
    let key_file = |f: &str| {
        !f.is_empty()
            && f.len() <= 64
            && !f.starts_with('.')
            && f.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    name == SETTINGS || name == DB_FILE || name.strip_prefix("keys/").is_some_and(key_file)
}

/// Why [`pack`] stopped: reading one of the office's files, or writing the
/// archive.
#[cfg_attr(not(feature = "backup"), allow(dead_code))]
pub(crate) enum PackError {
    /// The file at this path could not be read.
    Entry(PathBuf, std::io::Error),
    /// The archive could not be written.
    Out(std::io::Error),
}

/// Write `entries` (name in the archive, file on disk), in order, as a tar
/// archive into `writer`, each a regular file of mode 0600 with no owner or
/// time (the same office gives the same archive); `writer` back when done.
#[cfg_attr(not(feature = "backup"), allow(dead_code))]
pub(crate) fn pack<W: Write>(
    writer: W,
    entries: &[(String, PathBuf)],
) -> std::result::Result<W, PackError> {
    let mut archive = tar::Builder::new(writer);
    archive.mode(tar::HeaderMode::Deterministic);
    for (name, path) in entries {
        let entry = |e| PackError::Entry(path.clone(), e);
        let mut file = std::fs::File::open(path).map_err(entry)?;
        let len = file.metadata().map_err(entry)?.len();
        let mut header = tar::Header::new_gnu();
        header.set_size(len);
        header.set_mode(0o600);
        header.set_entry_type(tar::EntryType::Regular);
        archive
            .append_data(&mut header, name, &mut file)
            .map_err(entry)?;
    }
    archive.into_inner().map_err(PackError::Out)
}

/// Write the entries of the tar archive `reader` into the empty directory
/// `dir`, each checked first (the module docs' table and rules). Outside
/// bytes: every refusal is [`Error::Backup`] and nothing is written outside
/// `dir`.
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
    fn what_pack_writes_unpack_gives_back_byte_for_byte() {
        let from = tempfile::tempdir().unwrap();
        let files: [(&str, &[u8]); 3] = [
            ("office.toml", b"office_id = \"PO-1\"\n"),
            ("keys/signing.key", &[0, 1, 2, 255]),
            ("office.db", b"SQLite format 3\0"),
        ];
        let mut entries = Vec::new();
        for (i, (name, data)) in files.iter().enumerate() {
            let path = from.path().join(format!("f{i}"));
            std::fs::write(&path, data).unwrap();
            entries.push(((*name).to_owned(), path));
        }
        let bytes = match pack(Vec::new(), &entries) {
            Ok(b) => b,
            Err(_) => panic!("pack failed"),
        };
        // Deterministic: the same files give the same archive.
        assert!(matches!(pack(Vec::new(), &entries), Ok(again) if again == bytes));
        let to = tempfile::tempdir().unwrap();
        let summary = unpack(&bytes[..], to.path()).unwrap();
        assert_eq!(
            summary.entries,
            ["office.toml", "keys/signing.key", "office.db"]
        );
        assert!(summary.store_included);
        assert_eq!(summary.bytes, 4 + 16 + 19);
        for (name, data) in files {
            assert_eq!(std::fs::read(to.path().join(name)).unwrap(), data, "{name}");
        }
        // A file that cannot be read names its path, not the archive.
        let missing = [("office.toml".to_owned(), from.path().join("gone"))];
        assert!(matches!(
            pack(Vec::new(), &missing),
            Err(PackError::Entry(p, _)) if p == from.path().join("gone")
        ));
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
