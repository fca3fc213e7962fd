//! Staff accounts for the office console (issue 16), and the audit log of
//! what staff do.
//!
//! 1. `handover office user add` makes an account: a name, a role
//!    ([`Role::Postmaster`] may do everything, [`Role::Clerk`] cannot
//!    revoke devices or manage users) and a password, kept only as an
//!    Argon2id hash (PHC string, OWASP's parameters: 19 MiB, 2 passes) in
//!    the store, never in `office.toml`, a log or an error.
//! 2. [`Office::sign_in`] checks a name and password: a disabled or
//!    unknown name and a wrong password are the same answer, and an unknown
//!    name costs the same hash, so neither says which names exist.
//! 3. `user passwd` replaces a password; `user disable` keeps the account
//!    (its actions stay attributed) but refuses it from then on.
//! 4. Every change is written to the audit log in the same transaction
//!    ([`Office::audit_log`]): who, what, on what, when.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{DateTime, Utc};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::store::{ps, Tx};
use crate::{from_ms, ms, Office};

/// Shortest password taken.
pub const MIN_PASSWORD: usize = 10;
/// Longest password taken (hashing cost is bounded).
pub const MAX_PASSWORD: usize = 1024;

/// What a staff member may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything: issue, enrol, revoke, resend, re-issue, manage users.
    Postmaster,
    /// Everything but revoking devices and managing users.
    Clerk,
}

impl Role {
    /// Its name in the store and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Postmaster => "postmaster",
            Role::Clerk => "clerk",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Role> {
        match s {
            "postmaster" => Ok(Role::Postmaster),
            "clerk" => Ok(Role::Clerk),
            _ => Err(Error::Staff("a role is postmaster or clerk")),
        }
    }
}

/// A staff account as listed (never its hash).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StaffRecord {
    /// The sign-in name.
    pub name: String,
    /// What they may do.
    pub role: Role,
    /// Refused from sign-in.
    pub disabled: bool,
    /// The console's language for them: `en` or `hi`.
    pub language: String,
    /// When the account was made.
    pub created_at: DateTime<Utc>,
}

/// One line of the audit log.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AuditEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Who: a staff name, or `command line`.
    pub actor: String,
    /// What, e.g. `user add`, `revoke`.
    pub action: String,
    /// On what: a user name, device id or reference.
    pub subject: String,
}

/// Who acts from the operator's command line (not signed in).
pub const COMMAND_LINE: &str = "command line";

fn check_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::Staff(
            "a user name is 1 to 64 letters, digits, '.', '_' or '-'",
        ))
    }
}

fn check_password(name: &str, password: &str) -> Result<()> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD {
        return Err(Error::Staff("a password has at least 10 characters"));
    }
    if password.len() > MAX_PASSWORD {
        return Err(Error::Staff("a password has at most 1024 bytes"));
    }
    if password.eq_ignore_ascii_case(name) {
        return Err(Error::Staff("a password is not the user's name"));
    }
    Ok(())
}

/// The Argon2id hash of `password` (PHC string) with a fresh salt.
fn hash(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    handover_core::keys::fill_random(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(|_| Error::Staff("a salt failed"))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|_| Error::Staff("hashing the password failed"))?
        .to_string())
}

/// Whether `password` matches the PHC string `stored`.
fn matches(stored: &str, password: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash of nothing anyone knows, checked for unknown names so that they
/// cost what a known one does.
fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash("no staff member has this password").unwrap_or_default())
}

/// Append to the audit log in `tx`.
pub(crate) fn audit(
    tx: &mut Tx<'_, '_>,
    actor: &str,
    action: &str,
    subject: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    tx.exec(
        "INSERT INTO audit_log (at, actor, action, subject) VALUES ($1, $2, $3, $4)",
        ps![ms(now), actor, action, subject],
    )?;
    Ok(())
}

impl Office {
    /// Make a staff account (module docs); `actor` is who does it.
    pub fn add_user(
        &self,
        name: &str,
        role: Role,
        password: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        check_name(name)?;
        check_password(name, password)?;
        let hashed = Zeroizing::new(hash(password)?);
        self.store.write(|tx| {
            if tx.exists("SELECT 1 FROM staff WHERE name = $1", ps![name])? {
                return Err(Error::Staff("a user of that name exists"));
            }
            tx.exec(
                "INSERT INTO staff (name, role, password_hash, disabled_at, created_at)
                 VALUES ($1, $2, $3, NULL, $4)",
                ps![name, role.as_str(), hashed.as_str(), ms(now)],
            )?;
            audit(
                tx,
                actor,
                "user add",
                &format!("{name} ({})", role.as_str()),
                now,
            )
        })
    }

