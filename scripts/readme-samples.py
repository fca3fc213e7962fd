#!/usr/bin/env python3
"""Write every ```kotlin block of a README as its own Kotlin file, with the
imports an app would have, so the samples are compiled with the library.
Usage: readme-samples.py README.md OUT_DIR"""
import pathlib
import re
import sys

HEADER = """@file:Suppress("unused", "UNUSED_PARAMETER", "UNUSED_VARIABLE")

package readme.sample{n}

import android.app.Application
import android.content.Context
import app.handover.*
import app.handover.android.*
import app.handover.core.ExceptionReason
import app.handover.ffi.HandoverException
import app.handover.ffi.Item
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.map
import app.handover.ffi.RetiredOutbox
import kotlinx.coroutines.launch

"""

readme, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
blocks = re.findall(r"^```kotlin\n(.*?)^```", readme.read_text(), re.S | re.M)
if not blocks:
    sys.exit(f"no kotlin blocks in {readme}")
for n, body in enumerate(blocks, 1):
    (out / f"Sample{n}.kt").write_text(HEADER.format(n=n) + body)
print(len(blocks))
