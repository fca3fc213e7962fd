//! No time, however extreme, makes the device store panic: every call with
//! a `now` anywhere in chrono's range (the ends included), any retention
//! and any clock tolerance either works or returns a typed error. Over the
//! FFI a panic would surface as an undocumented `InternalException`.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::*;
use handover_core::device::{Device, DeviceOptions};
use handover_core::event::{ExceptionReason, PaymentMethod};
use proptest::prelude::*;

fn any_time() -> impl Strategy<Value = DateTime<Utc>> {
    let (min, max) = (
        DateTime::<Utc>::MIN_UTC.timestamp_millis(),
        DateTime::<Utc>::MAX_UTC.timestamp_millis(),
    );
    prop_oneof![
        Just(DateTime::<Utc>::MIN_UTC),
        Just(DateTime::<Utc>::MAX_UTC),
        (min..=max).prop_map(|ms| DateTime::from_timestamp_millis(ms).unwrap()),
        (-86_400_000i64..86_400_000).prop_map(|d| t0() + Duration::milliseconds(d)),
    ]
}

fn any_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::MAX),
        Just(Duration::MIN),
        Just(Duration::zero()),
        any::<i64>().prop_map(Duration::milliseconds),
        (0i64..400).prop_map(Duration::days),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_call_at_any_time_returns_without_panicking(
        times in proptest::collection::vec(any_time(), 8),
        retention in any_duration(),
        tolerance in any_duration(),
    ) {
        let d = tempfile::tempdir().unwrap();
        let office = Office::new();
        drop(loaded_device(d.path(), &office, 3));
        let run = std::panic::catch_unwind(|| {
            let device = Device::open_with(
                d.path().join("device.db"),
                DeviceOptions { clock_tolerance: tolerance },
            )
            .unwrap();
            let (a, b) = (article(0), article(1));
            let _ = device.verify(&a, &office.code(&a, 1), times[0]);
            let _ = device.verify(&b, "000000", times[1]);
            let _ = device.record_exception(&b, ExceptionReason::NotHome, times[2]);
            let _ = device.record_payment(&a, PaymentMethod::Cash, times[3]);
            let _ = device.upi_request(&a, times[4]);
            let (seq, hash) = device.head().unwrap();
            let ack = office.ack(&device.identity().device_id, seq, hash, vec![]);
            let _ = device.apply_ack(&ack, times[5]);
            let _ = device.purge(retention, times[6]);
            let m = office.manifest(&device.identity().device_id, 2, vec![]);
            let _ = device.import_manifest(&m.seal(&office.key).unwrap(), times[7]);
            device.events().unwrap().len()
        });
        prop_assert!(run.is_ok(), "a call panicked");
    }
}