    /// Every staff account, by name.
    pub fn users(&self) -> Result<Vec<StaffRecord>> {
        self.store.read(|tx| {
            tx.all(
                "SELECT name, role, disabled_at, created_at, language FROM staff ORDER BY name",
                ps![],
                |r| {
                    Ok(StaffRecord {
                        name: r.get("name")?,
                        role: r.get::<String>("role")?.parse()?,
                        disabled: r.get::<Option<i64>>("disabled_at")?.is_some(),
                        created_at: from_ms(r.get("created_at")?),
                        language: r.get("language")?,
                    })
                },
            )
        })
    }

    /// Set the console's language for `name`: `en` or `hi`.
    pub fn set_staff_language(&self, name: &str, language: &str) -> Result<()> {
        if !matches!(language, "en" | "hi") {
            return Err(Error::Staff("the console speaks en or hi"));
        }
        self.store.write(|tx| {
            tx.exec(
                "UPDATE staff SET language = $2 WHERE name = $1",
                ps![name, language],
            )?;
            Ok(())
        })
    }

    /// Refuse `name` from now on; the account and its history stay.
    pub fn disable_user(&self, name: &str, actor: &str, now: DateTime<Utc>) -> Result<()> {
        self.store.write(|tx| {
            let n = tx.exec(
                "UPDATE staff SET disabled_at = $2 WHERE name = $1 AND disabled_at IS NULL",
                ps![name, ms(now)],
            )?;
            if n == 0 {
                return Err(Error::Staff("no enabled user of that name"));
            }
            audit(tx, actor, "user disable", name, now)
        })
    }

    /// Replace `name`'s password.
    pub fn set_password(
        &self,
        name: &str,
        password: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        check_password(name, password)?;
        let hashed = Zeroizing::new(hash(password)?);
        self.store.write(|tx| {
            let n = tx.exec(
                "UPDATE staff SET password_hash = $2 WHERE name = $1",
                ps![name, hashed.as_str()],
            )?;
            if n == 0 {
                return Err(Error::Staff("no user of that name"));
            }
            audit(tx, actor, "user passwd", name, now)
        })
    }

    /// The enabled account `name` if `password` is its password; `None`
    /// for a wrong password, an unknown or a disabled name alike.
    pub fn sign_in(&self, name: &str, password: &str) -> Result<Option<StaffRecord>> {
        if password.len() > MAX_PASSWORD {
            return Ok(None);
        }
        let row = self.store.read(|tx| {
            tx.opt(
                "SELECT name, role, password_hash, disabled_at, created_at, language FROM staff
                 WHERE name = $1",
                ps![name],
                |r| {
                    Ok((
                        StaffRecord {
                            name: r.get("name")?,
                            role: r.get::<String>("role")?.parse()?,
                            disabled: r.get::<Option<i64>>("disabled_at")?.is_some(),
                            created_at: from_ms(r.get("created_at")?),
                            language: r.get("language")?,
                        },
                        Zeroizing::new(r.get::<String>("password_hash")?),
                    ))
                },
            )
        })?;
        Ok(match row {
            Some((staff, stored)) => {
                (matches(&stored, password) && !staff.disabled).then_some(staff)
            }
            None => {
                let _ = matches(decoy(), password);
                None
            }
        })
    }

    /// The audit log, newest first, at most `limit` entries.
    pub fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>> {
        self.store.read(|tx| {
            tx.all(
                "SELECT at, actor, action, subject FROM audit_log ORDER BY id DESC LIMIT $1",
                ps![i64::from(limit)],
                |r| {
                    Ok(AuditEntry {
                        at: from_ms(r.get("at")?),
                        actor: r.get("actor")?,
                        action: r.get("action")?,
                        subject: r.get("subject")?,
                    })
                },
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_argon2id_salted_and_checks_only_its_password() {
        let a = hash("correct horse battery").unwrap();
        let b = hash("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "a fresh salt each time");
        assert!(matches(&a, "correct horse battery"));
        assert!(!matches(&a, "correct horse batterY"));
        assert!(!matches("not a hash", "correct horse battery"));
    }

    #[test]
    fn names_and_passwords_are_checked() {
        assert!(check_name("ramesh.k").is_ok());
        for bad in ["", "a b", "ramesh/k", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_password("ramesh", "short").is_err());
        assert!(check_password("ramesh.k1234", "RAMESH.K1234").is_err());
        assert!(check_password("ramesh", &"p".repeat(1025)).is_err());
        assert!(check_password("ramesh", "ten chars!").is_ok());
    }
}
