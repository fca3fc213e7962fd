//! The crash test's worker: doorstep work on a device store, as fast as it
//! can, printing each outcome only after the call that made it returned.
//! The test kills it with SIGKILL at a random moment.
//!
//! `crash_worker DIR SEED`: the device is `DIR/device.db`; `DIR/codes.txt`
//! holds `REFERENCE CODE` lines; `DIR/manifest.bin` and `DIR/ack.bin`, when
//! present, are imported and applied now and then.

use std::io::Write;
use std::path::PathBuf;

use chrono::Utc;
use handover_core::device::{Device, VerifyOutcome};
use handover_core::event::{ExceptionReason, PaymentMethod};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().expect("DIR"));
    let mut seed: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1);
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n.max(1)
    };
    let codes: Vec<(String, String)> = std::fs::read_to_string(dir.join("codes.txt"))
        .expect("codes")
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(r, c)| (r.to_owned(), c.to_owned()))
        .collect();
    let device = Device::open(dir.join("device.db")).expect("open");
    let out = std::io::stdout();
    let mut out = out.lock();
    loop {
        let (reference, code) = &codes[next(codes.len() as u64) as usize];
        let now = Utc::now();
        let line = match next(100) {
            0..=44 => match device.verify(reference, code, now) {
                Ok(VerifyOutcome::Accepted { receipt }) => {
                    format!("accepted {reference} {}", receipt.event.seq)
                }
                Ok(_) | Err(_) => continue,
            },
            45..=69 => {
                let wrong = format!("{:06}", (code.parse::<u32>().unwrap_or(0) + 1) % 1_000_000);
                match device.verify(reference, &wrong, now) {
                    Ok(VerifyOutcome::Refused { attempts_left }) => {
                        format!("refused {reference} {attempts_left}")
                    }
                    Ok(VerifyOutcome::Locked) => format!("refused {reference} 0"),
                    Ok(_) | Err(_) => continue,
                }
            }
            70..=79 => match device.record_exception(reference, ExceptionReason::NotHome, now) {
                Ok(e) => format!("exception {reference} {}", e.seq),
                Err(_) => continue,
            },
            80..=87 => match device.record_payment(reference, PaymentMethod::Cash, now) {
                Ok(e) => format!("paid {reference} {}", e.seq),
                Err(_) => continue,
            },
            88..=91 => match std::fs::read(dir.join("manifest.bin")) {
                Ok(bytes) => match device.import_manifest(&bytes, now) {
                    Ok(o) => format!("imported {o:?}"),
                    Err(_) => continue,
                },
                Err(_) => continue,
            },
            92..=95 => match std::fs::read(dir.join("ack.bin")) {
                Ok(bytes) => match device.apply_ack(&bytes, now) {
                    Ok(s) => format!("acked {}", s.through_seq),
                    Err(_) => continue,
                },
                Err(_) => continue,
            },
            _ => match device.export_batch(1000) {
                Ok(b) => format!("exported {}", b.events.len()),
                Err(_) => continue,
            },
        };
        // Told: the outcome is committed before this line is written.
        if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
            return;
        }
    }
}
