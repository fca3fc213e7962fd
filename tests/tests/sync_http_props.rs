//! Property: whatever bytes reach the service, it answers with a JSON
//! refusal (never a 500, never a hang) and stores nothing.

use chrono::Utc;
use handover_core::api::{self, ApiError};
use handover_core::device::{Device, HttpRequest};
use handover_server::Limits;
use handover_tests::*;
use proptest::prelude::*;

fn bodies() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        // JSON-shaped junk reaches the typed parsers.
        "\\{\"[a-z_]{1,12}\":(\"[ -~]{0,20}\"|[0-9]{1,20}|\\[\\]|null)\\}"
            .prop_map(String::into_bytes),
        Just(
            br#"{"format":"handover/batch/v1","device_id":"x","device_key":"00","events":[]}"#
                .to_vec()
        ),
        Just(br#"{"held":[{"manifest_id":"m","revision":-1}]}"#.to_vec()),
        Just(
            br#"{"token_id":"0","device_key":"zz","time_ms":1,"proof":"","signature":""}"#.to_vec()
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bodies_get_a_json_refusal_and_store_nothing(
        body in bodies(),
        route in prop_oneof![Just(api::ENROL), Just(api::MANIFESTS), Just(api::BATCHES), Just(api::SMS_STATUS)],
        signed in any::<bool>(),
    ) {
        thread_local! {
            static SVC: (Service, tempfile::TempDir, Device) = {
                let svc = Service::start(Limits { per_device_per_second: 1e6, per_device_burst: 1e6, ..Limits::default() });
                let d = tempfile::tempdir().unwrap();
                let device = svc.enrolled_device(&d.path().join("a.db"), "Postman 1");
                (svc, d, device)
            };
        }
        SVC.with(|(svc, _, device)| {
            let req = if signed {
                device.signed_request("POST", route, body.clone(), "application/json", Utc::now().timestamp_millis()).unwrap()
            } else {
                HttpRequest { method: "POST", path: route, headers: vec![("content-type", "application/json".into())], body: body.clone() }
            };
            let resp = svc.link().send(&req).unwrap();
            if resp.status != 200 {
                prop_assert!(resp.status < 500, "{} on {route}", resp.status);
                let e: Result<ApiError, _> = serde_json::from_slice(&resp.body);
                prop_assert!(e.is_ok(), "not a JSON error: {:?}", String::from_utf8_lossy(&resp.body));
            }
            let rec = svc.office.device(&device.identity().device_id).unwrap();
            prop_assert_eq!(rec.head_seq, 0);
            prop_assert!(rec.flagged.is_none());
            Ok(())
        })?;
    }
}
