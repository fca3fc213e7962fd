//! The office's signing key changes by a statement (`protocol.md`, "Keys
//! over time"): the old key seals it, naming the new key and the time until
//! which what the old key signs is still accepted; the new key endorses it,
//! so no one can name a key they do not hold.
//!
//! 1. The office makes a new key and a [`KeyStatement`], sealed by the old
//!    key ([`Kind::KeyStatement`], its own domain label) and endorsed by
//!    the new one; from then on it signs manifests and acks with the new key.
//! 2. A device's next pull carries the statements it lacks, oldest first.
//!    [`KeyStatement::open`] checks the seal against the device's pinned
//!    keys **before** parsing, then that the old key it names is the one
//!    that sealed it, then the endorsement.
//! 3. The device pins the new key and keeps the old one only until
//!    [`KeyStatement::old_key_until`]; after that it refuses what the old
//!    key signs, statements included.
//!
//! ```
//! use chrono::{Duration, Utc};
//! use handover_core::keys::SigningKey;
//! use handover_core::statement::KeyStatement;
//! let (old, new) = (SigningKey::generate().unwrap(), SigningKey::generate().unwrap());
//! let now = Utc::now();
//! let sealed = KeyStatement::make(&old, &new, "PO-1", now, now + Duration::days(7)).unwrap();
//! let s = KeyStatement::open(&sealed, &[old.public_key()]).unwrap();
//! assert_eq!(s.new_key, new.public_key());
//! // Only a pinned key can introduce another.
//! assert!(KeyStatement::open(&sealed, &[new.public_key()]).is_err());
//! ```

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::envelope::{self, Kind};
use crate::error::{Error, Result};
use crate::keys::{PublicKey, SigningKey};

/// The statement format this build writes and reads.
pub const STATEMENT_FORMAT: &str = "handover-key-statement/1";

/// The label the new key's endorsement is made under.
const ENDORSEMENT: &[u8] = b"handover/key-endorsement/v1";

/// The office's statement that its signing key changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyStatement {
    /// Always [`STATEMENT_FORMAT`].
    pub format: String,
    /// The office.
    pub office_id: String,
    /// The key that sealed the statement.
    pub old_key: PublicKey,
    /// The key that signs from now on.
    pub new_key: PublicKey,
    /// When the office made the key.
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub issued_at: DateTime<Utc>,
    /// Until when what the old key signs is still accepted.
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub old_key_until: DateTime<Utc>,
    /// The new key's signature of [`endorsed`](Self::endorsed_bytes).
    #[serde(with = "crate::hexser::array")]
    pub endorsement: [u8; 64],
}

impl KeyStatement {
    /// A statement that `new` replaces `old`, sealed by `old` and endorsed
    /// by `new`.
    pub fn make(
        old: &SigningKey,
        new: &SigningKey,
        office_id: &str,
        issued_at: DateTime<Utc>,
        old_key_until: DateTime<Utc>,
    ) -> Result<Vec<u8>> {
        crate::rules::check_id("office_id", office_id)?;
        let mut s = KeyStatement {
            format: STATEMENT_FORMAT.to_owned(),
            office_id: office_id.to_owned(),
            old_key: old.public_key(),
            new_key: new.public_key(),
            issued_at,
            old_key_until,
            endorsement: [0; 64],
        };
        s.endorsement = new.sign(&s.endorsed_bytes());
        let payload = serde_json::to_vec(&s).map_err(|_| Error::Encoding("key statement"))?;
        envelope::seal(Kind::KeyStatement, old, &payload)
    }

    /// Check a sealed statement against the pinned `trusted` keys (module
    /// docs, step 2) and parse it.
    pub fn open(sealed: &[u8], trusted: &[PublicKey]) -> Result<KeyStatement> {
        let payload = envelope::open(Kind::KeyStatement, sealed, trusted)?;
        let s: KeyStatement = serde_json::from_slice(payload)
            .map_err(|_| Error::malformed("key statement", "payload is not a v1 statement"))?;
        if s.format != STATEMENT_FORMAT {
            return Err(Error::malformed("key statement", "unknown format"));
        }
        crate::rules::check_id("office_id", &s.office_id)?;
        // Sealed by the very key it retires, not by another pinned one.
        envelope::open(Kind::KeyStatement, sealed, &[s.old_key])?;
        if s.new_key == s.old_key {
            return Err(Error::malformed(
                "key statement",
                "the new key is the old one",
            ));
        }
        s.new_key
            .verify(&s.endorsed_bytes(), &s.endorsement)
            .map_err(|_| Error::BadSignature("key statement"))?;
        Ok(s)
    }

