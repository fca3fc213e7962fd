//! Published test vectors, made by an independent implementation
//! (`scripts/gen-vectors.py`), checked against the Rust code.

use handover_core::codes::{derive_code, derive_salt, Code, CodeKey, Policy, Programme};
use handover_core::envelope::{self, Kind};
use handover_core::event::{verify_chain, ChainCursor, Event, EventBody, GENESIS};
use handover_core::keys::SigningKey;
use handover_core::manifest::Manifest;
use handover_core::sync::{Ack, Batch};
use handover_core::verifier::Verifier;
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn code_vectors() {
    let v = load("codes.json");
    let cases = v["codes"].as_array().unwrap();
    assert!(cases.len() >= 100);
    for c in cases {
        let mut key = [0u8; 32];
        hex::decode_to_slice(c["key"].as_str().unwrap(), &mut key).unwrap();
        let programme: Programme = c["programme"].as_str().unwrap().parse().unwrap();
        let code = derive_code(
            &CodeKey::new("v", key),
            programme,
            c["reference"].as_str().unwrap(),
            c["code_version"].as_u64().unwrap() as u32,
            c["digits"].as_u64().unwrap() as u8,
        )
        .unwrap();
        assert_eq!(code.as_str(), c["code"].as_str().unwrap(), "{c}");
    }
}

#[test]
fn verifier_vectors() {
    let v = load("verifiers.json");
    for c in v["verifiers"].as_array().unwrap() {
        let code_text = c["code"].as_str().unwrap();
        let reference = c["reference"].as_str().unwrap();
        let policy = Policy {
            digits: code_text.len() as u8,
            tag_bits: c["tag_bits"].as_u64().unwrap() as u16,
            iterations: c["iterations"].as_u64().unwrap() as u32,
            max_attempts: 3,
        };
        let mut salt = [0u8; 16];
        hex::decode_to_slice(c["salt"].as_str().unwrap(), &mut salt).unwrap();
        let code = Code::parse(code_text, policy.digits).unwrap();
        let ver = Verifier::with_salt(&code, reference, &policy, salt).unwrap();
        assert_eq!(hex::encode(&ver.tag), c["tag"].as_str().unwrap(), "{c}");
        assert!(ver.check(&code, reference, &policy));
    }
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

fn seed(v: &Value) -> [u8; 32] {
    bytes(v).try_into().unwrap()
}

/// The class of an error, as the negative vectors name it.
fn class(e: &handover_core::Error) -> &'static str {
    use handover_core::Error as E;
    match e {
        E::BadSignature(_) => "bad_signature",
        E::UntrustedKey => "untrusted_key",
        E::Malformed { .. } => "malformed",
        E::ChainBroken(_) => "chain_broken",
        _ => "other",
    }
}

fn event(v: &Value) -> Event {
    Event {
        seq: v["seq"].as_u64().unwrap(),
        prev_hash: bytes(&v["prev_hash"]).try_into().unwrap(),
        body: v["body"].as_str().unwrap().as_bytes().to_vec(),
        hash: bytes(&v["hash"]).try_into().unwrap(),
        signature: bytes(&v["signature"]).try_into().unwrap(),
    }
}

