//! The sync service's inputs besides batches: enrolment and manifest
//! requests (JSON), the signed-request headers, and the device's view of
//! the office's answers. Nothing panics; whatever parses round-trips, and
//! signed headers parse only in their canonical spelling.
#![no_main]

use handover_core::api::{
    ApiError, EnrolRequest, EnrolResponse, EnrolToken, ManifestsRequest, ManifestsResponse,
    SignedRequest,
};
use libfuzzer_sys::fuzz_target;

fn round_trip<T>(data: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    if let Ok(v) = serde_json::from_slice::<T>(data) {
        let bytes = serde_json::to_vec(&v).expect("serialises");
        assert_eq!(serde_json::from_slice::<T>(&bytes).expect("reparses"), v);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<EnrolRequest>(data);
    round_trip::<ManifestsRequest>(data);
    round_trip::<EnrolResponse>(data);
    round_trip::<ManifestsResponse>(data);
    round_trip::<ApiError>(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = text.parse::<EnrolToken>();
        let parts: Vec<&str> = text.splitn(4, '\n').collect();
        let get = |h: &str| match h {
            "handover-device" => parts.first().copied(),
            "handover-time" => parts.get(1).copied(),
            "handover-nonce" => parts.get(2).copied(),
            "handover-signature" => parts.get(3).copied(),
            _ => None,
        };
        // Only the canonical spelling is taken: what parses prints back
        // exactly as it came.
        if let Ok(signed) = SignedRequest::from_headers(get) {
            let lower_hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
            assert_eq!(Some(signed.time_ms.to_string().as_str()), parts.get(1).copied());
            assert_eq!(Some(lower_hex(&signed.nonce).as_str()), parts.get(2).copied());
            assert_eq!(Some(lower_hex(&signed.signature).as_str()), parts.get(3).copied());
        }
    }
});
