//! The office sync API (`/v1`): what the device and the office service say
//! to each other over HTTP, defined once for both sides. The full
//! description, with status codes and error bodies, is `docs/sync-api.md`.
//!
//! * **Enrolment tokens** ([`EnrolToken`]): single-use, they name the
//!   office key they bind (its key id) and carry a 16-byte secret. The
//!   device proves it holds the token *and* its own key; the office proves
//!   it knows the token, so the device checks the office key it is given
//!   instead of trusting it on first use.
//! * **Signed requests** ([`sign_request`], [`verify_request`]): every later
//!   request carries the device id, a time, a nonce and an Ed25519 signature
//!   over the method, path, body digest, time and nonce.
//! * **Bodies**: JSON ([`EnrolRequest`], [`EnrolResponse`],
//!   [`ManifestsRequest`], [`ManifestsResponse`], [`ApiError`]); a batch is
//!   the batch JSON of [`crate::sync`], and its answer the sealed ack bytes.
//!
//! ```
//! use handover_core::api::*;
//! use handover_core::keys::SigningKey;
//! let office = SigningKey::generate().unwrap();
//! let token = EnrolToken::generate(&office.public_key()).unwrap();
//! let text = token.to_string();
//! assert_eq!(text.parse::<EnrolToken>().unwrap(), token);
//! let device = SigningKey::generate().unwrap();
//! let headers = sign_request(&device, "POST", "/v1/batches", b"{}", 1_800_000_000_000, [7; 16]);
//! let signed = SignedRequest::from_headers(|h| headers.iter().find(|(k, _)| *k == h).map(|(_, v)| v.as_str())).unwrap();
//! assert!(verify_request(&device.public_key(), "POST", "/v1/batches", b"{}", &signed).is_ok());
//! assert!(verify_request(&device.public_key(), "POST", "/v1/batches", b"{ }", &signed).is_err());
//! ```

use std::fmt;
use std::str::FromStr;

use ring::hmac;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::{sha256, PublicKey, SigningKey};

/// Path of the health check (no authentication).
pub const HEALTH: &str = "/v1/health";
/// Path of enrolment by token.
pub const ENROL: &str = "/v1/enrol";
/// Path of the manifest pull (signed).
pub const MANIFESTS: &str = "/v1/manifests";
/// Path of the batch push (signed); the answer is the sealed ack.
pub const BATCHES: &str = "/v1/batches";
/// Path of the SMS gateway's delivery reports (shared secret).
pub const SMS_STATUS: &str = "/v1/sms/status";
/// Path of Prometheus metrics.
pub const METRICS: &str = "/metrics";

/// Header carrying the device id of a signed request.
pub const H_DEVICE: &str = "handover-device";
/// Header carrying the request time, milliseconds since the Unix epoch.
pub const H_TIME: &str = "handover-time";
/// Header carrying the request nonce, 32 hex characters.
pub const H_NONCE: &str = "handover-nonce";
/// Header carrying the Ed25519 signature, 128 hex characters.
pub const H_SIGNATURE: &str = "handover-signature";

/// How far a request's time may be from the office's clock.
pub const REQUEST_WINDOW_MS: i64 = 5 * 60 * 1000;

/// Bytes of an enrolment token's secret.
pub const TOKEN_SECRET_LEN: usize = 16;

const REQUEST_LABEL: &str = "handover/request/v1";

/// A single-use enrolment token: the key id of the office key it binds, and
/// a secret. Written as `<key id>.<secret in lowercase base32>` (43
/// characters). `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct EnrolToken {
    key_id: String,
    secret: Zeroizing<[u8; TOKEN_SECRET_LEN]>,
}

impl EnrolToken {
    /// A fresh token binding `office_key`.
    pub fn generate(office_key: &PublicKey) -> Result<EnrolToken> {
        let mut secret = [0u8; TOKEN_SECRET_LEN];
        crate::keys::fill_random(&mut secret)?;
        Ok(EnrolToken {
            key_id: office_key.key_id(),
            secret: Zeroizing::new(secret),
        })
    }

    /// The key id of the office key the token binds.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The id the office files the token under:
    /// `hex(SHA-256("handover/enrol-token-id/v1" || secret)[..8])`.
    pub fn token_id(&self) -> String {
        hex::encode(&sha256(&[b"handover/enrol-token-id/v1", &self.secret[..]])[..8])
    }

