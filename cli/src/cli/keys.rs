//! `handover office rotate-code-key` and `rotate-signing-key`: new keys
//! for the office (see `handover_office::rotate`).

use clap::Args;

use super::args::*;
use crate::error::{Error, Result};

/// `office rotate-code-key`.
#[derive(Debug, Args)]
pub(super) struct RotateCodeKeyArgs {
    #[command(flatten)]
    d: OfficeDir,
    /// Print what was done as JSON (`previous`, `current`).
    #[arg(long)]
    json: bool,
}

pub(super) fn run_rotate_code_key(a: RotateCodeKeyArgs) -> Result<()> {
    let office = a.d.open()?;
    let r = office.rotate_code_key()?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string(&r).map_err(|e| Error::Usage(e.to_string()))?
        );
    } else {
        println!(
            "code key {cur} is current: new codes come from it; codes issued under {prev} keep \
             verifying with {prev}.\nOn several servers: copy {key} to every server's office \
             directory (mode 0600) before the next issue; keep every code key as long as its \
             codes may be handed over.",
            cur = r.current,
            prev = r.previous,
            key =
                a.d.dir
                    .join("keys")
                    .join(format!("code-{}.key", r.current))
                    .display(),
        );
    }
    Ok(())
}

/// `office rotate-signing-key`.
#[derive(Debug, Args)]
pub(super) struct RotateSigningKeyArgs {
    #[command(flatten)]
    d: OfficeDir,
    /// Days devices still accept what the old key signed (1 to 90): longer
    /// than any device goes without syncing, or it must be enrolled again.
    #[arg(long, default_value_t = 7)]
    grace_days: i64,
    /// Print what was done as JSON (`previous`, `current`, `public_key`,
    /// `previous_until`).
    #[arg(long)]
    json: bool,
}

pub(super) fn run_rotate_signing_key(
    a: RotateSigningKeyArgs,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let grace = chrono::Duration::try_days(a.grace_days)
        .filter(|g| {
            *g >= handover_office::rotate::MIN_GRACE && *g <= handover_office::rotate::MAX_GRACE
        })
        .ok_or_else(|| Error::Usage("--grace-days: from 1 to 90".into()))?;
    let office = a.d.open()?;
    let r = office.rotate_signing_key(grace, now)?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string(&r).map_err(|e| Error::Usage(e.to_string()))?
        );
    } else {
        println!(
            "signing key {cur} signs from now on (public key {pk}).\nDevices take it at their \
             next sync, and accept what {prev} signed until {until} UTC.\nRestart the service; \
             on several servers, copy {file} to every server's office directory (mode 0600) and \
             restart each before then (a server with the old key refuses to start).",
            cur = r.current,
            pk = r.public_key,
            prev = r.previous,
            until = r.previous_until.format("%Y-%m-%d %H:%M"),
            file = a.d.dir.join("keys").join("office-signing.pk8").display(),
        );
    }
    Ok(())
}
