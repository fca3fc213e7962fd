//! Code derivation, policies and their risk figures.
//!
//! A *code* is the short number a recipient reads out at the door. The office
//! never stores codes: it derives them on demand from a 32-byte *code key*:
//!
//! ```text
//! mac  = HMAC-SHA256(code_key, "handover/code/v1" 0x00 programme 0x00 reference 0x00 u32be(code_version))
//! code = dynamic_truncate(mac) mod 10^digits, zero-padded to `digits`
//! ```
//!
//! `dynamic_truncate` is RFC 4226's: the low nibble of the last byte picks an
//! offset, and the 31 bits starting there are the number. Test vectors made by
//! an independent implementation live in `core/tests/vectors/codes.json`.
//!
//! ```
//! use handover_core::codes::{derive_code, CodeKey, Programme};
//! let key = CodeKey::new("k1", [7u8; 32]);
//! let code = derive_code(&key, Programme::Post, "RR287043775IN", 1, 6).unwrap();
//! assert_eq!(code.as_str().len(), 6);
//! // The same inputs always give the same code; a new version gives another.
//! assert_eq!(code, derive_code(&key, Programme::Post, "RR287043775IN", 1, 6).unwrap());
//! ```
//!
//! A [`Policy`] fixes how long codes are and how much of a verifier the device
//! holds; [`Policy::risk`] states what that costs (see the module
//! `verifier` for why the device holds a *truncated* tag).

use std::fmt;
use std::str::FromStr;

use ring::hmac;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Domain-separation label of the code derivation.
pub const CODE_LABEL: &[u8] = b"handover/code/v1";

/// Shortest code the protocol allows.
pub const MIN_DIGITS: u8 = 4;
/// Longest code the protocol allows.
pub const MAX_DIGITS: u8 = 8;
/// Highest PBKDF2 iteration count a manifest may ask a device for.
pub const MAX_ITERATIONS: u32 = 1_000_000;
/// Highest `max_attempts` a policy may allow.
pub const MAX_ATTEMPTS: u32 = 10;

/// The programme an item belongs to. It separates the code domains, so a
/// post reference and a vaccination reference never share a code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Programme {
    /// Doorstep postal delivery (registered, speed post, parcel).
    Post,
    /// Vaccination at a session site.
    Vaccination,
}

impl Programme {
    /// The programme's name as used in derivation and files: `post` or `vaccination`.
    pub fn as_str(self) -> &'static str {
        match self {
            Programme::Post => "post",
            Programme::Vaccination => "vaccination",
        }
    }

    /// The default policy of the programme: 6 digits for post, 4 for
    /// vaccination (as CoWIN), 3 attempts, tag bits balancing the two risks.
    pub fn default_policy(self) -> Policy {
        match self {
            Programme::Post => Policy::balanced(6, 3, DEFAULT_ITERATIONS),
            Programme::Vaccination => Policy::balanced(4, 3, DEFAULT_ITERATIONS),
        }
    }
}

impl fmt::Display for Programme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Programme {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "post" => Ok(Programme::Post),
            "vaccination" => Ok(Programme::Vaccination),
            _ => Err(Error::invalid("programme", "expected post or vaccination")),
        }
    }
}

/// A code key: 32 secret bytes and the id manifests name it by. It never
/// leaves the office. `Debug` does not show the bytes, and they are wiped on
/// drop.
#[derive(Clone)]
pub struct CodeKey {
    id: String,
    bytes: Zeroizing<[u8; 32]>,
}

impl CodeKey {
    /// A key from its id and bytes.
    pub fn new(id: impl Into<String>, bytes: [u8; 32]) -> Self {
        CodeKey {
            id: id.into(),
            bytes: Zeroizing::new(bytes),
        }
    }

    /// A fresh random key.
    pub fn generate(id: impl Into<String>) -> Result<Self> {
        let mut bytes = [0u8; 32];
        crate::keys::fill_random(&mut bytes)?;
        Ok(CodeKey::new(id, bytes))
    }

    /// The key id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The secret bytes, for storing the key at the office.
    pub fn secret_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }
}

impl fmt::Debug for CodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodeKey")
            .field("id", &self.id)
            .field("bytes", &"<redacted>")
            .finish()
    }
}

