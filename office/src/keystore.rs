//! The office's keys, in files readable only by their owner (0600) in a
//! directory only the owner can enter (0700).
//!
//! * `keys/office-signing.pk8`: the Ed25519 signing key (PKCS#8).
//! * `keys/code-<id>.key`: a 32-byte code key, hex. Codes are derived from
//!   it and never stored.

use std::fs;
use std::path::{Path, PathBuf};

use handover_core::codes::CodeKey;
use handover_core::keys::SigningKey;

use crate::error::{io, Error, Result};

const SIGNING: &str = "office-signing.pk8";

fn keys_dir(dir: &Path) -> PathBuf {
    dir.join("keys")
}

/// Create the office's keys under `dir`.
pub(crate) fn create(dir: &Path, code_key_id: &str) -> Result<(SigningKey, CodeKey)> {
    let kd = keys_dir(dir);
    crate::files::private_dir(&kd)?;
    let signing = SigningKey::generate()?;
    crate::files::create_private(&kd.join(SIGNING), signing.pkcs8())?;
    let code = CodeKey::generate(code_key_id)?;
    crate::files::create_private(
        &kd.join(format!("code-{code_key_id}.key")),
        hex::encode(code.secret_bytes()).as_bytes(),
    )?;
    Ok((signing, code))
}

/// Load the signing key.
pub(crate) fn signing_key(dir: &Path) -> Result<SigningKey> {
    let path = keys_dir(dir).join(SIGNING);
    let bytes = fs::read(&path).map_err(io(&path))?;
    SigningKey::from_pkcs8(&bytes).map_err(|_| Error::DamagedKey {
        path,
        why: "not an Ed25519 PKCS#8 document",
    })
}

/// Load the code key `id`.
pub(crate) fn code_key(dir: &Path, id: &str) -> Result<CodeKey> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(Error::Store("a code key id is not letters, digits and '-'"));
    }
    let path = keys_dir(dir).join(format!("code-{id}.key"));
    let text = fs::read_to_string(&path).map_err(io(&path))?;
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| Error::DamagedKey {
        path: path.clone(),
        why: "expected 64 hex characters",
    })?;
    Ok(CodeKey::new(id, bytes))
}
