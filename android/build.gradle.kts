// The handover Android library (AAR): the Rust core built by cargo-ndk for
// arm64-v8a, armeabi-v7a and x86_64, the uniffi-generated Kotlin bindings,
// the Kotlin facade, the Android parts (Keystore key wrapper, backup rules,
// WorkManager sync worker).
//
// Needs: the Android SDK and NDK r28+ (16 KB pages by default; the version
// below, installed by the SDK manager), Rust with the Android targets, and
// cargo-ndk 4 (`cargo install cargo-ndk`). `./gradlew test` also needs a JDK
// 17+ and builds the host library and the `handover` binary itself.

import java.util.Properties

plugins {
    id("com.android.library") version "8.13.0"
    id("org.jetbrains.kotlin.android") version "2.4.20"
    `maven-publish`
}

group = "app.handover"
version = "0.1.0"

val workspace: File = rootDir.parentFile
val generatedKotlin = layout.buildDirectory.dir("generated/uniffi/kotlin")
val generatedJniLibs = layout.buildDirectory.dir("generated/jniLibs")
// The `ffi` profile: release, optimised for size (the workspace Cargo.toml).
val cargoProfile = (findProperty("handover.cargoProfile") as String?) ?: "ffi"

// local.properties (not committed): sdk.dir, and cargo= when cargo is not on PATH.
val localProperties = Properties().apply {
    val f = rootProject.file("local.properties")
    if (f.exists()) f.inputStream().use { load(it) }
}
val cargo: String = localProperties.getProperty("cargo")
    ?: System.getenv("CARGO")
    ?: File(System.getProperty("user.home"), ".cargo/bin/cargo").takeIf { it.exists() }?.path
    ?: "cargo"
// Honour CARGO_TARGET_DIR, as cargo does.
val cargoTarget: File = System.getenv("CARGO_TARGET_DIR")?.let { File(it) } ?: File(workspace, "target")
val hostLibName = when {
    System.getProperty("os.name").startsWith("Mac") -> "libhandover_ffi.dylib"
    System.getProperty("os.name").startsWith("Windows") -> "handover_ffi.dll"
    else -> "libhandover_ffi.so"
}
val rustSources = files(
    fileTree(File(workspace, "core")) { include("src/**", "Cargo.toml", "migrations/**") },
    fileTree(File(workspace, "bindings/ffi")) { include("src/**", "Cargo.toml", "uniffi.toml") },
    File(workspace, "Cargo.toml"),
    File(workspace, "Cargo.lock"),
)

// Rust for the three ABIs into build/generated/jniLibs, 16 KB page aligned,
// with the NDK that AGP uses.
val cargoNdk by tasks.registering(Exec::class) {
    group = "build"
    description = "Builds libhandover_ffi.so for arm64-v8a, armeabi-v7a and x86_64 with cargo-ndk"
    workingDir = workspace
    environment("RUSTFLAGS", "-C link-arg=-Wl,-z,max-page-size=16384")
    environment("ANDROID_NDK_HOME", android.ndkDirectory.path)
    val profileArgs = when (cargoProfile) {
        "dev", "debug" -> emptyList()
        "release" -> listOf("--release")
        else -> listOf("--profile", cargoProfile)
    }
    commandLine(
        listOf(
            cargo, "ndk",
            "-t", "arm64-v8a", "-t", "armeabi-v7a", "-t", "x86_64",
            "--platform", "24",
            "-o", generatedJniLibs.get().asFile.path,
            "build", "-p", "handover-ffi", "--locked",
        ) + profileArgs,
    )
    inputs.files(rustSources)
    inputs.property("profile", cargoProfile)
    outputs.dir(generatedJniLibs)
}

