//! The device key wrapped at rest ([`KeyWrap`]): never in the clear in the
//! database's files, the same identity through the wrapper, and a key that
//! cannot be unwrapped refused with the database left as it was.

use std::sync::Mutex;

use handover_core::device::{Device, DeviceOptions, KeyWrap};
use handover_core::Error;

/// AES-GCM stands in for the Keystore in the app; here a keyed XOR that
/// remembers what it was asked to wrap, so the test can look for it.
struct Recording {
    pad: u8,
    seen: Mutex<Vec<Vec<u8>>>,
}

impl Recording {
    fn new(pad: u8) -> Recording {
        Recording {
            pad,
            seen: Mutex::new(Vec::new()),
        }
    }
    fn seen(&self) -> Vec<Vec<u8>> {
        self.seen.lock().unwrap().clone()
    }
}

impl KeyWrap for Recording {
    fn wrap(&self, key: &[u8]) -> Result<Vec<u8>, String> {
        self.seen.lock().unwrap().push(key.to_vec());
        Ok(key.iter().map(|b| b ^ self.pad).collect())
    }
    fn unwrap(&self, wrapped: &[u8]) -> Result<Vec<u8>, String> {
        Ok(wrapped.iter().map(|b| b ^ self.pad).collect())
    }
}

struct Gone;

impl KeyWrap for Gone {
    fn wrap(&self, _: &[u8]) -> Result<Vec<u8>, String> {
        Err("keystore key invalidated".into())
    }
    fn unwrap(&self, _: &[u8]) -> Result<Vec<u8>, String> {
        Err("keystore key invalidated".into())
    }
}

/// Gives back something else than it wrapped.
struct Lossy;

impl KeyWrap for Lossy {
    fn wrap(&self, key: &[u8]) -> Result<Vec<u8>, String> {
        Ok(key.to_vec())
    }
    fn unwrap(&self, wrapped: &[u8]) -> Result<Vec<u8>, String> {
        Ok(wrapped[1..].to_vec())
    }
}

/// Every file of the database (main, log, shared memory), concatenated.
fn files(path: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        if let Ok(b) = std::fs::read(&p) {
            all.extend(b);
        }
    }
    all
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The private half of a PKCS#8 v2 Ed25519 document: the 32-byte seed
/// after the 16-byte prefix.
fn seed(pkcs8: &[u8]) -> &[u8] {
    &pkcs8[16..48]
}

#[test]
fn a_new_wrapped_store_never_holds_the_key_in_the_clear() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.db");
    let wrap = Recording::new(0xA5);
    let id = Device::open_wrapped(&path, DeviceOptions::default(), &wrap)
        .unwrap()
        .identity();
    let seen = wrap.seen();
    assert_eq!(seen.len(), 1);
    assert!(!contains(&files(&path), seed(&seen[0])));
    let again = Device::open_wrapped(&path, DeviceOptions::default(), &wrap).unwrap();
    assert_eq!(again.identity(), id);
    drop(again);
    assert!(!contains(&files(&path), seed(&seen[0])));
}

#[test]
fn a_clear_key_is_wrapped_on_first_wrapped_open_and_its_clear_copy_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.db");
    let id = Device::open(&path).unwrap().identity();
    let wrap = Recording::new(0x3C);
    let d = Device::open_wrapped(&path, DeviceOptions::default(), &wrap).unwrap();
    assert_eq!(d.identity(), id, "the same identity, now wrapped");
    let seen = wrap.seen();
    assert_eq!(seen.len(), 1);
    // While the store is open (its log not yet folded in by a close) and after.
    assert!(
        !contains(&files(&path), seed(&seen[0])),
        "the clear key is still in the database's files"
    );
    drop(d);
    assert!(!contains(&files(&path), seed(&seen[0])));
    // Without the wrapper the store no longer opens.
    assert!(matches!(Device::open(&path), Err(Error::KeyUnavailable(_))));
}

