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
import javax.inject.Inject
import org.gradle.process.ExecOperations

plugins {
    id("com.android.library") version "8.13.0"
    id("org.jetbrains.kotlin.android") version "2.4.20"
    `maven-publish`
}

group = "app.handover"
version = "0.1.0"
// The workspace Cargo.toml's `repository`.
val projectUrl = "https://example.invalid/handover"

val repoRoot: File = rootDir.parentFile
// The `ffi` profile: release, optimised for size (the workspace Cargo.toml).
val cargoProfile = (findProperty("handover.cargoProfile") as String?) ?: "ffi"

// local.properties (not committed): sdk.dir, and cargo= when cargo is not on PATH.
val localProperties = Properties().apply {
    val f = rootProject.file("local.properties")
    if (f.exists()) f.inputStream().use { load(it) }
}
val cargoBin: String = localProperties.getProperty("cargo")
    ?: System.getenv("CARGO")
    ?: File(System.getProperty("user.home"), ".cargo/bin/cargo").takeIf { it.exists() }?.path
    ?: "cargo"
// Honour CARGO_TARGET_DIR, as cargo does.
val cargoTarget: File = System.getenv("CARGO_TARGET_DIR")?.let { File(it) } ?: File(repoRoot, "target")
val hostLibName = when {
    System.getProperty("os.name").startsWith("Mac") -> "libhandover_ffi.dylib"
    System.getProperty("os.name").startsWith("Windows") -> "handover_ffi.dll"
    else -> "libhandover_ffi.so"
}
val rustSources = files(
    fileTree(File(repoRoot, "core")) { include("src/**", "Cargo.toml", "migrations/**") },
    fileTree(File(repoRoot, "bindings/ffi")) { include("src/**", "Cargo.toml", "uniffi.toml") },
    File(repoRoot, "Cargo.toml"),
    File(repoRoot, "Cargo.lock"),
)

// Rust for the three ABIs, 16 KB page aligned, with the NDK that AGP uses.
// Wired to the jniLibs of the variants that package them (below): unit
// tests never build it, and need no NDK.
abstract class CargoNdkTask : DefaultTask() {
    @get:Inject abstract val exec: ExecOperations
    @get:Input abstract val cargo: Property<String>
    @get:Input abstract val profile: Property<String>
    @get:InputFiles @get:PathSensitive(PathSensitivity.RELATIVE) abstract val sources: ConfigurableFileCollection
    @get:Internal abstract val workspace: DirectoryProperty
    @get:Internal abstract val ndkDirectory: DirectoryProperty
    @get:OutputDirectory abstract val outputDir: DirectoryProperty

    @TaskAction
    fun build() {
        val profileArgs = when (profile.get()) {
            "dev", "debug" -> emptyList()
            "release" -> listOf("--release")
            else -> listOf("--profile", profile.get())
        }
        exec.exec {
            workingDir = workspace.get().asFile
            environment("RUSTFLAGS", "-C link-arg=-Wl,-z,max-page-size=16384")
            environment("ANDROID_NDK_HOME", ndkDirectory.get().asFile.path)
            commandLine(
                listOf(
                    cargo.get(), "ndk",
                    "-t", "arm64-v8a", "-t", "armeabi-v7a", "-t", "x86_64",
                    "--platform", "24",
                    "-o", outputDir.get().asFile.path,
                    "build", "-p", "handover-ffi", "--locked",
                ) + profileArgs,
            )
        }
    }
}

// Kotlin bindings, generated in library mode from the host library.
// uniffi-bindgen runs `cargo metadata` to find each crate's uniffi.toml:
// with this build's cargo (CARGO) and without the dependencies' metadata.
abstract class GenerateBindingsTask : DefaultTask() {
    @get:Inject abstract val exec: ExecOperations
    @get:Input abstract val cargo: Property<String>
    @get:InputFile @get:PathSensitive(PathSensitivity.NONE) abstract val library: RegularFileProperty
    @get:InputFile @get:PathSensitive(PathSensitivity.NONE) abstract val bindgen: RegularFileProperty
    @get:InputFiles @get:PathSensitive(PathSensitivity.RELATIVE) abstract val configuration: ConfigurableFileCollection
    @get:Internal abstract val workspace: DirectoryProperty
    @get:OutputDirectory abstract val outputDir: DirectoryProperty

    @TaskAction
    fun generate() {
        outputDir.get().asFile.deleteRecursively()
        exec.exec {
            workingDir = workspace.get().asFile
            environment("CARGO", cargo.get())
            commandLine(
                bindgen.get().asFile.path, "generate", "--no-format", "--metadata-no-deps", "--language", "kotlin",
                "--out-dir", outputDir.get().asFile.path, library.get().asFile.path,
            )
        }
    }
}