/// A code as typed or derived: only ASCII digits. `Debug` redacts it, and the
/// text is wiped on drop, so it cannot leak through a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Code(Zeroizing<String>);

impl Code {
    /// Parse a code of exactly `digits` ASCII digits.
    pub fn parse(text: &str, digits: u8) -> Result<Self> {
        let code = Code::parse_any(text)?;
        if code.0.len() != usize::from(digits) {
            return Err(Error::invalid("code", "wrong number of digits"));
        }
        Ok(code)
    }

    /// Parse a code of any allowed length (4 to 8 digits).
    pub fn parse_any(text: &str) -> Result<Self> {
        let len = text.len();
        if len < usize::from(MIN_DIGITS) || len > usize::from(MAX_DIGITS) {
            return Err(Error::invalid("code", "must be 4 to 8 digits"));
        }
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::invalid("code", "must be digits only"));
        }
        Ok(Code(Zeroizing::new(text.to_owned())))
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Code(<redacted>)")
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = Zeroizing::new(String::deserialize(d)?);
        Code::parse_any(&text).map_err(|_| serde::de::Error::custom("invalid code"))
    }
}

/// Check that a reference can be bound into a derivation: 1 to 64 printable
/// ASCII characters without spaces.
pub fn check_reference(reference: &str) -> Result<()> {
    if reference.is_empty() || reference.len() > 64 {
        return Err(Error::invalid("reference", "must be 1 to 64 characters"));
    }
    if !reference
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'/')
    {
        return Err(Error::invalid(
            "reference",
            "only letters, digits, '-', '_' and '/' are allowed",
        ));
    }
    Ok(())
}

/// Domain-separation label of the verifier salt derivation.
pub const SALT_LABEL: &[u8] = b"handover/salt/v1";

/// `HMAC-SHA256(code_key, label 0x00 programme 0x00 reference 0x00 u32be(code_version))`.
fn bound_mac(
    key: &CodeKey,
    label: &[u8],
    programme: Programme,
    reference: &str,
    code_version: u32,
) -> Result<hmac::Tag> {
    check_reference(reference)?;
    if code_version == 0 {
        return Err(Error::invalid("code_version", "starts at 1"));
    }
    let mac_key = hmac::Key::new(hmac::HMAC_SHA256, key.secret_bytes());
    let mut ctx = hmac::Context::with_key(&mac_key);
    ctx.update(label);
    ctx.update(&[0]);
    ctx.update(programme.as_str().as_bytes());
    ctx.update(&[0]);
    ctx.update(reference.as_bytes());
    ctx.update(&[0]);
    ctx.update(&code_version.to_be_bytes());
    Ok(ctx.sign())
}

/// Derive the code of `reference` at `code_version` with `digits` digits.
pub fn derive_code(
    key: &CodeKey,
    programme: Programme,
    reference: &str,
    code_version: u32,
    digits: u8,
) -> Result<Code> {
    if !(MIN_DIGITS..=MAX_DIGITS).contains(&digits) {
        return Err(Error::InvalidPolicy("digits must be 4 to 8"));
    }
    let tag = bound_mac(key, CODE_LABEL, programme, reference, code_version)?;
    let mac = tag.as_ref();
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let bin = (u32::from(mac[offset] & 0x7f) << 24)
        | (u32::from(mac[offset + 1]) << 16)
        | (u32::from(mac[offset + 2]) << 8)
        | u32::from(mac[offset + 3]);
    let modulus = 10u32.pow(u32::from(digits));
    let text = Zeroizing::new(format!(
        "{:0width$}",
        bin % modulus,
        width = usize::from(digits)
    ));
    Code::parse(&text, digits)
}

/// The verifier salt of `reference` at `code_version`: the first 16 bytes of
/// `HMAC-SHA256(code_key, "handover/salt/v1" 0x00 programme 0x00 reference 0x00 u32be(code_version))`.
///
/// Derived, not random, so every manifest revision carries the *same*
/// verifier for a code: two different truncated tags of one code would let
/// an insider intersect two candidate sets. Unpredictable without the code
/// key, so no one can precompute tags.
pub fn derive_salt(
    key: &CodeKey,
    programme: Programme,
    reference: &str,
    code_version: u32,
) -> Result<[u8; crate::verifier::SALT_LEN]> {
    let tag = bound_mac(key, SALT_LABEL, programme, reference, code_version)?;
    let mut salt = [0u8; crate::verifier::SALT_LEN];
    salt.copy_from_slice(&tag.as_ref()[..crate::verifier::SALT_LEN]);
    Ok(salt)
}

