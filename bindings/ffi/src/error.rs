//! The one public error enum, and the one place core errors map to it.
//!
//! Messages name what went wrong and never carry codes, keys, names,
//! addresses or references: the core's messages are already free of them,
//! and nothing is added here.

use handover_core::Error as Core;

/// What an app can be told went wrong. Kotlin sees a sealed
/// `HandoverException` with one subclass per variant.
///
/// Flat: Kotlin's exception message is the sentence below (`refused: …`),
/// not a dump of fields.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum HandoverError {
    /// The input was malformed or invalid (bad bytes, bad field, bad key).
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// What was wrong.
        reason: String,
    },
    /// Signed input was refused: bad or untrusted signature, another
    /// device's, an old revision, an expired manifest, an ack that does not
    /// match this device's outbox.
    #[error("refused: {reason}")]
    Refused {
        /// Why.
        reason: String,
    },
    /// No such item on this device.
    #[error("no such item on this device")]
    UnknownItem,
    /// The operation does not apply to the item in its state.
    #[error("not allowed: {reason}")]
    NotAllowed {
        /// Why.
        reason: String,
    },
    /// The device key is wrapped at rest and the key wrapper could not
    /// unwrap it (its key is gone or invalidated), or the store was opened
    /// without its wrapper. The database was left untouched.
    #[error("device key unavailable: {reason}")]
    KeyUnavailable {
        /// Why.
        reason: String,
    },
    /// The database cannot be used; it was left untouched.
    #[error("storage: {reason}")]
    Storage {
        /// What failed.
        reason: String,
    },
}

impl From<Core> for HandoverError {
    fn from(e: Core) -> Self {
        let reason = e.to_string();
        match e {
            Core::Malformed { .. }
            | Core::Invalid { .. }
            | Core::InvalidPolicy(_)
            | Core::InvalidS10(_)
            | Core::Encoding(_) => HandoverError::InvalidInput { reason },
            Core::BadSignature(_)
            | Core::UntrustedKey
            | Core::WrongDevice
            | Core::ManifestExpired
            | Core::StaleRevision { .. }
            | Core::VerifierChanged
            | Core::ChainBroken(_)
            | Core::AckMismatch(_)
            | Core::Office { .. } => HandoverError::Refused { reason },
            Core::UnknownItem => HandoverError::UnknownItem,
            Core::KeyUnavailable(_) => HandoverError::KeyUnavailable { reason },
            Core::NotAllowed(_) | Core::ClockBehind => HandoverError::NotAllowed { reason },
            Core::DatabaseUnusable(_)
            | Core::SchemaTooNew { .. }
            | Core::Sqlite(_)
            | Core::Crypto(_) => HandoverError::Storage { reason },
            // The core's enum is non-exhaustive: a new kind is a storage-level
            // failure until it is mapped here.
            _ => HandoverError::Storage { reason },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_maps_to_its_family() {
        assert!(matches!(
            HandoverError::from(Core::UntrustedKey),
            HandoverError::Refused { .. }
        ));
        assert!(matches!(
            HandoverError::from(Core::StaleRevision {
                held: 2,
                offered: 1
            }),
            HandoverError::Refused { .. }
        ));
        assert!(matches!(
            HandoverError::from(Core::InvalidS10("x")),
            HandoverError::InvalidInput { .. }
        ));
        assert!(matches!(
            HandoverError::from(Core::UnknownItem),
            HandoverError::UnknownItem
        ));
        assert!(matches!(
            HandoverError::from(Core::NotAllowed("x")),
            HandoverError::NotAllowed { .. }
        ));
        assert!(matches!(
            HandoverError::from(Core::DatabaseUnusable("x".into())),
            HandoverError::Storage { .. }
        ));
    }
}
