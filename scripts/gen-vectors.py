#!/usr/bin/env python3
"""Regenerate core/tests/vectors/*.json from an implementation independent of
the Rust code: Python's hmac and hashlib, written from protocol.md alone.

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


if __name__ == "__main__":
    main()
