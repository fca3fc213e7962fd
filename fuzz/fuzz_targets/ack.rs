//! Acks: framing with arbitrary bytes, and the payload parser behind a valid signature.
#![no_main]

use std::sync::OnceLock;

use handover_core::envelope::{self, Kind};
use handover_core::keys::SigningKey;
use handover_core::sync::Ack;
use libfuzzer_sys::fuzz_target;

fn key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate().expect("key"))
}

fuzz_target!(|data: &[u8]| {
    let trusted = [key().public_key()];
    let _ = Ack::open(data, &trusted);
    if let Ok(sealed) = envelope::seal(Kind::Ack, key(), data) {
        if let Ok(ack) = Ack::open(&sealed, &trusted) {
            assert!(ack.verdicts.iter().all(|v| v.seq >= 1 && v.seq <= ack.through_seq));
        }
    }
});
