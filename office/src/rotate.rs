//! Key rotation (`protocol.md`, "Keys over time").
//!
//! **Code keys** rotate by key id:
//!
//! 1. [`Office::rotate_code_key`] makes `keys/code-<next id>.key` (0600,
//!    never over an existing file), then names it current in the store
//!    (`meta.code_key_id`), in that order: the store never names a key
//!    that is not on disk.
//! 2. Every issue reads the current id in its transaction, so new codes
//!    (new items, re-issues, new code versions) come from the new key on
//!    every server of the office, without a restart.
//! 3. Each code's key id is recorded with it (`codes.code_key_id`); the
//!    judge, an SMS resend and a revision that keeps a code derive it from
//!    that key. Earlier codes keep verifying as long as their key file is
//!    in `keys/` (copied to every server's office directory): a missing one
//!    is [`Error::CodeKeyMissing`], and the batch waits, unjudged.
//!
//! **The signing key** rotates by a statement (`handover_core::statement`):
//!
//! 1. [`Office::rotate_signing_key`] makes the new key in
//!    `keys/office-signing.next.pk8`, and a statement sealed by the old key
//!    and endorsed by the new one, naming when the old key's signatures
//!    stop being accepted (the grace period).
//! 2. One transaction records both keys in `signing_keys`, the new one
//!    with its statement; then the new key file replaces
//!    `keys/office-signing.pk8` (one rename: the old private key is gone).
//!    An interruption between the two is finished, or undone, at the next
//!    open ([`finish_signing_rotation`]).
//! 3. From then on manifests and acks are signed with the new key. A
//!    device's pull lists the keys it trusts; the answer carries the
//!    statements it lacks, and the device pins the new key before the
//!    manifests it signed. Until the grace period ends, devices still
//!    accept the old key (other servers of the office sign with it until
//!    they get the new key file and restart), and the office still counts
//!    acks it sealed with the old key in a refill.
//! 4. A server whose key file is older than the store's newest key refuses
//!    to open ([`Error::SigningKeyOutdated`]) rather than sign with a key
//!    devices are about to refuse.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use handover_core::codes::CodeKey;
use handover_core::keys::{PublicKey, SigningKey};
use handover_core::statement::KeyStatement;

use crate::error::{Error, Result};
use crate::keystore;
use crate::store::{ps, Tx};
use crate::{ms, Office};

/// The shortest grace period: longer than a working day's manifest window,
/// so a manifest sealed before the rotation is never refused while live.
pub const MIN_GRACE: Duration = Duration::days(1);
/// The longest grace period.
pub const MAX_GRACE: Duration = Duration::days(90);
/// The grace period when none is given: as long as devices keep
/// acknowledged events.
pub const DEFAULT_GRACE: Duration = Duration::days(7);

/// What a signing key rotation did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SigningKeyRotation {
    /// The key id that signed until now.
    pub previous: String,
    /// The key id that signs from now on.
    pub current: String,
    /// The new public key (hex), as enrolment answers give it.
    pub public_key: String,
    /// Until when devices accept what the previous key signs.
    pub previous_until: DateTime<Utc>,
}

/// What a code key rotation did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CodeKeyRotation {
    /// The key new codes came from until now.
    pub previous: String,
    /// The key new codes come from from now on.
    pub current: String,
}

impl Office {
    /// Start a new code key for new codes (module docs); earlier codes
    /// keep their own.
    pub fn rotate_code_key(&self) -> Result<CodeKeyRotation> {
        let previous = self.store.read(current_code_key_id)?;
        let current = keystore::next_code_key_id(&self.dir, &previous)?;
        keystore::create_code_key(&self.dir, &current)?;
        let moved = self.store.write(|tx| {
            tx.exec(
                "UPDATE meta SET value = $1 WHERE key = 'code_key_id' AND value = $2",
                ps![current.as_str(), previous.as_str()],
            )
        })?;
        if moved != 1 {
            // Another rotation got there first; the key made here stays
            // unused on disk (it is never handed out).
            return Err(Error::Store(
                "the code key was rotated meanwhile by another command: run it again",
            ));
        }
        Ok(CodeKeyRotation { previous, current })
    }

    /// The id of the code key new codes come from.
    pub fn code_key_id(&self) -> Result<String> {
        self.store.read(current_code_key_id)
    }

    /// The current code key, as the store names it in `tx`.
    pub(crate) fn current_code_key(&self, tx: &mut Tx<'_, '_>) -> Result<Arc<CodeKey>> {
        self.code_keys.get(&current_code_key_id(tx)?)
    }
}

