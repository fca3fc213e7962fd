//! Manifests: the envelope framing with arbitrary bytes, and the JSON
//! payload parser and validator behind a valid signature (signing the fuzz
//! input is what lets the fuzzer reach the parser at all).
#![no_main]

use std::sync::OnceLock;

use handover_core::envelope::{self, Kind};
use handover_core::keys::SigningKey;
use handover_core::manifest::Manifest;
use libfuzzer_sys::fuzz_target;

fn key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate().expect("key"))
}

fuzz_target!(|data: &[u8]| {
    let trusted = [key().public_key()];
    let _ = Manifest::open(data, &trusted);
    if let Ok(sealed) = envelope::seal(Kind::Manifest, key(), data) {
        if let Ok(m) = Manifest::open(&sealed, &trusted) {
            // Whatever parses and validates must seal and open to itself.
            let again = m.seal(key()).expect("a valid manifest seals");
            assert_eq!(Manifest::open(&again, &trusted).expect("reopens"), m);
        }
    }
});
