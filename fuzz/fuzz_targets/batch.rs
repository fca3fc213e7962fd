//! Batches: the parser and the chain check, as the office runs them.
#![no_main]

use handover_core::event::{verify_chain, GENESIS};
use handover_core::sync::Batch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = Batch::from_bytes(data) {
        let first = batch.events.first().map_or(1, |e| e.seq);
        let _ = verify_chain(&batch.events, first, GENESIS, &batch.device_key);
        let bytes = batch.to_bytes().expect("a parsed batch serialises");
        assert_eq!(Batch::from_bytes(&bytes).expect("reparses"), batch);
    }
});