/// PBKDF2 iterations of the default policies: about 30–80 ms on a low-end
/// phone. The truncation, not the iteration count, is what limits an insider.
pub const DEFAULT_ITERATIONS: u32 = 20_000;
/// PBKDF2 iterations of the strict policy.
pub const STRICT_ITERATIONS: u32 = 200_000;

/// How codes of an item class are made and checked.
///
/// Spec syntax ([`FromStr`]): `strict`, `strict:DIGITS`, or comma-separated
/// `digits=6,tag_bits=11,iterations=20000,max_attempts=3` where any omitted
/// field takes the balanced default for the digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Digits in a code: 4 to 8.
    pub digits: u8,
    /// Bits of the PBKDF2 output the device holds: 1 to 256.
    pub tag_bits: u16,
    /// PBKDF2-HMAC-SHA256 iterations.
    pub iterations: u32,
    /// Wrong codes accepted before the item locks: 1 to 10.
    pub max_attempts: u32,
}

/// What a policy costs, as probabilities in `0.0..=1.0`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RiskFigures {
    /// An impostor who guesses `max_attempts` distinct codes is accepted
    /// offline (by the right code or a colliding tag).
    pub impostor_acceptance: f64,
    /// An insider who brute-forces the device's verifier and submits one of
    /// the candidates picks the right code, so the office does not notice.
    pub insider_undetected: f64,
    /// A single mistyped code is refused at the door.
    pub typo_caught: f64,
    /// Codes an insider's brute force leaves as equally good candidates.
    pub expected_candidates: f64,
}

impl Policy {
    /// The policy whose tag length balances impostor and insider risk:
    /// `A · 2^-b ≈ 2^b / 10^d`, i.e. `b = round((log2 A + d · log2 10) / 2)`.
    pub fn balanced(digits: u8, max_attempts: u32, iterations: u32) -> Policy {
        let a = f64::from(max_attempts.max(1));
        let bits = ((a.log2() + f64::from(digits) * 10f64.log2()) / 2.0).round();
        Policy {
            digits,
            tag_bits: bits.clamp(1.0, 256.0) as u16,
            iterations,
            max_attempts,
        }
    }

    /// The strict policy: a full 256-bit tag. Impostors are stopped except by
    /// guessing the code itself; an insider with the device recovers the code.
    pub fn strict(digits: u8) -> Policy {
        Policy {
            digits,
            tag_bits: 256,
            iterations: STRICT_ITERATIONS,
            max_attempts: 3,
        }
    }

    /// Check the parameters against the protocol's limits.
    pub fn validate(&self) -> Result<()> {
        if !(MIN_DIGITS..=MAX_DIGITS).contains(&self.digits) {
            return Err(Error::InvalidPolicy("digits must be 4 to 8"));
        }
        if !(1..=256).contains(&self.tag_bits) {
            return Err(Error::InvalidPolicy("tag_bits must be 1 to 256"));
        }
        if !(1..=MAX_ITERATIONS).contains(&self.iterations) {
            return Err(Error::InvalidPolicy("iterations must be 1 to 1000000"));
        }
        if !(1..=MAX_ATTEMPTS).contains(&self.max_attempts) {
            return Err(Error::InvalidPolicy("max_attempts must be 1 to 10"));
        }
        Ok(())
    }

    /// A name for the policy built from its parameters, e.g.
    /// `d6-b11-i20000-a3`: manifests name item policies by it, so one name
    /// always means one policy.
    pub fn name(&self) -> String {
        format!(
            "d{}-b{}-i{}-a{}",
            self.digits, self.tag_bits, self.iterations, self.max_attempts
        )
    }

    /// Number of possible codes, `10^digits`.
    pub fn code_space(&self) -> f64 {
        10f64.powi(i32::from(self.digits))
    }

    /// Probability that one wrong code matches the tag, `2^-tag_bits`.
    pub fn collision_probability(&self) -> f64 {
        2f64.powi(-i32::from(self.tag_bits))
    }

