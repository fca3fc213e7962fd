//! `handover office backup` and `handover office restore`: one encrypted
//! file holding the office (see `handover_office::backup`).

use std::path::PathBuf;

use clap::Args;
use handover_office::backup::{self, Opening, Sealing};
use handover_office::Office;

use super::args::*;
use crate::error::{Error, Result};

/// `office backup`.
#[derive(Debug, Args)]
pub(super) struct BackupArgs {
    #[command(flatten)]
    d: OfficeDir,
    /// The backup file to write (new; an existing file is refused).
    #[arg(long)]
    out: PathBuf,
    /// Encrypt to the passphrase in this environment variable.
    #[arg(
        long,
        value_name = "VAR",
        conflicts_with = "recipient",
        required_unless_present = "recipient"
    )]
    passphrase_env: Option<String>,
    /// Encrypt to this age X25519 recipient (`age1…`), e.g. the office's
    /// offline key: only its identity file opens the backup.
    #[arg(long)]
    recipient: Option<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// `office restore`.
#[derive(Debug, Args)]
pub(super) struct RestoreArgs {
    /// The backup file.
    #[arg(long)]
    from: PathBuf,
    /// The directory to restore into: new, or empty (nothing is overwritten).
    #[arg(long)]
    dir: PathBuf,
    /// The passphrase, in this environment variable.
    #[arg(
        long,
        value_name = "VAR",
        conflicts_with = "identity",
        required_unless_present = "identity"
    )]
    passphrase_env: Option<String>,
    /// An age identity file (`AGE-SECRET-KEY-1…`), for a backup made to a
    /// recipient.
    #[arg(long)]
    identity: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// The passphrase in the environment variable `var`: set and not empty.
fn passphrase(var: &str) -> Result<backup::SecretString> {
    match std::env::var(var) {
        Ok(p) if !p.is_empty() => Ok(p.into()),
        _ => Err(Error::Usage(format!(
            "--passphrase-env {var}: the variable is not set, or empty"
        ))),
    }
}

pub(super) fn run_backup(a: BackupArgs) -> Result<()> {
    let sealing = match (&a.passphrase_env, &a.recipient) {
        (Some(var), _) => Sealing::Passphrase(passphrase(var)?),
        (None, Some(r)) => Sealing::Recipient(r.clone()),
        (None, None) => {
            return Err(Error::Usage(
                "give --passphrase-env VAR or --recipient age1…".into(),
            ))
        }
    };
    let office: Office = a.d.open()?;
    let summary = office.backup(&a.out, &sealing)?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string(&summary).map_err(|e| Error::Usage(e.to_string()))?
        );
    } else {
        println!(
            "backup written to {} ({} bytes): {}",
            a.out.display(),
            summary.bytes,
            summary.entries.join(", ")
        );
        if !summary.store_included {
            println!(
                "the office is on PostgreSQL: back the database up with PostgreSQL's tools (docs/scale.md#backup-and-restore)"
            );
        }
    }
    Ok(())
}

pub(super) fn run_restore(a: RestoreArgs) -> Result<()> {
    let opening = match (&a.passphrase_env, &a.identity) {
        (Some(var), _) => Opening::Passphrase(passphrase(var)?),
        (None, Some(path)) => Opening::Identity(
            std::fs::read_to_string(path)
                .map_err(|e| Error::Usage(format!("--identity {}: {e}", path.display())))?
                .into(),
        ),
        (None, None) => {
            return Err(Error::Usage(
                "give --passphrase-env VAR or --identity FILE".into(),
            ))
        }
    };
    let summary = backup::restore(&a.from, &a.dir, &opening)?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string(&summary).map_err(|e| Error::Usage(e.to_string()))?
        );
    } else {
        println!(
            "restored into {}: {}; serve it, and devices resend what the backup missed",
            a.dir.display(),
            summary.entries.join(", ")
        );
    }
    Ok(())
}