    /// The key both sides prove knowledge of the token with:
    /// `HMAC-SHA256(secret, "handover/enrol-key/v1")`. The office stores
    /// this, never the secret.
    pub fn proof_key(&self) -> [u8; 32] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.secret[..]);
        let tag = hmac::sign(&key, b"handover/enrol-key/v1");
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Whether `office_key` is the key this token binds.
    pub fn binds(&self, office_key: &PublicKey) -> bool {
        office_key.key_id() == self.key_id
    }
}

impl fmt::Debug for EnrolToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrolToken")
            .field("key_id", &self.key_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl fmt::Display for EnrolToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.key_id, base32(&self.secret[..]))
    }
}

impl FromStr for EnrolToken {
    type Err = Error;
    fn from_str(s: &str) -> Result<EnrolToken> {
        let bad = || {
            Error::invalid(
                "enrolment token",
                "expected KEYID.SECRET as printed by the office",
            )
        };
        let (key_id, secret) = s.trim().split_once('.').ok_or_else(bad)?;
        if key_id.len() != 16 || !key_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let bytes = unbase32(secret).ok_or_else(bad)?;
        let secret: [u8; TOKEN_SECRET_LEN] = bytes.try_into().map_err(|_| bad())?;
        Ok(EnrolToken {
            key_id: key_id.to_ascii_lowercase(),
            secret: Zeroizing::new(secret),
        })
    }
}

const B32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// RFC 4648 base32, lowercase, no padding.
fn base32(bytes: &[u8]) -> String {
    let mut out = String::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(B32[((acc >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(B32[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

fn unbase32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = B32.iter().position(|&x| x == c.to_ascii_lowercase())? as u32;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (acc == 0).then_some(out)
}

fn mac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&key);
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            ctx.update(&[0]);
        }
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

/// The device's proof that it holds the token:
/// `HMAC(proof_key, "handover/enrol-request/v1" 0 device_key 0 u64be(time_ms))`.
pub fn enrol_request_proof(proof_key: &[u8; 32], device_key: &PublicKey, time_ms: i64) -> [u8; 32] {
    mac(
        proof_key,
        &[
            b"handover/enrol-request/v1",
            device_key.as_bytes(),
            &time_ms.to_be_bytes(),
        ],
    )
}

/// What the device signs with its own key when it enrols:
/// `"handover/enrol/v1" 0 token_id 0 device_key 0 u64be(time_ms)`.
pub fn enrol_signed_message(token_id: &str, device_key: &PublicKey, time_ms: i64) -> Vec<u8> {
    [
        &b"handover/enrol/v1"[..],
        &[0],
        token_id.as_bytes(),
        &[0],
        device_key.as_bytes(),
        &[0],
        &time_ms.to_be_bytes(),
    ]
    .concat()
}

/// The office's proof that it knows the token, binding its key to the
/// device: `HMAC(proof_key, "handover/enrol-response/v1" 0 office_key 0 device_key)`.
pub fn enrol_key_proof(
    proof_key: &[u8; 32],
    office_key: &PublicKey,
    device_key: &PublicKey,
) -> [u8; 32] {
    mac(
        proof_key,
        &[
            b"handover/enrol-response/v1",
            office_key.as_bytes(),
            device_key.as_bytes(),
        ],
    )
}

/// `POST /v1/enrol`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    /// [`EnrolToken::token_id`].
    pub token_id: String,
    /// The device's public key.
    pub device_key: PublicKey,
    /// Milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// [`enrol_request_proof`], hex.
    pub proof: String,
    /// Ed25519 over [`enrol_signed_message`], hex.
    pub signature: String,
}

impl EnrolRequest {
    /// The request a device holding `token` and `device` makes at `time_ms`.
    pub fn new(token: &EnrolToken, device: &SigningKey, time_ms: i64) -> EnrolRequest {
        let key = device.public_key();
        let token_id = token.token_id();
        EnrolRequest {
            proof: hex::encode(enrol_request_proof(&token.proof_key(), &key, time_ms)),
            signature: hex::encode(device.sign(&enrol_signed_message(&token_id, &key, time_ms))),
            token_id,
            device_key: key,
            time_ms,
        }
    }

    /// Check the token proof against the office's stored `proof_key`, and
    /// the device's signature (possession of its key).
    pub fn verify(&self, proof_key: &[u8; 32]) -> Result<()> {
        let want = enrol_request_proof(proof_key, &self.device_key, self.time_ms);
        let got = hex::decode(&self.proof)
            .map_err(|_| Error::malformed("enrolment", "proof is not hex"))?;
        if !crate::rules::constant_time_eq(&want, &got) {
            return Err(Error::BadSignature("enrolment token proof"));
        }
        let sig = hex::decode(&self.signature)
            .map_err(|_| Error::malformed("enrolment", "signature is not hex"))?;
        self.device_key
            .verify(
                &enrol_signed_message(&self.token_id, &self.device_key, self.time_ms),
                &sig,
            )
            .map_err(|_| Error::BadSignature("enrolment request"))
    }
}

/// The answer to an enrolment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolResponse {
    /// The device's id at the office.
    pub device_id: String,
    /// Who carries it.
    pub assignee: String,
    /// The office.
    pub office_id: String,
    /// The office signing key to pin.
    pub office_key: PublicKey,
    /// [`enrol_key_proof`], hex.
    pub key_proof: String,
}

impl EnrolResponse {
    /// Check, with the token the device holds, that `office_key` is the key
    /// the token binds and that the office knew the token.
    pub fn verify(&self, token: &EnrolToken, device_key: &PublicKey) -> Result<()> {
        if !token.binds(&self.office_key) {
            return Err(Error::UntrustedKey);
        }
        let want = enrol_key_proof(&token.proof_key(), &self.office_key, device_key);
        let got = hex::decode(&self.key_proof)
            .map_err(|_| Error::malformed("enrolment response", "proof is not hex"))?;
        if !crate::rules::constant_time_eq(&want, &got) {
            return Err(Error::BadSignature("office key proof"));
        }
        if self.device_id != device_key.device_id() {
            return Err(Error::WrongDevice);
        }
        Ok(())
    }
}

/// A manifest the device reports holding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Held {
    /// Manifest id.
    pub manifest_id: String,
    /// Highest revision held.
    pub revision: u32,
}

/// `POST /v1/manifests`: what the device holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestsRequest {
    /// Manifests held, with their revisions.
    pub held: Vec<Held>,
    /// The seq through which the office has acknowledged this device's
    /// events, as the device knows it. An office that holds less (restored
    /// from a backup, failed over to a standby that was behind) answers
    /// with [`ManifestsResponse::need_seq`]. Absent from older devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_through: Option<u64>,
    /// The ids of the office keys the device trusts. An office whose key
    /// changed since answers with the statements the device lacks
    /// ([`ManifestsResponse::key_statements`]). Absent from older devices,
    /// which are sent none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub office_keys: Option<Vec<String>>,
}

