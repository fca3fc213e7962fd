//! Console sessions and sign-in limits (issue 16), over the staff accounts
//! of [`crate::staff`]. In the store, so that every server of an office
//! knows every session:
//!
//! 1. [`Office::sign_in_limited`]: a name with [`MAX_FAILURES`] wrong
//!    passwords in a row waits [`LOCKOUT`] from the last one, whatever
//!    password it tries meanwhile (unknown names count the same, so the
//!    answer says nothing of which exist). A right password clears the
//!    count.
//! 2. [`Office::start_session`] makes a random token for the cookie and a
//!    CSRF token for the session's forms; the store keeps the token's
//!    SHA-256 only, so a copy of the store opens no session.
//! 3. [`Office::session`] finds the session by its token, ends it after
//!    `idle` without a request, and refuses it once its account is
//!    disabled; each use moves its idle clock.
//! 4. [`Office::end_session`] on sign-out.

use chrono::{DateTime, Duration, Utc};

use crate::error::Result;
use crate::staff::{Role, StaffRecord};
use crate::store::ps;
use crate::{ms, Office};

/// Wrong passwords in a row before a name waits.
pub const MAX_FAILURES: i64 = 5;
/// How long it waits after the last wrong password.
pub const LOCKOUT: Duration = Duration::minutes(15);

/// What a sign-in came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignIn {
    /// The account, signed in.
    Staff(StaffRecord),
    /// A wrong password, an unknown name or a disabled account.
    Refused,
    /// Too many wrong passwords: try again after this.
    Wait(DateTime<Utc>),
}

/// A signed-in session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The staff member's name.
    pub name: String,
    /// Their role.
    pub role: Role,
    /// The token every form of the session carries.
    pub csrf: String,
    /// The console's language for them: `en` or `hi`.
    pub language: String,
}

/// A new random token: 32 bytes, hex.
fn token() -> Result<String> {
    let mut b = [0u8; 32];
    handover_core::keys::fill_random(&mut b)?;
    Ok(hex::encode(b))
}

fn token_hash(token: &str) -> [u8; 32] {
    handover_core::keys::sha256(&[b"handover/console-session/v1", token.as_bytes()])
}

impl Office {
    /// Sign `name` in with `password`, within the limits (module docs).
    pub fn sign_in_limited(
        &self,
        name: &str,
        password: &str,
        now: DateTime<Utc>,
    ) -> Result<SignIn> {
        let failures: Option<(i64, i64)> = self.store.read(|tx| {
            tx.opt(
                "SELECT failures, last_at FROM sign_in_failures WHERE name = $1",
                ps![name],
                |r| Ok((r.get("failures")?, r.get("last_at")?)),
            )
        })?;
        if let Some((n, last)) = failures {
            let until = crate::from_ms(last) + LOCKOUT;
            if n >= MAX_FAILURES && now < until {
                return Ok(SignIn::Wait(until));
            }
        }
        match self.sign_in(name, password)? {
            Some(staff) => {
                self.store.write(|tx| {
                    tx.exec("DELETE FROM sign_in_failures WHERE name = $1", ps![name])
                })?;
                Ok(SignIn::Staff(staff))
            }
            None => {
                // After a lockout has passed, the count starts again.
                let expired = failures.is_some_and(|(n, last)| {
                    n >= MAX_FAILURES && now >= crate::from_ms(last) + LOCKOUT
                });
                self.store.write(|tx| {
                    if expired {
                        tx.exec("DELETE FROM sign_in_failures WHERE name = $1", ps![name])?;
                    }
                    tx.exec(
                        "INSERT INTO sign_in_failures (name, failures, last_at) VALUES ($1, 1, $2)
                         ON CONFLICT (name) DO UPDATE
                         SET failures = sign_in_failures.failures + 1, last_at = $2",
                        ps![name, ms(now)],
                    )
                })?;
                Ok(SignIn::Refused)
            }
        }
    }

    /// Start a session for `name`: the cookie's token and the session.
    pub fn start_session(
        &self,
        staff: &StaffRecord,
        now: DateTime<Utc>,
    ) -> Result<(String, Session)> {
        let (cookie, csrf) = (token()?, token()?);
        self.store.write(|tx| {
            tx.exec(
                "INSERT INTO staff_sessions (token_hash, name, csrf, created_at, seen_at)
                 VALUES ($1, $2, $3, $4, $4)",
                ps![
                    &token_hash(&cookie)[..],
                    staff.name.as_str(),
                    csrf.as_str(),
                    ms(now)
                ],
            )?;
            crate::staff::audit(tx, &staff.name, "sign in", &staff.name, now)
        })?;
        Ok((
            cookie,
            Session {
                name: staff.name.clone(),
                role: staff.role,
                csrf,
                language: staff.language.clone(),
            },
        ))
    }

    /// The session of cookie `token`, if it is live (module docs).
    pub fn session(
        &self,
        token: &str,
        idle: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>> {
        if token.len() != 64 {
            return Ok(None);
        }
        let hash = token_hash(token);
        self.store.write(|tx| {
            let found = tx.opt(
                "SELECT s.name AS name, s.csrf AS csrf, s.seen_at AS seen_at, f.role AS role,
                        f.disabled_at AS disabled_at, f.language AS language
                 FROM staff_sessions s JOIN staff f ON f.name = s.name
                 WHERE s.token_hash = $1",
                ps![&hash[..]],
                |r| {
                    Ok((
                        Session {
                            name: r.get("name")?,
                            role: r.get::<String>("role")?.parse()?,
                            csrf: r.get("csrf")?,
                            language: r.get("language")?,
                        },
                        r.get::<i64>("seen_at")?,
                        r.get::<Option<i64>>("disabled_at")?.is_some(),
                    ))
                },
            )?;
            let Some((session, seen, disabled)) = found else {
                return Ok(None);
            };
            if disabled || now > crate::from_ms(seen) + idle {
                tx.exec(
                    "DELETE FROM staff_sessions WHERE token_hash = $1",
                    ps![&hash[..]],
                )?;
                return Ok(None);
            }
            tx.exec(
                "UPDATE staff_sessions SET seen_at = $2 WHERE token_hash = $1",
                ps![&hash[..], ms(now)],
            )?;
            Ok(Some(session))
        })
    }

    /// End the session of cookie `token` (sign-out).
    pub fn end_session(&self, token: &str, now: DateTime<Utc>) -> Result<()> {
        let hash = token_hash(token);
        self.store.write(|tx| {
            let name: Option<String> = tx.opt(
                "SELECT name FROM staff_sessions WHERE token_hash = $1",
                ps![&hash[..]],
                |r| r.get("name"),
            )?;
            tx.exec(
                "DELETE FROM staff_sessions WHERE token_hash = $1",
                ps![&hash[..]],
            )?;
            match name {
                Some(n) => crate::staff::audit(tx, &n, "sign out", &n, now),
                None => Ok(()),
            }
        })
    }
}
