// The handover Android library (AAR): the Rust core built by cargo-ndk for
// arm64-v8a, armeabi-v7a and x86_64, the uniffi-generated Kotlin bindings,
// the Kotlin facade and a WorkManager sync worker.
//
// Needs: the Android SDK and NDK r28+ (16 KB pages by default), Rust with the
// Android targets, and cargo-ndk 4 (`cargo install cargo-ndk`).

plugins {
    id("com.android.library") version "8.13.0"
    id("org.jetbrains.kotlin.android") version "2.2.20"
}

val workspace: File = rootDir.parentFile
val generatedKotlin = layout.buildDirectory.dir("generated/uniffi/kotlin")
val generatedJniLibs = layout.buildDirectory.dir("generated/jniLibs")
val cargoProfile = (findProperty("handover.cargoProfile") as String?) ?: "release"

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
        // The WorkManager worker: Android-only, so kept out of the JVM tests.
        kotlin.srcDir("src/worker/kotlin")
        jniLibs.srcDir(generatedJniLibs)
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    packaging {
        jniLibs.useLegacyPackaging = false
    }
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    implementation("net.java.dev.jna:jna:5.17.0@aar")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-core:1.10.2")
    implementation("androidx.work:work-runtime-ktx:2.10.3")
    testImplementation("junit:junit:4.13.2")
}

// Rust for the three ABIs into build/generated/jniLibs, 16 KB page aligned.
val cargoNdk by tasks.registering(Exec::class) {
    group = "build"
    description = "Builds libhandover_ffi.so for arm64-v8a, armeabi-v7a and x86_64 with cargo-ndk"
    workingDir = workspace
    environment("RUSTFLAGS", "-C link-arg=-Wl,-z,max-page-size=16384")
    val profileArgs = if (cargoProfile == "release") listOf("--release") else emptyList()
    commandLine(
        listOf(
            "cargo", "ndk",
            "-t", "arm64-v8a", "-t", "armeabi-v7a", "-t", "x86_64",
            "--platform", "24",
            "-o", generatedJniLibs.get().asFile.path,
            "build", "-p", "handover-ffi", "--locked",
        ) + profileArgs,
    )
    inputs.dir(File(workspace, "core/src"))
    inputs.dir(File(workspace, "bindings/ffi/src"))
    outputs.dir(generatedJniLibs)
}

// Kotlin bindings, generated in library mode from a host build of the same
// crate: a debug build keeps the symbol table uniffi reads its metadata from.
val generateBindings by tasks.registering(Exec::class) {
    group = "build"
    description = "Generates the uniffi Kotlin bindings into build/generated/uniffi/kotlin"
    workingDir = workspace
    val hostLib = when {
        System.getProperty("os.name").startsWith("Mac") -> "libhandover_ffi.dylib"
        System.getProperty("os.name").startsWith("Windows") -> "handover_ffi.dll"
        else -> "libhandover_ffi.so"
    }
    commandLine(
        "sh", "-c",
        "cargo build --locked -p handover-ffi -p uniffi-bindgen && " +
            "target/debug/uniffi-bindgen generate --no-format --language kotlin " +
            "--out-dir '${generatedKotlin.get().asFile.path}' target/debug/$hostLib",
    )
    inputs.dir(File(workspace, "bindings/ffi/src"))
    inputs.file(File(workspace, "bindings/ffi/uniffi.toml"))
    outputs.dir(generatedKotlin)
}

tasks.named("preBuild") {
    dependsOn(cargoNdk, generateBindings)
}
