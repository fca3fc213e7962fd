//! The office's keys, in files readable only by their owner (0600) in a
//! directory only the owner can enter (0700).
//!
//! * `keys/office-signing.pk8`: the Ed25519 signing key (PKCS#8).
//! * `keys/code-<id>.key`: a 32-byte code key, hex. Codes are derived from
//!   it and never stored. There may be several (`k1`, `k2`, …): the store
//!   records the current one (`meta.code_key_id`, for new codes) and the
//!   key each code was issued under (`codes.code_key_id`), and a code is
//!   always derived again from its own ([`CodeKeys`]). `handover office
//!   rotate-code-key` adds one ([`create_code_key`]); none is ever removed
//!   while a code made from it may still be handed over or resent.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

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
    let code = create_code_key(dir, code_key_id)?;
    Ok((signing, code))
}

/// Make code key `id` and write it (0600); refuses one that exists.
pub(crate) fn create_code_key(dir: &Path, id: &str) -> Result<CodeKey> {
    check_code_key_id(id)?;
    let code = CodeKey::generate(id)?;
    crate::files::create_private(
        &code_key_path(dir, id),
        hex::encode(code.secret_bytes()).as_bytes(),
    )?;
    Ok(code)
}

/// The id after the highest `k<N>` code key in `dir/keys` (and after
/// `current`): `k2` after `k1`.
pub(crate) fn next_code_key_id(dir: &Path, current: &str) -> Result<String> {
    let number = |id: &str| id.strip_prefix('k').and_then(|n| n.parse::<u32>().ok());
    let kd = keys_dir(dir);
    let mut highest = number(current).unwrap_or(0);
    for entry in fs::read_dir(&kd).map_err(io(&kd))? {
        let entry = entry.map_err(io(&kd))?;
        let name = entry.file_name();
        let id = name
            .to_str()
            .and_then(|n| n.strip_prefix("code-"))
            .and_then(|n| n.strip_suffix(".key"));
        if let Some(n) = id.and_then(number) {
            highest = highest.max(n);
        }
    }
    let next = highest
        .checked_add(1)
        .ok_or(Error::Store("no code key id is left"))?;
    Ok(format!("k{next}"))
}

fn check_code_key_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(Error::Store("a code key id is not letters, digits and '-'"));
    }
    Ok(())
}

fn code_key_path(dir: &Path, id: &str) -> PathBuf {
    keys_dir(dir).join(format!("code-{id}.key"))
}

/// Load the signing key.
pub(crate) fn signing_key(dir: &Path) -> Result<SigningKey> {
    signing_key_at(&keys_dir(dir).join(SIGNING))
}

/// Where a rotation writes the new signing key before it is recorded.
pub(crate) fn signing_next_path(dir: &Path) -> PathBuf {
    keys_dir(dir).join("office-signing.next.pk8")
}

/// Make the new signing key the office's: one rename over the old file
/// (whose private key is then gone), the directory synced.
pub(crate) fn promote_signing_next(dir: &Path) -> Result<()> {
    let kd = keys_dir(dir);
    let (from, to) = (signing_next_path(dir), kd.join(SIGNING));
    fs::rename(&from, &to).map_err(io(&to))?;
    fs::File::open(&kd)
        .and_then(|d| d.sync_all())
        .map_err(io(&kd))
}

/// Load a signing key file.
pub(crate) fn signing_key_at(path: &Path) -> Result<SigningKey> {
    let path = path.to_owned();
    let bytes = fs::read(&path).map_err(io(&path))?;
    SigningKey::from_pkcs8(&bytes).map_err(|_| Error::DamagedKey {
        path,
        why: "not an Ed25519 PKCS#8 document",
    })
}

/// Load the code key `id`.
fn code_key(dir: &Path, id: &str) -> Result<CodeKey> {
    check_code_key_id(id)?;
    let path = code_key_path(dir, id);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::CodeKeyMissing { id: id.to_owned() })
        }
        Err(e) => return Err(io(&path)(e)),
    };
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| Error::DamagedKey {
        path: path.clone(),
        why: "expected 64 hex characters",
    })?;
    Ok(CodeKey::new(id, bytes))
}

/// The office's code keys by id, each loaded from `keys/` the first time a
/// code needs it, then kept (the files do not change: a key is made once
/// and never rewritten).
pub(crate) struct CodeKeys {
    dir: PathBuf,
    loaded: RwLock<HashMap<String, Arc<CodeKey>>>,
}

impl CodeKeys {
    /// The keys of the office in `dir`; none loaded yet.
    pub(crate) fn new(dir: &Path) -> CodeKeys {
        CodeKeys {
            dir: dir.to_owned(),
            loaded: RwLock::default(),
        }
    }

    /// Code key `id`: [`Error::CodeKeyMissing`] when this office directory
    /// does not hold it (another server made it and it was not copied).
    pub(crate) fn get(&self, id: &str) -> Result<Arc<CodeKey>> {
        // A panic while the map was held cannot leave it half-written: an
        // insert is one step.
        if let Some(k) = self
            .loaded
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
        {
            return Ok(Arc::clone(k));
        }
        let key = Arc::new(code_key(&self.dir, id)?);
        self.loaded
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_owned(), Arc::clone(&key));
        Ok(key)
    }
}
