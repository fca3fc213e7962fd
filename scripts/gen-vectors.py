#!/usr/bin/env python3
"""Regenerate core/tests/vectors/*.json from an implementation independent of
the Rust code: Python's hmac and hashlib, and the `cryptography` package's
Ed25519, written from protocol.md and docs/design.md alone.

    pip install cryptography   # for wire.json
    python3 scripts/gen-vectors.py
"""
import hashlib
import hmac
import json
import os
import struct

OUT = os.path.join(os.path.dirname(__file__), "..", "core", "tests", "vectors")


def code(key, prog, ref, ver, digits):
    msg = b"handover/code/v1\0" + prog.encode() + b"\0" + ref.encode() + b"\0" + struct.pack(">I", ver)
    mac = hmac.new(key, msg, hashlib.sha256).digest()
    off = mac[-1] & 0x0F
    b = ((mac[off] & 0x7F) << 24) | (mac[off + 1] << 16) | (mac[off + 2] << 8) | mac[off + 3]
    return str(b % 10**digits).zfill(digits)


def tag(code, salt, ref, iters, bits):
    full = hashlib.pbkdf2_hmac("sha256", code.encode(), salt + ref.encode(), iters, 32)
    t = bytearray(full[: (bits + 7) // 8])
    spare = (8 - bits % 8) % 8
    if spare:
        t[-1] &= (0xFF << spare) & 0xFF
    return t.hex()


def main():
    keys = [bytes(range(32)), bytes([0xA5] * 32), hashlib.sha256(b"handover test key 3").digest()]
    refs = [("post", "RR287043775IN"), ("post", "EE123456785IN"),
            ("vaccination", "APPT-2026-000123"), ("vaccination", "9876543210/1")]
    cases = [dict(key=k.hex(), programme=p, reference=r, code_version=v, digits=d, code=code(k, p, r, v, d))
             for k in keys for (p, r) in refs for v in (1, 2, 7) for d in (4, 6, 8)]
    vcases = []
    for (c, ref, it, bits) in [("042917", "RR287043775IN", 1, 11), ("042917", "RR287043775IN", 1000, 11),
                               ("1234", "APPT-1", 20000, 7), ("87654321", "X/1", 10, 256),
                               ("000000", "EE123456785IN", 5, 1), ("999999", "EE123456785IN", 5, 12)]:
        salt = hashlib.sha256(("salt" + c + ref).encode()).digest()[:16]
        vcases.append(dict(code=c, reference=ref, salt=salt.hex(), iterations=it, tag_bits=bits,
                           tag=tag(c, salt, ref, it, bits)))
    with open(os.path.join(OUT, "codes.json"), "w") as f:
        json.dump({"source": "independent Python implementation (hmac, hashlib) of protocol.md; see scripts/gen-vectors.py",
                   "codes": cases}, f, indent=1)
    with open(os.path.join(OUT, "verifiers.json"), "w") as f:
        json.dump({"source": "hashlib.pbkdf2_hmac; tag = first tag_bits bits, spare low bits zero",
                   "verifiers": vcases}, f, indent=1)


def salt(key, prog, ref, ver):
    msg = b"handover/salt/v1\0" + prog.encode() + b"\0" + ref.encode() + b"\0" + struct.pack(">I", ver)
    return hmac.new(key, msg, hashlib.sha256).digest()[:16]


def short_hash(label, pk):
    return hashlib.sha256(label + pk).digest()[:8].hex()


def dumps(obj):
    # serde_json's compact form: no spaces, fields in declaration order.
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


LABELS = {1: b"handover/manifest/v1", 2: b"handover/ack/v1"}


def seal(kind, key, payload):
    key_id = short_hash(b"handover/key-id/v1", pub(key)).encode()
    framed = b"HOE1" + bytes([kind, len(key_id)]) + key_id + struct.pack(">I", len(payload)) + payload
    return framed + key.sign(LABELS[kind] + b"\0" + framed)


def pub(key):
    from cryptography.hazmat.primitives import serialization
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def wire():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    # RFC 8032 section 7.1, TEST 1 and TEST 2 secret keys.
    office_seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    device_seed = bytes.fromhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
    office = Ed25519PrivateKey.from_private_bytes(office_seed)
    device = Ed25519PrivateKey.from_private_bytes(device_seed)
    code_key = bytes(range(32))
    device_id = short_hash(b"handover/device-id/v1", pub(device))
    ref = "RR287043775IN"
    policy = {"digits": 6, "tag_bits": 11, "iterations": 1000, "max_attempts": 3}
    pname = "d6-b11-i1000-a3"
    the_code = code(code_key, "post", ref, 1, 6)
    s = salt(code_key, "post", ref, 1)
    manifest = {
        "format": "handover/manifest/v1",
        "manifest_id": "post-" + device_id + "-20261123",
        "revision": 1,
        "office_id": "PO-560001",
        "device_id": device_id,
        "assignee": "Postman R. Gowda",
        "programme": "post",
        "code_key_id": "k1",
        "issued_at": "2026-11-23T03:00:00Z",
        "valid_from": "2026-11-23T03:30:00Z",
        "valid_until": "2026-11-23T15:30:00Z",
        "policies": {pname: policy},
        "items": [{
            "reference": ref,
            "code_version": 1,
            "policy": pname,
            "verifier": {"salt": s.hex(), "tag": tag(the_code, s, ref, 1000, 11)},
            "details": {"programme": "post", "service": "registered", "addressee": "A. Kumar",
                        "address": "12 MG Road, Bengaluru", "mobile_last_digits": "3210", "cod": None},
        }],
    }
    sealed_manifest = seal(1, office, dumps(manifest).encode())
    events, prev = [], bytes(32)
    kinds = [
        {"type": "manifest_imported", "manifest_id": manifest["manifest_id"], "revision": 1, "items": 1},
        {"type": "handed_over", "manifest_id": manifest["manifest_id"], "revision": 1, "reference": ref,
         "code_version": 1, "code": the_code},
    ]
    for i, kind in enumerate(kinds):
        body = dumps({"device_id": device_id, "seq": i + 1, "time": "2026-11-23T05:0%d:00Z" % i,
                      "counter": 1795410000000 + i * 60000, "clock_suspect": False, "kind": kind}).encode()
        h = hashlib.sha256(b"handover/event/v1" + prev + body).digest()
        events.append({"seq": i + 1, "prev_hash": prev.hex(), "body": body.decode(), "hash": h.hex(),
                       "signature": device.sign(h).hex()})
        prev = h
    batch = dumps({"format": "handover/batch/v1", "device_id": device_id, "device_key": pub(device).hex(),
                   "events": events})
    # A third event, after the batch: an exception with the fix the phone
    # took at the door (presence evidence, issue 21), chained onto the second.
    fix_body = dumps({"device_id": device_id, "seq": 3, "time": "2026-11-23T05:02:00Z",
                      "counter": 1795410120000, "clock_suspect": False,
                      "kind": {"type": "exception", "manifest_id": manifest["manifest_id"], "reference": ref,
                               "reason": "not_home"},
                      "at": {"lat_e7": 286227880, "lon_e7": 772130330, "accuracy_m": 12,
                             "time_ms": 1795410118000, "mock": False}}).encode()
    fix_hash = hashlib.sha256(b"handover/event/v1" + prev + fix_body).digest()
    event_with_fix = {"seq": 3, "prev_hash": prev.hex(), "body": fix_body.decode(), "hash": fix_hash.hex(),
                      "signature": device.sign(fix_hash).hex()}
    ack = dumps({"format": "handover/ack/v1", "device_id": device_id, "through_seq": 2, "head_hash": prev.hex(),
                 "verdicts": [{"seq": 1, "verdict": "recorded"}, {"seq": 2, "verdict": "verified"}]}).encode()
    sealed_ack = seal(2, office, ack)

    def flip(b, i, bit=1):
        b = bytearray(b)
        b[i] ^= bit
        return bytes(b)

    stranger = Ed25519PrivateKey.from_private_bytes(bytes([7] * 32))
    key_id_len = sealed_ack[5]
    negative = [
        {"name": "ack signature changed", "what": "ack", "bytes": flip(sealed_ack, len(sealed_ack) - 1).hex(),
         "error": "bad_signature"},
        {"name": "ack payload changed", "what": "ack", "bytes": flip(sealed_ack, 6 + key_id_len + 4 + 3).hex(),
         "error": "bad_signature"},
        {"name": "ack sealed by an unpinned key", "what": "ack", "bytes": seal(2, stranger, ack).hex(),
         "error": "untrusted_key"},
        {"name": "manifest offered as an ack", "what": "ack", "bytes": sealed_manifest.hex(),
         "error": "malformed"},
        {"name": "ack cut short", "what": "ack", "bytes": sealed_ack[:-1].hex(), "error": "malformed"},
        {"name": "magic changed", "what": "manifest", "bytes": flip(sealed_manifest, 0).hex(),
         "error": "malformed"},
        {"name": "manifest kind byte changed", "what": "manifest", "bytes": flip(sealed_manifest, 4, 3).hex(),
         "error": "malformed"},
        {"name": "event body changed", "what": "event",
         "event": dict(events[1], body=events[1]["body"].replace(the_code, "000000" if the_code != "000000" else "111111")),
         "error": "chain_broken"},
        {"name": "event signature changed", "what": "event",
         "event": dict(events[1], signature=flip(bytes.fromhex(events[1]["signature"]), 0).hex()),
         "error": "bad_signature"},
        {"name": "event chained onto another hash", "what": "event",
         "event": dict(events[1], prev_hash=flip(bytes.fromhex(events[1]["prev_hash"]), 31).hex()),
         "error": "chain_broken"},
        {"name": "event signed by another key", "what": "event",
         "event": dict(events[1], signature=stranger.sign(bytes.fromhex(events[1]["hash"])).hex()),
         "error": "bad_signature"},
    ]
    return {
        "source": "independent Python implementation (hashlib, hmac, cryptography's Ed25519) of protocol.md and docs/design.md; see scripts/gen-vectors.py",
        "office_seed": office_seed.hex(), "office_public_key": pub(office).hex(),
        "office_key_id": short_hash(b"handover/key-id/v1", pub(office)),
        "device_seed": device_seed.hex(), "device_public_key": pub(device).hex(), "device_id": device_id,
        "code_key": code_key.hex(),
        "salts": [dict(programme=p, reference=r, code_version=v, salt=salt(code_key, p, r, v).hex())
                  for (p, r) in [("post", ref), ("vaccination", "APPT-2026-000123")] for v in (1, 2)],
        "manifest": {"payload": dumps(manifest), "sealed": sealed_manifest.hex()},
        "events": events,
        "event_with_fix": event_with_fix,
        "batch": batch,
        "ack": {"payload": ack.decode(), "sealed": sealed_ack.hex()},
        "negative": negative,
    }


DIGIPIN_GRID = ["FC98", "J327", "K456", "LMPT"]


def digipin(lat, lon):
    """The Department of Posts' reference algorithm (March 2025), re-typed."""
    min_lat, max_lat, min_lon, max_lon = 2.5, 38.5, 63.5, 99.5
    out = ""
    for level in range(1, 11):
        lat_div, lon_div = (max_lat - min_lat) / 4, (max_lon - min_lon) / 4
        row = min(max(3 - int((lat - min_lat) // lat_div), 0), 3)
        col = min(max(int((lon - min_lon) // lon_div), 0), 3)
        out += DIGIPIN_GRID[row][col]
        if level in (3, 6):
            out += "-"
        max_lat = min_lat + lat_div * (4 - row)
        min_lat = min_lat + lat_div * (3 - row)
        min_lon = min_lon + lon_div * col
        max_lon = min_lon + lon_div
    return out


def digipin_vectors():
    # The specification's published example, then places across India.
    places = [("Dak Bhawan, New Delhi", 28.622788, 77.213033),
              ("Bengaluru GPO", 12.9766, 77.5913), ("PHC Jayanagar", 12.9250, 77.5838),
              ("Mumbai GPO", 18.9398, 72.8355), ("Kolkata GPO", 22.5726, 88.3509),
              ("Chennai GPO", 13.0878, 80.2866), ("Port Blair", 11.6234, 92.7265),
              ("Leh", 34.1526, 77.5771), ("Kanyakumari", 8.0883, 77.5385),
              ("the box's south-west corner", 2.5, 63.5), ("the box's north-east corner", 38.5, 99.5)]
    return {"source": "the Department of Posts' DIGIPIN reference algorithm, re-typed in Python (scripts/gen-vectors.py)",
            "vectors": [{"place": p, "lat": lat, "lon": lon, "digipin": digipin(lat, lon)} for p, lat, lon in places],
            "invalid": [{"digipin": "39J-49L-L8T", "why": "nine symbols"},
                        {"digipin": "39J-49L-L8TA", "why": "A is not a DIGIPIN symbol"},
                        {"digipin": "39J-49L-L8T40", "why": "eleven symbols"},
                        {"digipin": "", "why": "empty"},
                        {"digipin": "O9J-49L-L8T4", "why": "O is not a DIGIPIN symbol"}]}


if __name__ == "__main__":
    main()
    with open(os.path.join(OUT, "digipin.json"), "w") as f:
        json.dump(digipin_vectors(), f, indent=1, ensure_ascii=False)
    with open(os.path.join(OUT, "wire.json"), "w") as f:
        json.dump(wire(), f, indent=1, ensure_ascii=False)