    /// Probability that an impostor guessing `attempts` distinct random codes
    /// is accepted: `1 − (1 − q)^attempts`, with `q = 1/N + (1 − 1/N) · 2^-b`
    /// the chance that one guess passes (the right code, or a collision).
    pub fn impostor_acceptance(&self, attempts: u32) -> f64 {
        let n = self.code_space();
        let q = 1.0 / n + (1.0 - 1.0 / n) * self.collision_probability();
        1.0 - (1.0 - q).powf(f64::from(attempts))
    }

    /// Probability that an insider who enumerates all codes against the
    /// device's tag, and submits one of the `K` matching candidates at
    /// random, submits the right one: `E[1/K]` with `K = 1 + Bin(N − 1, p)`,
    /// which is exactly `(1 − (1 − p)^N) / (N · p)`.
    pub fn insider_undetected(&self) -> f64 {
        let n = self.code_space();
        let p = self.collision_probability();
        // 1 − (1 − p)^N computed as −expm1(N · ln1p(−p)): stays exact for a
        // 256-bit tag, where the naive form rounds to 0/0.
        let hit_any = -(n * (-p).ln_1p()).exp_m1();
        (hit_any / (n * p)).min(1.0)
    }

    /// Expected candidates after brute force: `1 + (N − 1) · 2^-b`.
    pub fn expected_candidates(&self) -> f64 {
        1.0 + (self.code_space() - 1.0) * self.collision_probability()
    }

    /// All figures at once, the impostor's for `max_attempts` guesses.
    pub fn risk(&self) -> RiskFigures {
        RiskFigures {
            impostor_acceptance: self.impostor_acceptance(self.max_attempts),
            insider_undetected: self.insider_undetected(),
            typo_caught: 1.0 - self.collision_probability(),
            expected_candidates: self.expected_candidates(),
        }
    }
}

impl FromStr for Policy {
    type Err = Error;

    fn from_str(spec: &str) -> Result<Policy> {
        let spec = spec.trim();
        if spec == "strict" {
            return Ok(Policy::strict(6));
        }
        if let Some(d) = spec.strip_prefix("strict:") {
            let digits = d
                .parse::<u8>()
                .map_err(|_| Error::InvalidPolicy("strict:DIGITS needs a number"))?;
            let p = Policy::strict(digits);
            p.validate()?;
            return Ok(p);
        }
        let (mut digits, mut tag_bits, mut iterations, mut max_attempts) = (None, None, None, None);
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or(Error::InvalidPolicy("expected key=value pairs"))?;
            let bad = Error::InvalidPolicy("policy values must be whole numbers");
            match k.trim() {
                "digits" => digits = Some(v.trim().parse::<u8>().map_err(|_| bad)?),
                "tag_bits" => tag_bits = Some(v.trim().parse::<u16>().map_err(|_| bad)?),
                "iterations" => iterations = Some(v.trim().parse::<u32>().map_err(|_| bad)?),
                "max_attempts" => max_attempts = Some(v.trim().parse::<u32>().map_err(|_| bad)?),
                _ => {
                    return Err(Error::InvalidPolicy(
                        "unknown key (digits, tag_bits, iterations, max_attempts)",
                    ))
                }
            }
        }
        let digits = digits.ok_or(Error::InvalidPolicy("digits is required"))?;
        let mut p = Policy::balanced(
            digits,
            max_attempts.unwrap_or(3),
            iterations.unwrap_or(DEFAULT_ITERATIONS),
        );
        if let Some(b) = tag_bits {
            p.tag_bits = b;
        }
        p.validate()?;
        Ok(p)
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "digits={},tag_bits={},iterations={},max_attempts={}",
            self.digits, self.tag_bits, self.iterations, self.max_attempts
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn design_examples_hold() {
        // protocol.md: 6 digits, 10 bits -> 3 attempts 0.29 %, insider 0.10 %.
        let p = Policy {
            digits: 6,
            tag_bits: 10,
            iterations: 1,
            max_attempts: 3,
        };
        assert!((p.impostor_acceptance(3) - 0.0029).abs() < 0.0001);
        assert!((p.insider_undetected() - 0.00102).abs() < 0.00002);
        // 6 digits, 12 bits -> 0.07 %, 0.41 %.
        let p = Policy { tag_bits: 12, ..p };
        assert!((p.impostor_acceptance(3) - 0.00073).abs() < 0.00002);
        assert!((p.insider_undetected() - 0.0041).abs() < 0.0001);
        // 4 digits, 7 bits -> 2.3 %, 1.3 %.
        let p = Policy {
            digits: 4,
            tag_bits: 7,
            ..p
        };
        assert!((p.impostor_acceptance(3) - 0.023).abs() < 0.001);
        assert!((p.insider_undetected() - 0.0128).abs() < 0.0005);
    }

