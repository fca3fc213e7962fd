//! Arguments and helpers every command group shares: the office and
//! device directories, the server to reach, durations and times, reading
//! and writing files, JSON output, drawing QR codes.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use clap::Args;
use handover_core::device::Device;
use handover_office::{files, Office};

use crate::error::{io, Error, Result};

#[derive(Debug, Args)]
pub(super) struct DirArg {
    /// The office or device directory.
    #[arg(long)]
    pub(super) dir: PathBuf,
}

/// The office: its directory (keys, settings) and, when not SQLite in the
/// directory, its PostgreSQL store.
#[derive(Debug, Args)]
pub(super) struct OfficeDir {
    /// The office directory (keys, office.toml; office.db when SQLite).
    #[arg(long)]
    pub(super) dir: PathBuf,
    /// The PostgreSQL store (postgres://…), instead of office.toml's setting
    /// or SQLite in the directory.
    #[arg(long, env = "HANDOVER_DATABASE_URL", hide_env_values = true)]
    pub(super) database_url: Option<String>,
}

impl OfficeDir {
    pub(super) fn open(&self) -> Result<Office> {
        Ok(Office::open_in(
            &self.dir,
            database_url(self.database_url.as_deref())?,
        )?)
    }
}

/// The `--database-url` given, refused when it holds a password and came
/// from the command line (where `ps` shows it to every user) rather than
/// from `HANDOVER_DATABASE_URL`.
pub(super) fn database_url(given: Option<&str>) -> Result<Option<&str>> {
    match given {
        Some(url)
            if handover_office::config::url_has_password(url)
                && std::env::var(handover_office::config::DATABASE_URL_ENV).as_deref()
                    != Ok(url) =>
        {
            Err(handover_office::Error::PasswordInUrl.into())
        }
        other => Ok(other),
    }
}

#[derive(Debug, Args)]
pub(super) struct ServerArgs {
    /// The office's sync service, e.g. https://office.example:8443.
    #[arg(long)]
    pub(super) server: String,
    /// A CA certificate (PEM) to trust for the office, beside the system's.
    #[arg(long)]
    pub(super) ca_cert: Option<PathBuf>,
}

/// `30m`, `24h`, `7d`, `90s`.
pub(super) fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let split = text.len().saturating_sub(1);
    let (n, unit) = text.split_at(split);
    let n: i64 = n
        .parse()
        .map_err(|_| format!("expected a number and a unit (s, m, h, d), e.g. 24h; got {text}"))?;
    match unit {
        "s" => Duration::try_seconds(n),
        "m" => Duration::try_minutes(n),
        "h" => Duration::try_hours(n),
        "d" => Duration::try_days(n),
        _ => None,
    }
    .ok_or_else(|| format!("expected a number and a unit (s, m, h, d), e.g. 24h; got {text}"))
}

pub(super) fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(io(path))
}

/// Batches hold entered codes, manifests names and addresses: every file a
/// command writes is private (0600) and replaced whole, never written
/// through a symlink.
pub(super) fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(files::replace_private(path, bytes)?)
}

pub(super) fn time_arg(flag: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    Error::Usage(format!(
                        "{flag}: expected RFC 3339, e.g. 2026-11-23T08:00:00+05:30"
                    ))
                })
        })
        .transpose()
}

pub(super) fn device_store(dir: &Path) -> Result<Device> {
    let db = dir.join("device.db");
    if !db.exists() {
        return Err(Error::Usage(format!(
            "{} holds no device; run `handover device init --dir {}` first",
            dir.display(),
            dir.display()
        )));
    }
    Ok(Device::open(db)?)
}

pub(super) fn json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string_pretty(v)
        .map_err(|_| handover_office::Error::Encoding("JSON output").into())
}

/// Draw a QR code with half-block characters, two module rows per line,
/// light on dark terminal colours as the terminal has them.
pub fn draw_qr(qr: &handover_core::upi::QrModules) -> String {
    draw_qr_for(qr, false)
}

/// Draw a QR code with half-block characters, two module rows per line,
/// with the quiet zone of 4 modules that scanners need. With `colour`, the
/// code is drawn black on white with ANSI colours, so it scans on a dark
/// terminal as on a light one; without, light modules are blocks (the
/// usual dark terminal).
pub fn draw_qr_for(qr: &handover_core::upi::QrModules, colour: bool) -> String {
    let quiet = 4isize;
    let w = qr.width as isize;
    let dark =
        |x: isize, y: isize| x >= 0 && y >= 0 && x < w && y < w && qr.modules[(y * w + x) as usize];
    let mut out = String::new();
    let mut y = -quiet;
    while y < w + quiet {
        if colour {
            // Black foreground on a white background.
            out.push_str("\x1b[30;107m");
        }
        for x in -quiet..w + quiet {
            out.push(if colour {
                // Foreground (black) marks dark modules.
                match (dark(x, y), dark(x, y + 1)) {
                    (false, false) => ' ',
                    (true, false) => '▀',
                    (false, true) => '▄',
                    (true, true) => '█',
                }
            } else {
                // Light background: dark modules are spaces, light ones blocks.
                match (dark(x, y), dark(x, y + 1)) {
                    (false, false) => '█',
                    (false, true) => '▀',
                    (true, false) => '▄',
                    (true, true) => ' ',
                }
            });
        }
        if colour {
            out.push_str("\x1b[0m");
        }
        out.push('\n');
        y += 2;
    }
    out
}
