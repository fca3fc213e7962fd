//! Key statements: framing with arbitrary bytes, and the payload parser
//! behind a valid seal (the endorsement and the old key checked after).
#![no_main]

use std::sync::OnceLock;

use handover_core::envelope::{self, Kind};
use handover_core::keys::SigningKey;
use handover_core::statement::KeyStatement;
use libfuzzer_sys::fuzz_target;

fn key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate().expect("key"))
}

fuzz_target!(|data: &[u8]| {
    let trusted = [key().public_key()];
    let _ = KeyStatement::open(data, &trusted);
    if let Ok(sealed) = envelope::seal(Kind::KeyStatement, key(), data) {
        if let Ok(s) = KeyStatement::open(&sealed, &trusted) {
            // Only a statement the trusted key sealed about itself, for
            // another key that endorsed it, is taken.
            assert_eq!(s.old_key, key().public_key());
            assert_ne!(s.new_key, s.old_key);
        }
    }
});