// The host library (JNA loads it in the JVM tests, and binding generation
// reads its metadata: a debug build keeps the symbol table) and the
// `handover` binary the tests run the office with.
val cargoHost by tasks.registering(Exec::class) {
    group = "build"
    description = "Builds the host libhandover_ffi, uniffi-bindgen and the handover binary (debug)"
    workingDir = repoRoot
    commandLine(cargoBin, "build", "--locked", "-p", "handover-ffi", "-p", "uniffi-bindgen", "-p", "handover-cli")
    inputs.files(rustSources)
    inputs.files(fileTree(repoRoot) { include("office/src/**", "server/src/**", "cli/src/**", "*/Cargo.toml") })
    outputs.file(File(cargoTarget, "debug/$hostLibName"))
    outputs.file(File(cargoTarget, "debug/uniffi-bindgen"))
    outputs.file(File(cargoTarget, "debug/handover"))
}

// One binding generation and one cargo-ndk build per variant, each wired
// by the variant API to that variant's sources: the bindings reach every
// variant's Kotlin (unit tests compile against them), the native libraries
// only the jniLibs that are merged, i.e. what is packaged. Unit tests never
// run cargo-ndk. (cargo-ndk builds the same `ffi` profile for debug and
// release: the second build is cargo's no-op.)
androidComponents {
    onVariants { variant ->
        val name = variant.name.replaceFirstChar { it.uppercase() }
        val bindings = tasks.register<GenerateBindingsTask>("generate${name}Bindings") {
            group = "build"
            description = "Generates the uniffi Kotlin bindings for ${variant.name}"
            dependsOn(cargoHost)
            cargo.set(cargoBin)
            library.set(File(cargoTarget, "debug/$hostLibName"))
            bindgen.set(File(cargoTarget, "debug/uniffi-bindgen"))
            configuration.from(
                File(repoRoot, "core/uniffi.toml"),
                File(repoRoot, "bindings/ffi/uniffi.toml"),
                File(repoRoot, ".cargo/config.toml"),
                fileTree(File(repoRoot, "bindings/uniffi-bindgen")) { include("src/**", "Cargo.toml") },
            )
            workspace.set(repoRoot)
        }
        variant.sources.kotlin?.addGeneratedSourceDirectory(bindings, GenerateBindingsTask::outputDir)
        val natives = tasks.register<CargoNdkTask>("cargoNdk$name") {
            group = "build"
            description = "Builds libhandover_ffi.so for arm64-v8a, armeabi-v7a and x86_64 with cargo-ndk (${variant.name})"
            cargo.set(cargoBin)
            profile.set(cargoProfile)
            sources.from(rustSources)
            sources.from(File(repoRoot, ".cargo/config.toml"))
            workspace.set(repoRoot)
            ndkDirectory.set(androidComponents.sdkComponents.ndkDirectory)
        }
        variant.sources.jniLibs?.addGeneratedSourceDirectory(natives, CargoNdkTask::outputDir)
    }
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
        // Keystore wrapper, backup-safe open, WorkManager worker: Android-only,
        // so kept apart from what the JVM tests compile.
        kotlin.srcDir("src/android/kotlin")
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
            it.systemProperty("handover.android", projectDir.path)
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
        // Apps on an older Kotlin can use the AAR: its metadata is 2.2's,
        // which Kotlin 2.1 and later read (test-kotlin compiles with the same).
        apiVersion.set(org.jetbrains.kotlin.gradle.dsl.KotlinVersion.KOTLIN_2_2)
        languageVersion.set(org.jetbrains.kotlin.gradle.dsl.KotlinVersion.KOTLIN_2_2)
    }
}

val jnaVersion = "5.19.1"

dependencies {
    // The AAR's JNA carries the Android natives only.
    implementation("net.java.dev.jna:jna:$jnaVersion@aar")
    // Flow and StateFlow are in the public API.
    api("org.jetbrains.kotlinx:kotlinx-coroutines-core:1.11.0")
    implementation("androidx.work:work-runtime-ktx:2.12.0")
    testImplementation("junit:junit:4.13.2")
    testImplementation("org.jetbrains.kotlinx:kotlinx-coroutines-test:1.11.0")
    // JNA's desktop jar (its natives for Linux, macOS, Windows) for the JVM
    // unit tests: AGP's debugUnitTestRuntimeClasspath and
    // releaseUnitTestRuntimeClasspath extend testRuntimeOnly, as
    // application-services does it. scripts/check-android-gradle checks it.
    testRuntimeOnly("net.java.dev.jna:jna:$jnaVersion@jar")
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
                url.set(projectUrl)
                licenses {
                    license {
                        name.set("Apache-2.0")
                        url.set("https://www.apache.org/licenses/LICENSE-2.0.txt")
                    }
                }
                scm {
                    url.set(projectUrl)
                    connection.set("scm:git:$projectUrl.git")
                }
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
