#!/usr/bin/env python3
"""Debian's ProGuard (6.2.2) reads class files up to Java 13 (major 57); the
JDK here is 17. ProGuard only needs the JDK's classes as a library (names,
fields, methods), so this writes them into a jar with their version field
set to 55 (Java 11). Usage: jdk-classes-for-proguard.py JAVA_HOME OUT.jar
"""
import sys
import zipfile

java_home, out = sys.argv[1], sys.argv[2]
MODULES = ["java.base", "java.logging", "java.desktop"]
with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as jar:
    for module in MODULES:
        # A jmod is a zip after a 4-byte header ("JM" 0x01 0x00).
        with open(f"{java_home}/jmods/{module}.jmod", "rb") as f:
            data = f.read()
        import io
        with zipfile.ZipFile(io.BytesIO(data[4:])) as jmod:
            for name in jmod.namelist():
                if not name.startswith("classes/") or not name.endswith(".class"):
                    continue
                if name.endswith("module-info.class"):
                    continue
                b = bytearray(jmod.read(name))
                if b[:4] == b"\xca\xfe\xba\xbe" and b[6:8] > b"\x00\x37":
                    b[6:8] = b"\x00\x37"
                jar.writestr(name[len("classes/"):], bytes(b))
