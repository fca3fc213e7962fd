//! Truncated verifiers: what a device holds instead of codes.
//!
//! Whoever holds a device can try all `10^digits` codes against anything the
//! device uses to check them, however slow the hash. So the device holds only
//! the first `tag_bits` bits of
//!
//! ```text
//! PBKDF2-HMAC-SHA256(password = code, salt = salt || reference, iterations)
//! ```
//!
//! with a 16-byte salt per `(programme, reference, code_version)` derived
//! from the code key ([`crate::codes::derive_salt`]). Brute force then yields
//! about `10^digits / 2^tag_bits` equally good candidates rather than the
//! code, and the office, which re-derives the exact code, flags a wrong one
//! at sync. [`crate::codes::Policy::risk`] puts numbers on the trade.
//!
//! **A verifier never changes while its code does not** (protocol.md): the
//! salt is derived, not drawn at random, and the office fixes the policy of
//! each code version, so every revision of a manifest carries the same
//! verifier for an unchanged code. Two different truncated tags of one code
//! would let an insider intersect two candidate sets (with the post default,
//! from 0.20 % to about 89 % after two revisions).
//!
//! ```
//! use handover_core::codes::{derive_code, CodeKey, Policy, Programme};
//! use handover_core::verifier::Verifier;
//! let key = CodeKey::new("k1", [7; 32]);
//! let policy = Policy { digits: 6, tag_bits: 11, iterations: 1000, max_attempts: 3 };
//! let code = derive_code(&key, Programme::Post, "RR287043775IN", 1, 6).unwrap();
//! let v = Verifier::derive(&key, Programme::Post, "RR287043775IN", 1, &code, &policy).unwrap();
//! assert!(v.check(&code, "RR287043775IN", &policy));
//! assert_eq!(v.tag.len(), 2); // 11 bits round up to 2 bytes, low 5 bits zero
//! // The same code version always gets the same verifier.
//! assert_eq!(v, Verifier::derive(&key, Programme::Post, "RR287043775IN", 1, &code, &policy).unwrap());
//! ```

use std::num::NonZeroU32;

use ring::pbkdf2;
use serde::{Deserialize, Serialize};

use crate::codes::{derive_salt, Code, CodeKey, Policy, Programme};
use crate::error::{Error, Result};
use crate::hexser;
use crate::rules::constant_time_eq;

/// Salt length in bytes.
pub const SALT_LEN: usize = 16;

/// An item's verifier: its salt and truncated tag.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verifier {
    /// Salt of the item's code version.
    #[serde(with = "hexser::array")]
    pub salt: [u8; SALT_LEN],
    /// The first `tag_bits` bits of the PBKDF2 output, in `ceil(tag_bits/8)`
    /// bytes whose unused low bits are zero.
    #[serde(with = "hexser::vec")]
    pub tag: Vec<u8>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A tag narrows the code down; keep it out of debug output too.
        f.write_str("Verifier(<redacted>)")
    }
}

/// Bytes a tag of `bits` bits occupies.
pub fn tag_len(bits: u16) -> usize {
    usize::from(bits).div_ceil(8)
}

impl Verifier {
    /// The verifier of `code`, the code of `(programme, reference,
    /// code_version)` under `key`, with the salt derived from the key.
    pub fn derive(
        key: &CodeKey,
        programme: Programme,
        reference: &str,
        code_version: u32,
        code: &Code,
        policy: &Policy,
    ) -> Result<Verifier> {
        let salt = derive_salt(key, programme, reference, code_version)?;
        Verifier::with_salt(code, reference, policy, salt)
    }

    /// A verifier with a given salt (test vectors).
    pub fn with_salt(
        code: &Code,
        reference: &str,
        policy: &Policy,
        salt: [u8; SALT_LEN],
    ) -> Result<Verifier> {
        policy.validate()?;
        Ok(Verifier {
            salt,
            tag: compute_tag(code, &salt, reference, policy),
        })
    }