/// One sealed manifest, base64 (standard alphabet, padded).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServedManifest {
    /// Manifest id.
    pub manifest_id: String,
    /// Revision.
    pub revision: u32,
    /// The sealed bytes, base64.
    pub sealed: String,
}

impl fmt::Debug for ServedManifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServedManifest")
            .field("manifest_id", &self.manifest_id)
            .field("revision", &self.revision)
            .finish_non_exhaustive()
    }
}

/// The device's live manifests newer than what it holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestsResponse {
    /// Newest revision of each, oldest window first.
    pub manifests: Vec<ServedManifest>,
    /// Only when the request's `acknowledged_through` is beyond what the
    /// office holds of this device's chain: the seq the office needs next.
    /// The device resends from there (as after a `gap`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub need_seq: Option<u64>,
    /// The office's key statements the device lacks, oldest first, sealed,
    /// base64 ([`crate::statement`]): take them before the manifests,
    /// which the newest key signs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_statements: Vec<String>,
}

/// The stable code of every refusal (`docs/sync-api.md`), on the wire as
/// its snake_case name. A code this build does not know reads as
/// [`ErrorCode::Unknown`], so a newer office never breaks an older device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// 400: not the request the route takes.
    Malformed,
    /// 401: no such enrolment token, or its proofs do not check out.
    UnknownToken,
    /// 409: the token enrolled another device.
    TokenUsed,
    /// 410: the token has expired.
    TokenExpired,
    /// 409: the device is enrolled already; the token was not used.
    AlreadyEnrolled,
    /// 413: the body is larger than the route takes.
    TooLarge,
    /// 429: too many requests; `Retry-After` says when to try again.
    RateLimited,
    /// 401: the signed-request headers are missing or not canonical.
    MissingSignature,
    /// 401: no device enrolled with that id.
    UnknownDevice,
    /// 401: the request's signature does not check out.
    BadSignature,
    /// 403: the device is revoked.
    Revoked,
    /// 401: the request's time is more than five minutes from the office's.
    StaleRequest,
    /// 401: the nonce was seen before.
    ReplayedRequest,
    /// 403: a batch of another device.
    WrongDevice,
    /// 409: a second signed chain at a held seq; the device is flagged.
    Fork,
    /// 409: the batch starts after the office's head; `need_seq` says
    /// where the office's chain for the device ends (it lost events: the
    /// device resends them).
    Gap,
    /// 422: an event fails its hash, signature or chain.
    BadEvent,
    /// 401: the SMS delivery report's secret is wrong.
    BadSecret,
    /// 404: no such route (or delivery reports not configured).
    NotFound,
    /// 405: the route does not take that method.
    MethodNotAllowed,
    /// 408: the request took too long.
    Timeout,
    /// 500: the office could not complete the request.
    Internal,
    /// 503: the office's database cannot be reached now (its connections
    /// are all busy, or it is restarting); `Retry-After` says when to try
    /// again. Nothing of the request was kept.
    Unavailable,
    /// A code this build does not know, or an answer that is not an error
    /// body (`unexpected_response` in messages).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The snake_case name, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Malformed => "malformed",
            ErrorCode::UnknownToken => "unknown_token",
            ErrorCode::TokenUsed => "token_used",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::AlreadyEnrolled => "already_enrolled",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::MissingSignature => "missing_signature",
            ErrorCode::UnknownDevice => "unknown_device",
            ErrorCode::BadSignature => "bad_signature",
            ErrorCode::Revoked => "revoked",
            ErrorCode::StaleRequest => "stale_request",
            ErrorCode::ReplayedRequest => "replayed_request",
            ErrorCode::WrongDevice => "wrong_device",
            ErrorCode::Fork => "fork",
            ErrorCode::Gap => "gap",
            ErrorCode::BadEvent => "bad_event",
            ErrorCode::BadSecret => "bad_secret",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Internal => "internal",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Unknown => "unexpected_response",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an answer with `status` is worth trying again later, as the