impl Office {
    /// Replace the office's signing key (module docs); what the old key
    /// signs is accepted for `grace` more, at least [`MIN_GRACE`] and at
    /// most [`MAX_GRACE`].
    pub fn rotate_signing_key(
        &self,
        grace: Duration,
        now: DateTime<Utc>,
    ) -> Result<SigningKeyRotation> {
        if grace < MIN_GRACE || grace > MAX_GRACE {
            return Err(Error::GraceOutOfRange);
        }
        let old = &*self.signing_key();
        let new = SigningKey::generate()?;
        let until = now + grace;
        let statement = KeyStatement::make(old, &new, &self.office_id, now, until)?;
        let next = keystore::signing_next_path(&self.dir);
        crate::files::create_private(&next, new.pkcs8())?;
        let (old_id, new_id) = (old.public_key().key_id(), new.public_key().key_id());
        let recorded = self.store.write(|tx| {
            let newest = newest_signing_key(tx)?;
            if newest.is_some_and(|k| k != old.public_key()) {
                return Err(Error::SigningKeyOutdated);
            }
            tx.exec(
                "INSERT INTO signing_keys (key_id, public_key, made_at, retire_at, statement)
                 VALUES ($1, $2, 0, $3, NULL)
                 ON CONFLICT (key_id) DO UPDATE SET retire_at = $3",
                ps![old_id.as_str(), &old.public_key().0[..], ms(until)],
            )?;
            tx.exec(
                "INSERT INTO signing_keys (key_id, public_key, made_at, retire_at, statement)
                 VALUES ($1, $2, $3, NULL, $4)",
                ps![
                    new_id.as_str(),
                    &new.public_key().0[..],
                    ms(now),
                    &statement[..]
                ],
            )?;
            Ok(())
        });
        if let Err(e) = recorded {
            // Nothing signed with it: the key goes.
            let _ = std::fs::remove_file(&next);
            return Err(e);
        }
        keystore::promote_signing_next(&self.dir)?;
        let current = new.public_key();
        *self.signing.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(new);
        Ok(SigningKeyRotation {
            previous: old_id,
            current: new_id,
            public_key: current.to_hex(),
            previous_until: until,
        })
    }

    /// The key this office signs manifests and acks with now.
    pub(crate) fn signing_key(&self) -> Arc<SigningKey> {
        // A rotation replaces the key in one step: a panic cannot leave
        // it half-written.
        Arc::clone(&self.signing.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The keys whose seal on an ack counts in a refill at `now`: the one
    /// this server signs with, and every earlier one until its grace ends.
    pub(crate) fn ack_keys(&self, now: DateTime<Utc>) -> Result<Vec<PublicKey>> {
        let mut keys = vec![self.signing_key().public_key()];
        let earlier: Vec<Vec<u8>> = self.store.read(|tx| {
            tx.all(
                "SELECT public_key FROM signing_keys WHERE retire_at IS NULL OR retire_at > $1",
                ps![ms(now)],
                |r| r.get("public_key"),
            )
        })?;
        for bytes in earlier {
            let key = PublicKey(
                bytes
                    .try_into()
                    .map_err(|_| Error::Store("a stored signing key is damaged"))?,
            );
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        Ok(keys)
    }
}

/// The key statements a device that trusts the keys `trusted` (ids)
/// lacks, oldest first, sealed.
pub(crate) fn statements_for(tx: &mut Tx<'_, '_>, trusted: &[String]) -> Result<Vec<Vec<u8>>> {
    let rows: Vec<(String, Vec<u8>)> = tx.all(
        "SELECT key_id, statement FROM signing_keys WHERE statement IS NOT NULL
         ORDER BY made_at",
        ps![],
        |r| Ok((r.get("key_id")?, r.get("statement")?)),
    )?;
    Ok(rows
        .into_iter()
        .filter(|(id, _)| !trusted.contains(id))
        .map(|(_, s)| s)
        .collect())
}

/// The newest signing key the store records, if it records any.
fn newest_signing_key(tx: &mut Tx<'_, '_>) -> Result<Option<PublicKey>> {
    let bytes: Option<Vec<u8>> = tx.opt(
        "SELECT public_key FROM signing_keys ORDER BY made_at DESC LIMIT 1",
        ps![],
        |r| r.get("public_key"),
    )?;
    bytes
        .map(|b| {
            b.try_into()
                .map(PublicKey)
                .map_err(|_| Error::Store("a stored signing key is damaged"))
        })
        .transpose()
}

/// At open: finish a signing key rotation that was interrupted between its
/// transaction and its rename, or drop a new key the store never
/// recorded; then check that the key file is the store's newest key.
pub(crate) fn finish_signing_rotation(dir: &std::path::Path, tx: &mut Tx<'_, '_>) -> Result<()> {
    let newest = newest_signing_key(tx)?;
    let next = keystore::signing_next_path(dir);
    if next.exists() {
        let pending = keystore::signing_key_at(&next)?;
        if newest == Some(pending.public_key()) {
            keystore::promote_signing_next(dir)?;
        } else {
            std::fs::remove_file(&next).map_err(crate::error::io(&next))?;
        }
    }
    let current = keystore::signing_key(dir)?.public_key();
    match newest {
        Some(k) if k != current => Err(Error::SigningKeyOutdated),
        _ => Ok(()),
    }
}

fn current_code_key_id(tx: &mut Tx<'_, '_>) -> Result<String> {
    tx.opt(
        "SELECT value FROM meta WHERE key = 'code_key_id'",
        ps![],
        |r| r.get("value"),
    )?
    .ok_or(Error::Store("the store names no code key"))
}