// The host library (JNA loads it in the JVM tests, and binding generation
// reads its metadata: a debug build keeps the symbol table) and the
// `handover` binary the tests run the office with.
val cargoHost by tasks.registering(Exec::class) {
    group = "build"
    description = "Builds the host libhandover_ffi, uniffi-bindgen and the handover binary (debug)"
    workingDir = workspace
    commandLine(cargo, "build", "--locked", "-p", "handover-ffi", "-p", "uniffi-bindgen", "-p", "handover-cli")
    inputs.files(rustSources)
    inputs.files(fileTree(workspace) { include("office/src/**", "server/src/**", "cli/src/**", "*/Cargo.toml") })
    outputs.file(File(cargoTarget, "debug/$hostLibName"))
    outputs.file(File(cargoTarget, "debug/handover"))
}

// Kotlin bindings, generated in library mode from the host build.
val generateBindings by tasks.registering(Exec::class) {
    group = "build"
    description = "Generates the uniffi Kotlin bindings into build/generated/uniffi/kotlin"
    dependsOn(cargoHost)
    workingDir = workspace
    commandLine(
        File(cargoTarget, "debug/uniffi-bindgen").path, "generate", "--no-format", "--language", "kotlin",
        "--out-dir", generatedKotlin.get().asFile.path, File(cargoTarget, "debug/$hostLibName").path,
    )
    inputs.file(File(cargoTarget, "debug/$hostLibName"))
    inputs.file(File(workspace, "bindings/ffi/uniffi.toml"))
    outputs.dir(generatedKotlin)
}

android {
    namespace = "app.handover"
    compileSdk = 36
    ndkVersion = "28.2.13676358"

    defaultConfig {
        minSdk = 24
        consumerProguardFiles("consumer-rules.pro")
    }

    sourceSets["main"].apply {
        kotlin.srcDir(generatedKotlin)
        // Keystore wrapper, backup-safe open, WorkManager worker: Android-only,
        // so kept apart from what the JVM tests compile.
        kotlin.srcDir("src/android/kotlin")
        jniLibs.srcDir(generatedJniLibs)
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    packaging {
        jniLibs.useLegacyPackaging = false
    }

    testOptions {
        unitTests.all {
            // The JVM tests load the host library through JNA and drive the real office.
            it.dependsOn(cargoHost)
            it.systemProperty("jna.library.path", File(cargoTarget, "debug").path)
            it.systemProperty("handover.bin", File(cargoTarget, "debug/handover").path)
        }
    }

    publishing {
        singleVariant("release") {
            withSourcesJar()
            withJavadocJar()
        }
    }
}

kotlin {
    compilerOptions {
        jvmTarget.set(org.jetbrains.kotlin.gradle.dsl.JvmTarget.JVM_17)
    }
}

// JNA's desktop native part for the JVM tests: the AAR's JNA has only the
// Android natives.
val jnaDesktop by configurations.creating

dependencies {
    implementation("net.java.dev.jna:jna:5.19.1@aar")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-core:1.11.0")
    implementation("androidx.work:work-runtime-ktx:2.12.0")
    implementation("androidx.core:core-ktx:1.18.0")
    testImplementation("junit:junit:4.13.2")
    testImplementation("org.jetbrains.kotlinx:kotlinx-coroutines-test:1.11.0")
    jnaDesktop("net.java.dev.jna:jna:5.19.1")
}

configurations.matching { it.name.startsWith("test") && it.name.endsWith("RuntimeClasspath") }.configureEach {
    extendsFrom(jnaDesktop)
}

tasks.named("preBuild") {
    dependsOn(cargoNdk, generateBindings)
}

publishing {
    publications {
        register<MavenPublication>("release") {
            groupId = "app.handover"
            artifactId = "handover-android"
            version = project.version.toString()
            afterEvaluate { from(components["release"]) }
            pom {
                name.set("handover")
                description.set("Offline-first proof of handover: one-time codes checked offline, a signed outbox synced to the office.")
            }
        }
    }
    repositories {
        maven {
            name = "local"
            url = uri(layout.buildDirectory.dir("repo"))
        }
    }
}
