//! The office's signed envelope, used for manifests and acks.
//!
//! ```text
//! magic "HOE1" | kind u8 | key_id_len u8 | key_id | payload_len u32be | payload | signature[64]
//! signature = Ed25519(office key, label(kind) || 0x00 || everything before the signature)
//! ```
//!
//! The label (`handover/manifest/v1`, `handover/ack/v1`) separates domains: an
//! ack can never be replayed as a manifest. [`open`] reads only the framing,
//! finds the pinned key the envelope names, and checks the signature over the
//! exact bytes **before** anything inside the payload is parsed.
//!
//! ```
//! use handover_core::envelope::{open, seal, Kind};
//! use handover_core::keys::SigningKey;
//! let office = SigningKey::generate().unwrap();
//! let sealed = seal(Kind::Ack, &office, b"{}").unwrap();
//! assert_eq!(open(Kind::Ack, &sealed, &[office.public_key()]).unwrap(), b"{}");
//! // The same bytes are not a manifest.
//! assert!(open(Kind::Manifest, &sealed, &[office.public_key()]).is_err());
//! ```

use crate::error::{Error, Result};
use crate::keys::{PublicKey, SigningKey};

const MAGIC: &[u8; 4] = b"HOE1";
/// Largest payload an envelope may carry (16 MiB).
pub const MAX_PAYLOAD: usize = 16 * 1024 * 1024;

/// What an envelope carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// A device's daily manifest.
    Manifest,
    /// The office's answer to a batch.
    Ack,
    /// The office's statement that its signing key changed
    /// ([`crate::statement`]).
    KeyStatement,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Manifest => 1,
            Kind::Ack => 2,
            Kind::KeyStatement => 3,
        }
    }
    fn label(self) -> &'static [u8] {
        match self {
            Kind::Manifest => b"handover/manifest/v1",
            Kind::Ack => b"handover/ack/v1",
            Kind::KeyStatement => b"handover/key-statement/v1",
        }
    }
    fn name(self) -> &'static str {
        match self {
            Kind::Manifest => "manifest",
            Kind::Ack => "ack",
            Kind::KeyStatement => "key statement",
        }
    }
}

/// Seal `payload` under `key`.
pub fn seal(kind: Kind, key: &SigningKey, payload: &[u8]) -> Result<Vec<u8>> {
    if payload.len() > MAX_PAYLOAD {
        return Err(Error::malformed(kind.name(), "payload too large"));
    }
    let key_id = key.public_key().key_id();
    let mut out = Vec::with_capacity(payload.len() + 96);
    out.extend_from_slice(MAGIC);
    out.push(kind.byte());
    out.push(key_id.len() as u8);
    out.extend_from_slice(key_id.as_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    let sig = key.sign(&signed_message(kind, &out));
    out.extend_from_slice(&sig);
    Ok(out)
}

fn signed_message(kind: Kind, framed: &[u8]) -> Vec<u8> {
    let label = kind.label();
    let mut msg = Vec::with_capacity(label.len() + 1 + framed.len());
    msg.extend_from_slice(label);
    msg.push(0);
    msg.extend_from_slice(framed);
    msg
}

/// Check an envelope against the pinned `trusted` keys and return its payload.
pub fn open<'a>(kind: Kind, bytes: &'a [u8], trusted: &[PublicKey]) -> Result<&'a [u8]> {
    let what = kind.name();
    let short = || Error::malformed(what, "truncated envelope");
    if bytes.len() < 4 + 1 + 1 + 4 + 64 || &bytes[..4] != MAGIC {
        return Err(Error::malformed(what, "not a handover envelope"));
    }
    if bytes[4] != kind.byte() {
        return Err(Error::malformed(what, "envelope carries another kind"));
    }
    let id_len = usize::from(bytes[5]);
    let id_end = 6 + id_len;
    let key_id = bytes.get(6..id_end).ok_or_else(short)?;
    let len_bytes: [u8; 4] = bytes
        .get(id_end..id_end + 4)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(short)?;
    let payload_len = u32::from_be_bytes(len_bytes) as usize;
    if payload_len > MAX_PAYLOAD {
        return Err(Error::malformed(what, "payload too large"));
    }
    let payload_start = id_end + 4;
    let sig_start = payload_start.checked_add(payload_len).ok_or_else(short)?;
    if bytes.len() != sig_start + 64 {
        return Err(Error::malformed(what, "length does not match its header"));
    }
    let key = trusted
        .iter()
        .find(|k| k.key_id().as_bytes() == key_id)
        .ok_or(Error::UntrustedKey)?;
    key.verify(
        &signed_message(kind, &bytes[..sig_start]),
        &bytes[sig_start..],
    )
    .map_err(|_| Error::BadSignature(what))?;
    Ok(&bytes[payload_start..sig_start])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bit_flip_is_refused() {
        let k = SigningKey::generate().unwrap();
        let sealed = seal(Kind::Manifest, &k, br#"{"x":1}"#).unwrap();
        let trusted = [k.public_key()];
        assert!(open(Kind::Manifest, &sealed, &trusted).is_ok());
        for i in 0..sealed.len() {
            for bit in 0..8 {
                let mut t = sealed.clone();
                t[i] ^= 1 << bit;
                assert!(
                    open(Kind::Manifest, &t, &trusted).is_err(),
                    "byte {i} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn untrusted_key_and_truncation_refused() {
        let k = SigningKey::generate().unwrap();
        let other = SigningKey::generate().unwrap();
        let sealed = seal(Kind::Ack, &k, b"payload").unwrap();
        assert!(matches!(
            open(Kind::Ack, &sealed, &[other.public_key()]),
            Err(Error::UntrustedKey)
        ));
        for cut in 0..sealed.len() {
            assert!(open(Kind::Ack, &sealed[..cut], &[k.public_key()]).is_err());
        }
        let mut longer = sealed.clone();
        longer.push(0);
        assert!(open(Kind::Ack, &longer, &[k.public_key()]).is_err());
    }
}
