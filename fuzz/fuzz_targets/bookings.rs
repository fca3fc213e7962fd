//! Bookings CSV, both programmes: an error names a line, or rows come back.
#![no_main]

use handover_core::codes::Programme;
use handover_office::bookings::{parse, CodPayee};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for programme in [Programme::Post, Programme::Vaccination] {
        match parse(programme, data, &CodPayee::default(), 2026) {
            Ok(rows) => assert!(!rows.is_empty()),
            Err(e) => assert!(e.to_string().starts_with("bookings line ")),
        }
    }
});
