//! Event bodies: the JSON inside each signed event. A batch's bodies are
//! parsed only behind a valid signature, so this target feeds the body
//! parser directly: whatever parses serialises back and parses to itself.
#![no_main]

use handover_core::event::{Event, EventBody};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let event = Event {
        seq: 1,
        prev_hash: [0; 32],
        body: data.to_vec(),
        hash: [0; 32],
        signature: [0; 64],
    };
    if let Ok(body) = event.parse_body() {
        let bytes = serde_json::to_vec(&body).expect("a parsed body serialises");
        let again: EventBody = serde_json::from_slice(&bytes).expect("reparses");
        assert_eq!(again, body);
    }
});
