//! Ed25519 keys, key ids and device ids.
//!
//! The office signs manifests and acks; each device signs its events. Both use
//! Ed25519 (ring). A key is named by a short hash of its public half:
//!
//! * key id (office keys): the first 8 bytes of `SHA-256("handover/key-id/v1" || pk)`, hex;
//! * device id: the first 8 bytes of `SHA-256("handover/device-id/v1" || pk)`, hex.
//!
//! Both are derived, so nobody can claim an id without the key.
//!
//! ```
//! use handover_core::keys::SigningKey;
//! let key = SigningKey::generate().unwrap();
//! let sig = key.sign(b"hello");
//! key.public_key().verify(b"hello", &sig).unwrap();
//! assert!(key.public_key().verify(b"hellO", &sig).is_err());
//! assert_eq!(key.public_key().device_id().len(), 16);
//! ```

use std::fmt;
use std::str::FromStr;

use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self, Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Fill `buf` from the operating system's CSPRNG.
pub fn fill_random(buf: &mut [u8]) -> Result<()> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| Error::Crypto("random number generator failed"))
}

/// PKCS#8 v2 (RFC 5958) of an Ed25519 key: `SEQUENCE { version 1,
/// AlgorithmIdentifier id-Ed25519, OCTET STRING { OCTET STRING seed },
/// [1] public key }`, in the bytes before the seed and between it and the
/// public key.
const PKCS8_V2_PREFIX: [u8; 16] = [
    0x30, 0x53, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
const PKCS8_V2_MIDDLE: [u8; 5] = [0xa1, 0x23, 0x03, 0x21, 0x00];

/// An Ed25519 private key (office or device). `Debug` shows only the public
/// half; the PKCS#8 bytes are wiped on drop.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    pkcs8: Zeroizing<Vec<u8>>,
}

impl SigningKey {
    /// A fresh key.
    pub fn generate() -> Result<SigningKey> {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| Error::Crypto("key generation failed"))?;
        SigningKey::from_pkcs8(doc.as_ref())
    }

    /// A key from its 32-byte RFC 8032 seed (test vectors; keys for use are
    /// [`generate`](Self::generate)d). The PKCS#8 v2 document is built
    /// around it, as ring itself lays it out.
    pub fn from_seed(seed: &[u8; 32]) -> Result<SigningKey> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|_| Error::malformed("private key", "not an Ed25519 seed"))?;
        let mut doc = Zeroizing::new(Vec::with_capacity(85));
        doc.extend_from_slice(&PKCS8_V2_PREFIX);
        doc.extend_from_slice(seed);
        doc.extend_from_slice(&PKCS8_V2_MIDDLE);
        doc.extend_from_slice(pair.public_key().as_ref());
        SigningKey::from_pkcs8(&doc)
    }

    /// A key from its PKCS#8 v2 document (as stored).
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<SigningKey> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8)
            .map_err(|_| Error::malformed("private key", "not an Ed25519 PKCS#8 document"))?;
        Ok(SigningKey {
            pair,
            pkcs8: Zeroizing::new(pkcs8.to_vec()),
        })
    }

    /// The PKCS#8 document, for storage only.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        let mut pk = [0u8; 32];
        pk.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey(pk)
    }

    /// Sign `msg`.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.pair.sign(msg).as_ref());
        out
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.public_key())
            .finish_non_exhaustive()
    }
}

/// An Ed25519 public key; serialised as 64 hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Check `sig` over `msg`.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<()> {
        signature::UnparsedPublicKey::new(&signature::ED25519, &self.0)
            .verify(msg, sig)
            .map_err(|_| Error::BadSignature("message"))
    }

    /// The key id an office key is named by in envelopes.
    pub fn key_id(&self) -> String {
        short_hash(b"handover/key-id/v1", &self.0)
    }

    /// The device id of a device key.
    pub fn device_id(&self) -> String {
        short_hash(b"handover/device-id/v1", &self.0)
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

fn short_hash(label: &[u8], pk: &[u8; 32]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(label);
    ctx.update(pk);
    hex::encode(&ctx.finish().as_ref()[..8])
}

impl FromStr for PublicKey {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let mut pk = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut pk)
            .map_err(|_| Error::invalid("public key", "expected 64 hex characters"))?;
        Ok(PublicKey(pk))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse()
            .map_err(|_| serde::de::Error::custom("invalid public key"))
    }
}

/// SHA-256 of the concatenation of `parts`.
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkcs8_round_trip_keeps_identity() {
        let k = SigningKey::generate().unwrap();
        let k2 = SigningKey::from_pkcs8(k.pkcs8()).unwrap();
        assert_eq!(k.public_key(), k2.public_key());
        assert!(SigningKey::from_pkcs8(&[1, 2, 3]).is_err());
    }

    #[test]
    fn rfc8032_test_1_seed_gives_its_public_key() {
        let seed: [u8; 32] =
            hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap();
        let k = SigningKey::from_seed(&seed).unwrap();
        assert_eq!(
            k.public_key().to_hex(),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        // RFC 8032, TEST 1: the empty message.
        assert_eq!(
            hex::encode(k.sign(b"")),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        assert_eq!(
            SigningKey::from_pkcs8(k.pkcs8()).unwrap().public_key(),
            k.public_key()
        );
    }

    #[test]
    fn ids_differ_by_purpose_and_parse_round_trips() {
        let pk = SigningKey::generate().unwrap().public_key();
        assert_ne!(pk.key_id(), pk.device_id());
        assert_eq!(pk.to_hex().parse::<PublicKey>().unwrap(), pk);
        assert!("abc".parse::<PublicKey>().is_err());
    }

    #[test]
    fn debug_hides_private_key() {
        let k = SigningKey::generate().unwrap();
        let shown = format!("{k:?}");
        assert!(!shown.contains(&hex::encode(k.pkcs8())));
        assert!(shown.contains(&k.public_key().to_hex()));
    }
}
