//! Which office a `handover office serve` on this machine serves, so that
//! `handover load --server http://127.0.0.1:PORT` finds the office without
//! `--dir`.
//!
//! 1. `office serve`, once listening, records its office directory for its
//!    port: a file `serve-PORT` in a directory only this user can enter
//!    (`$XDG_RUNTIME_DIR/handover`, or `/tmp/handover-UID`, mode 0700,
//!    owned by this user and not a symlink, or it is not used).
//! 2. The record is removed when the service stops; one left by a killed
//!    service names a process that is gone, and is ignored.
//! 3. `load` looks up servers on loopback addresses only.
//!
//! A record holds the directory's path, the service's process id, and
//! whether its store was given on the command line (its URL is never
//! written down: it may carry a password).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What a running service recorded.
#[derive(Debug, Serialize, Deserialize)]
pub struct Served {
    /// The office directory, absolute.
    pub office_dir: PathBuf,
    /// The service's process.
    pub pid: u32,
    /// The store came from `--database-url` or `HANDOVER_DATABASE_URL`,
    /// not from the directory's `office.toml`.
    pub store_on_command_line: bool,
}

/// The records' directory, made private; `None` if it cannot be made safe.
fn records() -> Option<PathBuf> {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let dir = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("handover"),
        _ => std::env::temp_dir().join(format!("handover-{uid}")),
    };
    match std::fs::create_dir(&dir) {
        Ok(()) => {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).ok()?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(_) => return None,
    }
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(&dir).ok()?;
    let private = meta.is_dir() && meta.uid() == uid && meta.mode() & 0o077 == 0;
    private.then_some(dir)
}

fn record_path(port: u16) -> Option<PathBuf> {
    records().map(|d| d.join(format!("serve-{port}")))
}

/// A record, removed when dropped.
pub struct Record(Option<PathBuf>);

impl Drop for Record {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Record that this process serves `office_dir` on `port`. Best effort: a
/// service that cannot record still serves (`load` then needs `--dir`).
pub fn record(port: u16, office_dir: &Path, store_on_command_line: bool) -> Record {
    let Some(path) = record_path(port) else {
        return Record(None);
    };
    let Ok(office_dir) = std::fs::canonicalize(office_dir) else {
        return Record(None);
    };
    let served = Served {
        office_dir,
        pid: std::process::id(),
        store_on_command_line,
    };
    match serde_json::to_vec(&served)
        .ok()
        .map(|bytes| handover_office::files::replace_private(&path, &bytes))
    {
        Some(Ok(())) => Record(Some(path)),
        _ => Record(None),
    }
}

/// The office of the service at `url`, if it is a `handover office serve`
/// of this user on this machine that is still running.
pub fn lookup(url: &str) -> Option<Served> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let authority = rest.split('/').next()?;
    let (host, port) = authority.rsplit_once(':')?;
    let loopback = matches!(host, "127.0.0.1" | "localhost" | "[::1]");
    if !loopback {
        return None;
    }
    let port: u16 = port.parse().ok()?;
    let bytes = std::fs::read(record_path(port)?).ok()?;
    let served: Served = serde_json::from_slice(&bytes).ok()?;
    // SAFETY: kill with signal 0 only checks that the process exists.
    let alive = unsafe { libc::kill(served.pid as libc::pid_t, 0) } == 0;
    alive.then_some(served)
}

/// The one office all of `servers` serve, for `handover load` without
/// `--dir`.
pub fn office_of(servers: &[String], database_url: Option<&str>) -> Result<PathBuf> {
    let mut found: Option<Served> = None;
    for s in servers {
        let served = lookup(s).ok_or_else(|| {
            Error::Usage(format!(
                "{s} is not a `handover office serve` of yours on this machine: give --dir (the office directory)"
            ))
        })?;
        if let Some(f) = &found {
            if f.office_dir != served.office_dir {
                return Err(Error::Usage(format!(
                    "the servers serve different offices ({} and {}): give --dir",
                    f.office_dir.display(),
                    served.office_dir.display()
                )));
            }
        }
        found = Some(served);
    }
    let served = found.ok_or_else(|| Error::Usage("give --server".into()))?;
    if served.store_on_command_line && database_url.is_none() {
        return Err(Error::Usage(
            "the servers' store was given on their command line: give --database-url (or HANDOVER_DATABASE_URL) too".into(),
        ));
    }
    Ok(served.office_dir)
}
