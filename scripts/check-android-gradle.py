#!/usr/bin/env python3
"""Checks android/build.gradle.kts for what no Gradle run here can show.

The Android SDK cannot be downloaded on the CI machine, so `./gradlew test`
does not run there. These checks read the build file the way AGP will use
it, and fail on the mistakes an Android team hit in round three:

* JNA's desktop jar (its natives for Linux, macOS and Windows) must be on
  the unit tests' runtime class path. AGP names those class paths
  `debugUnitTestRuntimeClasspath` and `releaseUnitTestRuntimeClasspath`;
  they extend `testImplementation`, `testRuntimeOnly` and the per-variant
  `test<Variant>Implementation`/`RuntimeOnly`. A configuration matched by
  name must match those names.
* Unit tests must not need the NDK: no `preBuild` dependency on the
  cargo-ndk build; native libraries reach only the jniLibs of variants.
* AGP 9: the NDK through `androidComponents.sdkComponents.ndkDirectory`,
  no `BaseExtension` (`android.ndkDirectory`) calls.
* uniffi-bindgen: `CARGO` passed, `--metadata-no-deps`, every input listed.
* Publishing: coroutines as `api`, Kotlin api/language version pinned, the
  POM's licence and SCM.

Run with a path to check another file; `--self-test` also runs the JNA
rule against the round-two configuration and expects it to fail.
"""
import re
import sys

# What AGP's unit-test runtime class paths extend, for the two build types.
UNIT_TEST_CLASSPATHS = ["debugUnitTestRuntimeClasspath", "releaseUnitTestRuntimeClasspath"]
EXTENDED_BY_UNIT_TESTS = {"testImplementation", "testRuntimeOnly", "testDebugImplementation",
                          "testDebugRuntimeOnly", "testReleaseImplementation", "testReleaseRuntimeOnly"}
# Every configuration name AGP 8 makes for a library with debug and release.
AGP_CONFIGURATIONS = set(UNIT_TEST_CLASSPATHS) | EXTENDED_BY_UNIT_TESTS | {
    "debugRuntimeClasspath", "releaseRuntimeClasspath", "debugCompileClasspath", "releaseCompileClasspath",
    "debugUnitTestCompileClasspath", "releaseUnitTestCompileClasspath",
    "debugAndroidTestRuntimeClasspath", "debugAndroidTestCompileClasspath",
    "implementation", "api", "runtimeOnly", "compileOnly", "testCompileOnly",
    "androidTestImplementation", "androidTestRuntimeOnly",
}


def jna_rule(text):
    """Problems with how JNA's desktop jar reaches the unit tests."""
    problems = []
    decl = re.findall(r'(\w+)\("net\.java\.dev\.jna:jna:([^"@]+)(@\w+)?"\)', text)
    versions = {m.group(1): m.group(2) for m in re.finditer(r'val (\w+) = "([^"]+)"', text)}

    def version(v):
        m = re.fullmatch(r"\$\{?(\w+)\}?", v)
        return versions.get(m.group(1), v) if m else v

    aar = [version(v) for conf, v, kind in decl if kind == "@aar"]
    desktop = [(conf, version(v)) for conf, v, kind in decl if kind != "@aar"]
    if not aar:
        problems.append("the library does not depend on JNA's AAR")
    on_unit_tests = [(c, v) for c, v in desktop if c in EXTENDED_BY_UNIT_TESTS]
    if not on_unit_tests:
        where = ", ".join(c for c, _ in desktop) or "nowhere"
        problems.append(f"JNA's desktop jar is declared in {where}: not a configuration "
                        f"{' or '.join(UNIT_TEST_CLASSPATHS)} extends")
    for c, v in on_unit_tests:
        if aar and v not in aar:
            problems.append(f"JNA's desktop jar ({v}, in {c}) differs from the AAR's ({aar[0]})")
    for m in re.finditer(r'configurations\.matching\s*\{([^}]*)\}', text):
        pred = m.group(1)
        starts = re.findall(r'startsWith\("([^"]*)"\)', pred)
        ends = re.findall(r'endsWith\("([^"]*)"\)', pred)
        matched = [n for n in AGP_CONFIGURATIONS
                   if all(n.startswith(s) for s in starts) and all(n.endswith(e) for e in ends)]
        if (starts or ends) and not matched:
            problems.append(f"configurations.matching {{{pred.strip()}}} matches none of AGP's configurations")
    return problems


def rules(text):
    problems = jna_rule(text)
    if re.search(r'named\("preBuild"\)[^}]*cargoNdk', text, re.S):
        problems.append("preBuild depends on cargoNdk: unit tests would need the NDK")
    if not re.search(r"jniLibs\?\.addGeneratedSourceDirectory\(\w+, CargoNdkTask::outputDir\)", text):
        problems.append("the cargo-ndk output is not wired to the variants' jniLibs")
    if not re.search(r"kotlin\?\.addGeneratedSourceDirectory\(\w+, GenerateBindingsTask::outputDir\)", text):
        problems.append("the generated bindings are not wired to the variants' Kotlin sources")
    if re.search(r'\bandroid\.ndkDirectory\b', text):
        problems.append("android.ndkDirectory is BaseExtension (gone in AGP 9): use androidComponents.sdkComponents.ndkDirectory")
    if "sdkComponents.ndkDirectory" not in text:
        problems.append("the NDK is not taken from androidComponents.sdkComponents.ndkDirectory")
    if "--metadata-no-deps" not in text or 'environment("CARGO"' not in text:
        problems.append("uniffi-bindgen must get CARGO and --metadata-no-deps")
    for needed in ["core/uniffi.toml", "bindings/ffi/uniffi.toml", ".cargo/config.toml", "bindings/uniffi-bindgen"]:
        if needed not in text:
            problems.append(f"binding generation does not list {needed} as an input")
    if not re.search(r'\bapi\("org\.jetbrains\.kotlinx:kotlinx-coroutines-core', text):
        problems.append("kotlinx-coroutines-core must be api: Flow is in the public API")
    for opt in ["apiVersion.set(", "languageVersion.set("]:
        if opt not in text:
            problems.append(f"Kotlin {opt[:-5]} is not pinned")
    for pom in ["licenses {", "scm {"]:
        if pom not in text:
            problems.append(f"the POM has no {pom[:-2]}")
    return problems


ROUND_TWO = '''
val jnaDesktop by configurations.creating
dependencies {
    implementation("net.java.dev.jna:jna:5.19.1@aar")
    jnaDesktop("net.java.dev.jna:jna:5.19.1")
}
configurations.matching { it.name.startsWith("test") && it.name.endsWith("RuntimeClasspath") }.configureEach {
    extendsFrom(jnaDesktop)
}
'''


def main():
    args = [a for a in sys.argv[1:] if a != "--self-test"]
    path = args[0] if args else "android/build.gradle.kts"
    if "--self-test" in sys.argv:
        caught = jna_rule(ROUND_TWO)
        if len(caught) != 2:
            print(f"self-test: round two's JNA configuration should give 2 problems, gave {caught}", file=sys.stderr)
            return 1
    problems = rules(open(path, encoding="utf-8").read())
    for p in problems:
        print(f"{path}: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"{path}: JNA's desktop jar on {' and '.join(UNIT_TEST_CLASSPATHS)}; no NDK for unit tests; AGP 9 ready; publishing complete")
    return 0


if __name__ == "__main__":
    sys.exit(main())