/// API says (`docs/sync-api.md`, *What a client does*): 408, 429, 500, 502,
/// 503 and 504. Every client of the office, and the SMS senders of the
/// office's gateways, use this one rule.
pub fn retry_later(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// Every error body: a stable machine code and a sentence for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// Stable code, e.g. `unknown_device`, `stale_request`, `fork`.
    pub error: ErrorCode,
    /// One sentence, no personal data.
    pub message: String,
    /// The office's clock, milliseconds since the epoch (on `stale_request`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_time_ms: Option<i64>,
    /// The seq the office needs next (on `gap`): it holds this device's
    /// chain up to the seq before. A device that holds the events from
    /// there resends them ([`Batch::acks`](crate::sync::Batch::acks)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub need_seq: Option<u64>,
}

/// The signing fields of a request, as carried in its headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedRequest {
    /// The device id.
    pub device_id: String,
    /// Milliseconds since the epoch.
    pub time_ms: i64,
    /// 16 random bytes.
    pub nonce: [u8; 16],
    /// Ed25519 signature.
    pub signature: [u8; 64],
}

impl SignedRequest {
    /// Read the four headers through `get` (names as [`H_DEVICE`] etc.).
    /// Only the canonical forms are taken: the time in decimal without a
    /// sign, leading zeros or spaces; the nonce and signature in lowercase
    /// hex. The signed text is made from these values, so another spelling
    /// of a header would be another request under the same signature.
    pub fn from_headers<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<SignedRequest> {
        let missing = |h: &'static str| Error::malformed("request signature", h);
        let device_id = get(H_DEVICE).ok_or(missing("no handover-device header"))?;
        crate::rules::check_id("device id", device_id)?;
        let time = get(H_TIME).ok_or(missing("no handover-time header"))?;
        let time_ms = time
            .parse::<i64>()
            .ok()
            .filter(|t| t.to_string() == time)
            .ok_or(missing("handover-time is not milliseconds in decimal"))?;
        let mut nonce = [0u8; 16];
        lower_hex(
            get(H_NONCE).ok_or(missing("no handover-nonce header"))?,
            &mut nonce,
        )
        .ok_or(missing("handover-nonce is not 32 lowercase hex characters"))?;
        let mut signature = [0u8; 64];
        lower_hex(
            get(H_SIGNATURE).ok_or(missing("no handover-signature header"))?,
            &mut signature,
        )
        .ok_or(missing(
            "handover-signature is not 128 lowercase hex characters",
        ))?;
        Ok(SignedRequest {
            device_id: device_id.to_owned(),
            time_ms,
            nonce,
            signature,
        })
    }
}

