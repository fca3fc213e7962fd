//! Published test vectors, made by an independent implementation
//! (`scripts/gen-vectors.py`), checked against the Rust code.

use handover_core::codes::{derive_code, Code, CodeKey, Policy, Programme};
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
