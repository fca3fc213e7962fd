#!/usr/bin/env python3
"""Where the bytes of libhandover_ffi.so go, per crate: the sizes of its
code and data symbols (nm -S on the unstripped library), grouped by the
crate their demangled name starts with (`<T as Trait>` counts for T's
crate; C symbols by prefix: sqlite3, ring's C and assembly). What no symbol
covers (tables, relocations, unwind and dynamic-symbol data) is `other`.

    scripts/size-profile.py LIB [STRIPPED_SIZE] [--top N]
"""
import collections
import re
import subprocess
import sys

NM = "aarch64-linux-gnu-nm"


def crate_of(name):
    if name.startswith("ring_core_"):
        return "ring (C, asm)"
    if name.startswith("uniffi_") or name.startswith("ffi_handover"):
        return "uniffi scaffolding"
    if "::" not in name:
        # C: SQLite's functions and tables (most are static, without its
        # sqlite3 prefix), and the C runtime's glue.
        return "SQLite and other C"
    s = name.lstrip("<&*(")
    s = re.sub(r"^(dyn |impl |mut |const )", "", s)
    m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)::", s)
    if m:
        return m.group(1)
    return "other symbols"


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    top = 14
    if "--top" in sys.argv:
        top = int(sys.argv[sys.argv.index("--top") + 1])
        args = [a for a in args if a != str(top)]
    lib = args[0]
    out = subprocess.run([NM, "-S", "-C", "--size-sort", lib], capture_output=True, text=True, check=True).stdout
    sizes = collections.Counter()
    for line in out.splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 4 or parts[2] not in "tTdDrRbB":
            continue
        if parts[2] in "bB":  # no bytes in the file
            continue
        sizes[crate_of(parts[3])] += int(parts[1], 16)
    total = sum(sizes.values())
    stripped = int(args[1]) if len(args) > 1 else None
    print(f"size per crate (symbols {total:,} bytes{f' of {stripped:,} stripped' if stripped else ''}):")
    for crate, n in sizes.most_common(top):
        print(f"  {crate:<24} {n:>9,}  {100 * n / total:5.1f}%")
    rest = sum(n for _, n in sizes.most_common()[top:])
    if rest:
        print(f"  {'(the rest)':<24} {rest:>9,}  {100 * rest / total:5.1f}%")


if __name__ == "__main__":
    main()
