//! `handover office check`: what an operator should know before the day
//! starts, found without sending anything: the settings read, the key files
//! and the database private, the SMS sender can be made (its secrets are in
//! the environment). A test message goes only when asked
//! ([`Office::sms_test`]).

use std::path::Path;

use serde::Serialize;

use crate::Office;

/// One thing checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What was checked.
    pub what: String,
    /// Whether it is as it should be.
    pub ok: bool,
    /// What was found, or what to do.
    pub detail: String,
}

fn finding(what: impl Into<String>, ok: bool, detail: impl Into<String>) -> Finding {
    Finding {
        what: what.into(),
        ok,
        detail: detail.into(),
    }
}

/// Whether `path` is private to its owner: no group or other bits.
#[cfg(unix)]
fn private(path: &Path, what: &str) -> Option<Finding> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(path).ok()?;
    let mode = meta.permissions().mode() & 0o777;
    Some(if mode & 0o077 == 0 {
        finding(what, true, format!("mode {mode:o}"))
    } else {
        finding(
            what,
            false,
            format!(
                "mode {mode:o}: others may read it; chmod go-rwx {}",
                path.display()
            ),
        )
    })
}

#[cfg(not(unix))]
fn private(_path: &Path, _what: &str) -> Option<Finding> {
    None
}

impl Office {
    /// Check the office (see the module docs). Sends nothing.
    pub fn check(&self) -> Vec<Finding> {
        let mut out = vec![finding(
            "office.toml",
            true,
            format!(
                "read; SMS sender `{}`; store {}",
                self.config.sms.sender,
                if self.on_postgres() {
                    "PostgreSQL"
                } else {
                    "SQLite"
                }
            ),
        )];
        // Not a problem (cash works), but the office should know.
        out.push(finding(
            "cash on delivery",
            true,
            if self.cod_payee().is_set_up() {
                format!(
                    "UPI payments go to {} ({})",
                    self.cod_payee().upi,
                    self.cod_payee().name
                )
            } else {
                "no UPI payee: cash on delivery is collected in cash only".to_owned()
            },
        ));
        let keys = self.dir.join("keys");
        out.extend(private(&keys, "the keys directory"));
        if let Ok(entries) = std::fs::read_dir(&keys) {
            let mut files: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            files.sort();
            for f in files {
                let name = f
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                out.extend(private(&f, &format!("key file {name}")));
            }
        }
        for file in [crate::DB_FILE, "office.toml"] {
            out.extend(private(&self.dir.join(file), file));
        }
        out.push(match self.sender() {
            Ok(_) => finding(
                "SMS sender",
                true,
                format!(
                    "`{}` is set up (nothing sent; `handover office sms test --to NUMBER` sends one)",
                    self.config.sms.sender
                ),
            ),
            Err(e) => finding("SMS sender", false, e.to_string()),
        });
        out
    }
}
