// app.handover:handover-android-testing: FakeDoorstep, an in-memory
// app.handover.Doorstep for an app's own unit tests. It needs no native
// library, no database and no office (scripts/test-kotlin runs its tests
// with no JNA on the class path to prove it).
plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
    `maven-publish`
}

group = "app.handover"
version = rootProject.version

android {
    namespace = "app.handover.testing"
    compileSdk = 36
    defaultConfig { minSdk = 24 }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    publishing {
        singleVariant("release") { withSourcesJar() }
    }
}

kotlin {
    compilerOptions {
        jvmTarget.set(org.jetbrains.kotlin.gradle.dsl.JvmTarget.JVM_17)
        apiVersion.set(org.jetbrains.kotlin.gradle.dsl.KotlinVersion.KOTLIN_2_2)
        languageVersion.set(org.jetbrains.kotlin.gradle.dsl.KotlinVersion.KOTLIN_2_2)
    }
}

// The fake's tests run with no JNA at all, as an app's would with only
// this artefact in its unit tests' view (AGP's names for those class paths).
configurations.matching { it.name.endsWith("UnitTestRuntimeClasspath") }.configureEach {
    exclude(group = "net.java.dev.jna", module = "jna")
}

dependencies {
    // The Doorstep interface and the record types; its native library is never loaded.
    api(project(":"))
    testImplementation("junit:junit:4.13.2")
}

publishing {
    publications {
        register<MavenPublication>("release") {
            groupId = "app.handover"
            artifactId = "handover-android-testing"
            version = project.version.toString()
            afterEvaluate { from(components["release"]) }
            pom {
                name.set("handover testing")
                description.set("An in-memory handover Doorstep for apps' unit tests.")
                licenses {
                    license {
                        name.set("Apache-2.0")
                        url.set("https://www.apache.org/licenses/LICENSE-2.0.txt")
                    }
                }
            }
        }
    }
    repositories {
        maven {
            name = "local"
            url = uri(rootProject.layout.buildDirectory.dir("repo"))
        }
    }
}
