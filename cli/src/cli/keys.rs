//! `handover office rotate-code-key` (and, beside it, the signing key's
//! rotation): new keys for the office (see `handover_office::rotate`).

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