/// Decode `text`, which must be exactly `out`'s bytes in lowercase hex.
fn lower_hex(text: &str, out: &mut [u8]) -> Option<()> {
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    hex::decode_to_slice(text, out).ok()
}

/// The text a request signature covers:
/// `"handover/request/v1\n" METHOD "\n" PATH "\n" hex(SHA-256(body)) "\n" time_ms "\n" hex(nonce) "\n" device_id`.
pub fn request_message(
    method: &str,
    path: &str,
    body: &[u8],
    time_ms: i64,
    nonce: &[u8; 16],
    device_id: &str,
) -> Vec<u8> {
    format!(
        "{REQUEST_LABEL}\n{method}\n{path}\n{}\n{time_ms}\n{}\n{device_id}",
        hex::encode(sha256(&[body])),
        hex::encode(nonce)
    )
    .into_bytes()
}

/// Sign a request; returns the four headers to send.
pub fn sign_request(
    key: &SigningKey,
    method: &str,
    path: &str,
    body: &[u8],
    time_ms: i64,
    nonce: [u8; 16],
) -> Vec<(&'static str, String)> {
    let device_id = key.public_key().device_id();
    let sig = key.sign(&request_message(
        method, path, body, time_ms, &nonce, &device_id,
    ));
    vec![
        (H_DEVICE, device_id),
        (H_TIME, time_ms.to_string()),
        (H_NONCE, hex::encode(nonce)),
        (H_SIGNATURE, hex::encode(sig)),
    ]
}

/// Check a request's signature against the device's enrolled key. Time and
/// nonce freshness are the office's to check against its clock and store.
pub fn verify_request(
    key: &PublicKey,
    method: &str,
    path: &str,
    body: &[u8],
    signed: &SignedRequest,
) -> Result<()> {
    if key.device_id() != signed.device_id {
        return Err(Error::WrongDevice);
    }
    let msg = request_message(
        method,
        path,
        body,
        signed.time_ms,
        &signed.nonce,
        &signed.device_id,
    );
    key.verify(&msg, &signed.signature)
        .map_err(|_| Error::BadSignature("request"))
}

/// Encode sealed bytes for JSON.
pub fn to_base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decode base64 from JSON.
pub fn from_base64(text: &str) -> Result<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| Error::malformed("manifest", "not base64"))
}

/// What an enrolment QR code holds: `handover:enrol?server=URL&token=TOKEN`
/// (both percent-encoded), or the token alone when the office's address is
/// not known. The Android library's `EnrolmentCode` reads it.
pub fn enrol_code(server: Option<&str>, token: &str) -> String {
    match server {
        Some(url) => format!(
            "handover:enrol?server={}&token={}",
            percent_encode(url),
            percent_encode(token)
        ),
        None => token.to_owned(),
    }
}

/// Percent-encode every byte but RFC 3986's unreserved characters (for a
/// value in a URL's query or path: the enrolment QR code, a gateway's URL).
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_round_trips_and_refuses_junk() {
        for n in 0..40u8 {
            let bytes: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(unbase32(&base32(&bytes)).unwrap(), bytes);
        }
        assert_eq!(base32(b"foobar"), "mzxw6ytboi");
        assert!(unbase32("mzxw6ytbo1").is_none());
    }

    #[test]
    fn enrolment_proofs_bind_token_device_and_office() {
        let office = SigningKey::generate().unwrap();
        let device = SigningKey::generate().unwrap();
        let token = EnrolToken::generate(&office.public_key()).unwrap();
        let req = EnrolRequest::new(&token, &device, 1000);
        req.verify(&token.proof_key()).unwrap();
        let other = EnrolToken::generate(&office.public_key()).unwrap();
        assert!(req.verify(&other.proof_key()).is_err());
        let mut forged = req.clone();
        forged.time_ms += 1;
        assert!(forged.verify(&token.proof_key()).is_err());
        let resp = EnrolResponse {
            device_id: device.public_key().device_id(),
            assignee: "P".into(),
            office_id: "PO".into(),
            office_key: office.public_key(),
            key_proof: hex::encode(enrol_key_proof(
                &token.proof_key(),
                &office.public_key(),
                &device.public_key(),
            )),
        };
        resp.verify(&token, &device.public_key()).unwrap();
        // A man in the middle with his own key fails either check.
        let mitm = SigningKey::generate().unwrap();
        let swapped = EnrolResponse {
            office_key: mitm.public_key(),
            ..resp.clone()
        };
        assert!(swapped.verify(&token, &device.public_key()).is_err());
        assert!(!format!("{token:?}").contains(&token.to_string()[17..]));
    }
}
