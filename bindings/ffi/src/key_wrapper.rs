//! `KeyWrapper`: the host keeps the device key wrapped at rest.
//!
//! The app implements it (on Android with an AES-256-GCM key in the Android
//! Keystore, in StrongBox when the phone has one; see `android/`), and
//! passes it to `HandoverDevice.openWrapped`. The core calls `wrap` once,
//! when the key is made or first wrapped, and `unwrap` at every open.

use std::sync::Arc;

use handover_core::device::KeyWrap;

/// Why the host could not wrap or unwrap the key.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum KeyWrapError {
    /// The wrapping key is missing, invalidated (e.g. the lock screen was
    /// removed) or refused the operation.
    #[error("key wrapper: {reason}")]
    Unavailable {
        /// What the host said (no key material).
        reason: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for KeyWrapError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        KeyWrapError::Unavailable { reason: e.reason }
    }
}

/// Wraps and unwraps the device key (its PKCS#8 document) with a key the
/// host holds. `unwrap(wrap(k))` must give `k` back: the core checks it
/// before it deletes a clear key.
#[uniffi::export(with_foreign)]
pub trait KeyWrapper: Send + Sync {
    /// Encrypt `key`.
    fn wrap(&self, key: Vec<u8>) -> Result<Vec<u8>, KeyWrapError>;
    /// Decrypt what `wrap` returned.
    fn unwrap(&self, wrapped: Vec<u8>) -> Result<Vec<u8>, KeyWrapError>;
}

/// The core's view of the host's wrapper.
pub(crate) struct Adapter(pub(crate) Arc<dyn KeyWrapper>);

impl KeyWrap for Adapter {
    fn wrap(&self, key: &[u8]) -> Result<Vec<u8>, String> {
        self.0.wrap(key.to_vec()).map_err(|e| e.to_string())
    }

    fn unwrap(&self, wrapped: &[u8]) -> Result<Vec<u8>, String> {
        self.0.unwrap(wrapped.to_vec()).map_err(|e| e.to_string())
    }
}