    #[test]
    fn balanced_defaults() {
        assert_eq!(Programme::Post.default_policy().tag_bits, 11);
        assert_eq!(Programme::Vaccination.default_policy().tag_bits, 7);
        Programme::Post.default_policy().validate().unwrap();
        Programme::Vaccination.default_policy().validate().unwrap();
    }

    #[test]
    fn strict_policy_figures() {
        let p = Policy::strict(6);
        let r = p.risk();
        assert!((r.impostor_acceptance - 3e-6).abs() < 1e-9);
        assert!((r.insider_undetected - 1.0).abs() < 1e-12);
        assert!((r.expected_candidates - 1.0).abs() < 1e-12);
    }

    #[test]
    fn policy_spec_parsing() {
        let p: Policy = "digits=6,tag_bits=12,iterations=1000,max_attempts=5"
            .parse()
            .unwrap();
        assert_eq!(
            p,
            Policy {
                digits: 6,
                tag_bits: 12,
                iterations: 1000,
                max_attempts: 5
            }
        );
        let p: Policy = "digits=4".parse().unwrap();
        assert_eq!(p, Policy::balanced(4, 3, DEFAULT_ITERATIONS));
        assert_eq!("strict".parse::<Policy>().unwrap(), Policy::strict(6));
        assert!("digits=9".parse::<Policy>().is_err());
        assert!("digits=6,colour=blue".parse::<Policy>().is_err());
        assert!("tag_bits=3".parse::<Policy>().is_err());
        assert!("digits=6,max_attempts=0".parse::<Policy>().is_err());
        let round: Policy = p.to_string().parse().unwrap();
        assert_eq!(round, p);
    }

    #[test]
    fn code_parsing_and_redaction() {
        assert!(Code::parse("12345", 6).is_err());
        assert!(Code::parse("12a456", 6).is_err());
        let c = Code::parse("123456", 6).unwrap();
        assert_eq!(format!("{c:?}"), "Code(<redacted>)");
        let k = CodeKey::new("k1", [9; 32]);
        assert!(!format!("{k:?}").contains('9'));
    }

    #[test]
    fn derivation_separates_domains_and_versions() {
        let k = CodeKey::new("k", [1; 32]);
        let a = derive_code(&k, Programme::Post, "X1", 1, 8).unwrap();
        let b = derive_code(&k, Programme::Vaccination, "X1", 1, 8).unwrap();
        let c = derive_code(&k, Programme::Post, "X1", 2, 8).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert!(derive_code(&k, Programme::Post, "X1", 0, 6).is_err());
        assert!(derive_code(&k, Programme::Post, "X 1", 1, 6).is_err());
        assert!(derive_code(&k, Programme::Post, "X1", 1, 3).is_err());
    }

    #[test]
    fn salts_are_bound_to_programme_reference_and_version() {
        let k = CodeKey::new("k", [1; 32]);
        let a = derive_salt(&k, Programme::Post, "X1", 1).unwrap();
        assert_eq!(a, derive_salt(&k, Programme::Post, "X1", 1).unwrap());
        assert_ne!(a, derive_salt(&k, Programme::Vaccination, "X1", 1).unwrap());
        assert_ne!(a, derive_salt(&k, Programme::Post, "X2", 1).unwrap());
        assert_ne!(a, derive_salt(&k, Programme::Post, "X1", 2).unwrap());
        assert_ne!(
            a,
            derive_salt(&CodeKey::new("k", [2; 32]), Programme::Post, "X1", 1).unwrap()
        );
        assert!(derive_salt(&k, Programme::Post, "X1", 0).is_err());
        assert_eq!(Policy::strict(6).name(), "d6-b256-i200000-a3");
    }
}
