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

use std::sync::Arc;

use handover_core::codes::CodeKey;

use crate::error::{Error, Result};
use crate::keystore;
use crate::store::{ps, Tx};
use crate::Office;

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

fn current_code_key_id(tx: &mut Tx<'_, '_>) -> Result<String> {
    tx.opt(
        "SELECT value FROM meta WHERE key = 'code_key_id'",
        ps![],
        |r| r.get("value"),
    )?
    .ok_or(Error::Store("the store names no code key"))
}