    /// Whether this verifier's shape fits `policy` (tag length, unused bits zero).
    pub fn fits(&self, policy: &Policy) -> Result<()> {
        if self.tag.len() != tag_len(policy.tag_bits) {
            return Err(Error::malformed(
                "verifier",
                "tag length does not match policy",
            ));
        }
        let spare = (8 - policy.tag_bits % 8) % 8;
        if let Some(last) = self.tag.last() {
            if spare > 0 && last & ((1u8 << spare) - 1) != 0 {
                return Err(Error::malformed("verifier", "tag has bits beyond tag_bits"));
            }
        }
        Ok(())
    }

    /// Whether `code` matches, compared in constant time. A code of the wrong
    /// length never matches.
    pub fn check(&self, code: &Code, reference: &str, policy: &Policy) -> bool {
        if code.as_str().len() != usize::from(policy.digits) || policy.validate().is_err() {
            return false;
        }
        let tag = compute_tag(code, &self.salt, reference, policy);
        constant_time_eq(&tag, &self.tag)
    }
}

/// PBKDF2 and truncation. `policy` must be valid.
fn compute_tag(code: &Code, salt: &[u8; SALT_LEN], reference: &str, policy: &Policy) -> Vec<u8> {
    let mut full = [0u8; 32];
    let mut salted = Vec::with_capacity(SALT_LEN + reference.len());
    salted.extend_from_slice(salt);
    salted.extend_from_slice(reference.as_bytes());
    let iterations = NonZeroU32::new(policy.iterations).unwrap_or(NonZeroU32::MIN);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salted,
        code.as_str().as_bytes(),
        &mut full,
    );
    truncate_bits(&full, policy.tag_bits)
}

/// The first `bits` bits of `full`, low bits of the last byte cleared.
pub(crate) fn truncate_bits(full: &[u8], bits: u16) -> Vec<u8> {
    let len = tag_len(bits).min(full.len());
    let mut tag = full[..len].to_vec();
    let spare = (8 - bits % 8) % 8;
    if let Some(last) = tag.last_mut() {
        if spare > 0 {
            *last &= !((1u8 << spare) - 1);
        }
    }
    tag
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(bits: u16) -> Policy {
        Policy {
            digits: 6,
            tag_bits: bits,
            iterations: 10,
            max_attempts: 3,
        }
    }

    #[test]
    fn truncation_clears_spare_bits() {
        assert_eq!(truncate_bits(&[0xff, 0xff, 0xff], 11), vec![0xff, 0xe0]);
        assert_eq!(truncate_bits(&[0xab, 0xcd], 8), vec![0xab]);
        assert_eq!(truncate_bits(&[0xff], 1), vec![0x80]);
        assert_eq!(truncate_bits(&[0x5a; 32], 256), vec![0x5a; 32]);
    }

    #[test]
    fn right_code_matches_and_wrong_length_does_not() {
        let p = policy(256);
        let c = Code::parse("123456", 6).unwrap();
        let v = Verifier::with_salt(&c, "R1", &p, [3; SALT_LEN]).unwrap();
        assert!(v.check(&c, "R1", &p));
        assert!(!v.check(&Code::parse("123457", 6).unwrap(), "R1", &p));
        assert!(!v.check(&Code::parse("1234567", 7).unwrap(), "R1", &p));
        // Bound to the reference.
        assert!(!v.check(&c, "R2", &p));
    }

    #[test]
    fn fits_checks_shape() {
        let p = policy(11);
        let c = Code::parse("123456", 6).unwrap();
        let mut v = Verifier::with_salt(&c, "R1", &p, [4; SALT_LEN]).unwrap();
        v.fits(&p).unwrap();
        assert!(v.fits(&policy(24)).is_err());
        v.tag[1] |= 0x01;
        assert!(v.fits(&p).is_err());
    }

    #[test]
    fn debug_is_redacted() {
        let p = policy(16);
        let v =
            Verifier::with_salt(&Code::parse("123456", 6).unwrap(), "R", &p, [0xab; 16]).unwrap();
        let shown = format!("{v:?}");
        assert!(!shown.contains("ab"), "{shown}");
    }
}