/// Keys, ids, salts, the envelope of a manifest and an ack, a chain of two
/// events and a batch, byte for byte as an independent implementation
/// wrote them from the docs; then the negative vectors, each refused with
/// the error it names.
#[test]
fn wire_vectors() {
    let v = load("wire.json");
    let office = SigningKey::from_seed(&seed(&v["office_seed"])).unwrap();
    let device = SigningKey::from_seed(&seed(&v["device_seed"])).unwrap();
    assert_eq!(
        office.public_key().to_hex(),
        v["office_public_key"].as_str().unwrap()
    );
    assert_eq!(
        office.public_key().key_id(),
        v["office_key_id"].as_str().unwrap()
    );
    assert_eq!(
        device.public_key().to_hex(),
        v["device_public_key"].as_str().unwrap()
    );
    assert_eq!(
        device.public_key().device_id(),
        v["device_id"].as_str().unwrap()
    );
    let code_key = CodeKey::new("k1", seed(&v["code_key"]));
    for s in v["salts"].as_array().unwrap() {
        let salt = derive_salt(
            &code_key,
            s["programme"].as_str().unwrap().parse().unwrap(),
            s["reference"].as_str().unwrap(),
            s["code_version"].as_u64().unwrap() as u32,
        )
        .unwrap();
        assert_eq!(hex::encode(salt), s["salt"].as_str().unwrap());
    }
    let trusted = [office.public_key()];

    // The manifest: sealed bytes, payload, and the verifier derived again.
    let payload = v["manifest"]["payload"].as_str().unwrap();
    let sealed = bytes(&v["manifest"]["sealed"]);
    assert_eq!(
        envelope::seal(Kind::Manifest, &office, payload.as_bytes()).unwrap(),
        sealed
    );
    let manifest = Manifest::open(&sealed, &trusted).unwrap();
    assert_eq!(serde_json::to_string(&manifest).unwrap(), payload);
    assert_eq!(manifest.seal(&office).unwrap(), sealed);
    let item = &manifest.items[0];
    let policy = item.policy_in(&manifest).unwrap();
    assert_eq!(policy.name(), item.policy);
    let code = derive_code(
        &code_key,
        Programme::Post,
        &item.reference,
        1,
        policy.digits,
    )
    .unwrap();
    assert_eq!(
        Verifier::derive(
            &code_key,
            Programme::Post,
            &item.reference,
            1,
            &code,
            policy
        )
        .unwrap(),
        item.verifier
    );

    // Events: the body as serde_json writes it, its hash and signature.
    let events: Vec<Event> = v["events"].as_array().unwrap().iter().map(event).collect();
    let mut cursor = ChainCursor::genesis();
    for e in &events {
        let body: EventBody = serde_json::from_slice(&e.body).unwrap();
        let made = cursor.append(&body, &device).unwrap();
        assert_eq!(&made, e);
    }
    verify_chain(&events, 1, GENESIS, &device.public_key()).unwrap();
    let batch = v["batch"].as_str().unwrap();
    let parsed = Batch::from_bytes(batch.as_bytes()).unwrap();
    assert_eq!(parsed.events, events);
    assert_eq!(parsed.to_bytes().unwrap(), batch.as_bytes());

    // An event with a fix (presence evidence): parsed, the fix read back,
    // and written again byte for byte, chained onto the second event.
    let with_fix = event(&v["event_with_fix"]);
    let body: EventBody = serde_json::from_slice(&with_fix.body).unwrap();
    let fix = body.at.expect("the fix");
    assert_eq!(
        (fix.lat_e7, fix.lon_e7, fix.accuracy_m),
        (286_227_880, 772_130_330, 12)
    );
    assert_eq!((fix.time_ms, fix.mock), (1_795_410_118_000, false));
    assert_eq!(cursor.append(&body, &device).unwrap(), with_fix);
    // The bodies without a fix carry no `at` at all: unchanged bytes.
    assert!(events
        .iter()
        .all(|e| !String::from_utf8_lossy(&e.body).contains("\"at\"")));

    // The ack.
    let ack_payload = v["ack"]["payload"].as_str().unwrap();
    let sealed_ack = bytes(&v["ack"]["sealed"]);
    let ack = Ack::open(&sealed_ack, &trusted).unwrap();
    assert_eq!(serde_json::to_string(&ack).unwrap(), ack_payload);
    assert_eq!(ack.seal(&office).unwrap(), sealed_ack);
    assert_eq!(ack.head_hash, events[1].hash);

    // Negative vectors: each refused, with the error class it names.
    let negative = v["negative"].as_array().unwrap();
    assert!(negative.len() >= 10);
    for n in negative {
        let want = n["error"].as_str().unwrap();
        let got = match n["what"].as_str().unwrap() {
            "ack" => Ack::open(&bytes(&n["bytes"]), &trusted).map(|_| ()),
            "manifest" => Manifest::open(&bytes(&n["bytes"]), &trusted).map(|_| ()),
            "event" => {
                let e = event(&n["event"]);
                ChainCursor::at(1, events[0].hash)
                    .accept(&e, &device.public_key())
                    .map(|_| ())
            }
            other => panic!("unknown vector kind {other}"),
        };
        let err = got.expect_err(n["name"].as_str().unwrap());
        assert_eq!(class(&err), want, "{}: {err}", n["name"]);
    }
}

/// DIGIPIN: the specification's example and places across India, as the
/// Department of Posts' reference algorithm (re-typed independently in
/// Python) encodes them; decoding lands in the same cell; invalid codes are
/// refused.
#[test]
fn digipin_vectors() {
    use handover_core::digipin;
    let v = load("digipin.json");
    let vectors = v["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 10);
    for x in vectors {
        let (lat, lon) = (x["lat"].as_f64().unwrap(), x["lon"].as_f64().unwrap());
        let want = x["digipin"].as_str().unwrap();
        assert_eq!(digipin::encode(lat, lon).unwrap(), want, "{}", x["place"]);
        let (clat, clon) = digipin::decode(want).unwrap();
        assert_eq!(
            digipin::encode(clat, clon).unwrap(),
            want,
            "centre of {want}"
        );
        assert!(
            digipin::distance_m((lat, lon), (clat, clon)) < 6.0,
            "{want}"
        );
        assert_eq!(
            digipin::normalise(&want.to_lowercase()).unwrap(),
            want.replace('-', "")
        );
    }
    for x in v["invalid"].as_array().unwrap() {
        let pin = x["digipin"].as_str().unwrap();
        assert!(digipin::normalise(pin).is_err(), "{pin}: {}", x["why"]);
        assert!(digipin::decode(pin).is_err(), "{pin}");
    }
    assert!(digipin::encode(2.4, 77.0).is_err() && digipin::encode(20.0, 100.0).is_err());
}