#[test]
fn a_key_that_cannot_be_unwrapped_is_refused_and_the_database_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.db");
    drop(Device::open_wrapped(&path, DeviceOptions::default(), &Recording::new(7)).unwrap());
    let before = files(&path);
    match Device::open_wrapped(&path, DeviceOptions::default(), &Gone) {
        Err(Error::KeyUnavailable(why)) => assert!(why.contains("invalidated")),
        other => panic!(
            "expected KeyUnavailable, got {:?}",
            other.map(|d| d.identity())
        ),
    }
    // A wrong wrapping key unwraps to garbage: refused too.
    assert!(matches!(
        Device::open_wrapped(&path, DeviceOptions::default(), &Recording::new(8)),
        Err(Error::KeyUnavailable(_))
    ));
    assert_eq!(before, files(&path));
    // The right one still works.
    assert!(Device::open_wrapped(&path, DeviceOptions::default(), &Recording::new(7)).is_ok());
}

#[test]
fn a_wrapper_that_does_not_round_trip_never_replaces_the_clear_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.db");
    let id = Device::open(&path).unwrap().identity();
    assert!(matches!(
        Device::open_wrapped(&path, DeviceOptions::default(), &Lossy),
        Err(Error::KeyUnavailable(_))
    ));
    assert!(matches!(
        Device::open_wrapped(&path, DeviceOptions::default(), &Gone),
        Err(Error::KeyUnavailable(_))
    ));
    assert_eq!(
        Device::open(&path).unwrap().identity(),
        id,
        "the key was kept"
    );
}

mod common;

/// The Keystore key is gone: the store's signed events still reach the
/// office without it, and the office's ack still clears them.
#[test]
fn a_store_whose_key_is_lost_still_exports_its_signed_events_and_applies_acks() {
    use common::{article, fast_policy, t0, Office};
    use handover_core::device::{RetiredOutbox, VerifyOutcome};
    use handover_core::event::ExceptionReason;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.db");
    let office = Office::new();
    let wrap = Recording::new(7);
    let (id, head) = {
        let device = Device::open_wrapped(&path, DeviceOptions::default(), &wrap).unwrap();
        device
            .trust_office_key(office.key.public_key(), t0())
            .unwrap();
        let id = device.identity();
        let items = (0..2)
            .map(|i| office.item(&article(i), 1, &fast_policy(), None))
            .collect();
        let sealed = office
            .manifest(&id.device_id, 1, items)
            .seal(&office.key)
            .unwrap();
        device.import_manifest(&sealed, t0()).unwrap();
        let code = office.code(&article(0), 1);
        assert!(matches!(
            device.verify(&article(0), &code, t0()).unwrap(),
            VerifyOutcome::Accepted { .. }
        ));
        device
            .record_exception(&article(1), ExceptionReason::NotHome, t0())
            .unwrap();
        (id, device.head().unwrap())
    };
    assert!(matches!(
        Device::open_wrapped(&path, DeviceOptions::default(), &Gone),
        Err(Error::KeyUnavailable(_))
    ));

    let retired = RetiredOutbox::open(&path).unwrap();
    assert_eq!(
        retired.identity(),
        id,
        "the office knows it by the same key"
    );
    let pending = retired.pending_count().unwrap();
    assert!(pending >= 2, "{pending}");
    let batch = retired.export_batch(1000).unwrap();
    assert_eq!(batch.device_id, id.device_id);
    assert_eq!(batch.events.len() as u64, pending);
    assert_eq!(batch.events.last().unwrap().seq, head.0);
    for event in &batch.events {
        event
            .verify(&id.public_key)
            .expect("signed by the lost key");
    }
    // An ack signed by anyone but the pinned office is refused.
    let forged = Office::new().ack(&id.device_id, head.0, head.1, vec![]);
    assert!(retired.apply_ack(&forged, t0()).is_err());
    assert_eq!(retired.pending_count().unwrap(), pending);
    let ack = office.ack(&id.device_id, head.0, head.1, vec![]);
    let applied = retired.apply_ack(&ack, t0()).unwrap();
    assert_eq!(applied.newly_acked, pending);
    assert_eq!(retired.pending_count().unwrap(), 0);
}

#[test]
fn a_retired_outbox_is_never_created_from_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("none.db");
    assert!(matches!(
        handover_core::device::RetiredOutbox::open(&path),
        Err(Error::DatabaseUnusable(_))
    ));
    assert!(!path.exists());
}