    /// What the new key signs: the label, both keys, the office and the
    /// old key's end, so the endorsement fits this statement only.
    fn endorsed_bytes(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(160);
        m.extend_from_slice(ENDORSEMENT);
        m.push(0);
        m.extend_from_slice(self.old_key.as_bytes());
        m.extend_from_slice(self.new_key.as_bytes());
        m.extend_from_slice(&self.old_key_until.timestamp_millis().to_be_bytes());
        m.extend_from_slice(self.office_id.as_bytes());
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn keys() -> (SigningKey, SigningKey) {
        (
            SigningKey::generate().unwrap(),
            SigningKey::generate().unwrap(),
        )
    }

    #[test]
    fn a_statement_opens_under_the_old_key_only() {
        let (old, new) = keys();
        let now = Utc::now();
        let sealed = KeyStatement::make(&old, &new, "PO-1", now, now + Duration::days(7)).unwrap();
        let s = KeyStatement::open(&sealed, &[old.public_key()]).unwrap();
        assert_eq!((s.old_key, s.new_key), (old.public_key(), new.public_key()));
        assert!(matches!(
            KeyStatement::open(&sealed, &[new.public_key()]),
            Err(Error::UntrustedKey)
        ));
    }

    #[test]
    fn a_pinned_key_cannot_retire_another() {
        // Key A is pinned beside B; A seals a statement claiming to
        // retire B in favour of C.
        let (a, b) = keys();
        let c = SigningKey::generate().unwrap();
        let now = Utc::now();
        let mut s = KeyStatement {
            format: STATEMENT_FORMAT.into(),
            office_id: "PO-1".into(),
            old_key: b.public_key(),
            new_key: c.public_key(),
            issued_at: now,
            old_key_until: now,
            endorsement: [0; 64],
        };
        s.endorsement = c.sign(&s.endorsed_bytes());
        let sealed =
            envelope::seal(Kind::KeyStatement, &a, &serde_json::to_vec(&s).unwrap()).unwrap();
        assert!(matches!(
            KeyStatement::open(&sealed, &[a.public_key(), b.public_key()]),
            Err(Error::UntrustedKey)
        ));
    }

    #[test]
    fn a_new_key_that_did_not_endorse_is_refused() {
        let (old, new) = keys();
        let other = SigningKey::generate().unwrap();
        let now = Utc::now();
        let mut s = KeyStatement {
            format: STATEMENT_FORMAT.into(),
            office_id: "PO-1".into(),
            old_key: old.public_key(),
            new_key: new.public_key(),
            issued_at: now,
            old_key_until: now + Duration::days(7),
            endorsement: [0; 64],
        };
        // Endorsed by another key, or for another grace period.
        s.endorsement = other.sign(&s.endorsed_bytes());
        let forged =
            envelope::seal(Kind::KeyStatement, &old, &serde_json::to_vec(&s).unwrap()).unwrap();
        assert!(matches!(
            KeyStatement::open(&forged, &[old.public_key()]),
            Err(Error::BadSignature(_))
        ));
        s.endorsement = new.sign(&s.endorsed_bytes());
        s.old_key_until += Duration::days(365);
        let stretched =
            envelope::seal(Kind::KeyStatement, &old, &serde_json::to_vec(&s).unwrap()).unwrap();
        assert!(matches!(
            KeyStatement::open(&stretched, &[old.public_key()]),
            Err(Error::BadSignature(_))
        ));
    }

    #[test]
    fn a_statement_is_not_an_ack_or_a_manifest() {
        let (old, new) = keys();
        let now = Utc::now();
        let sealed = KeyStatement::make(&old, &new, "PO-1", now, now).unwrap();
        let trusted = [old.public_key()];
        assert!(envelope::open(Kind::Ack, &sealed, &trusted).is_err());
        assert!(envelope::open(Kind::Manifest, &sealed, &trusted).is_err());
        assert!(KeyStatement::open(&sealed[..sealed.len() - 1], &trusted).is_err());
    }
}
