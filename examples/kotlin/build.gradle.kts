// A JVM command-line module using the generated Sluice bindings. Not built on the project's
// CI (no usable Kotlin toolchain there); see docs/bindings.md. The generated source goes to
// src/main/kotlin/dev/sluice/sluice_ffi.kt (the CI writes it to target/uniffi/kotlin), and
// libsluice_ffi.so / .dylib must be on jna.library.path (or, on Android, in jniLibs/<abi>/).
plugins {
    kotlin("jvm") version "2.1.0"
    application
}

repositories { mavenCentral() }

dependencies {
    implementation("net.java.dev.jna:jna:5.14.0") // Android: "net.java.dev.jna:jna:5.14.0@aar"
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-core:1.9.0")
}

kotlin { jvmToolchain(17) }

application {
    mainClass.set("MainKt")
    applicationDefaultJvmArgs = listOf("-Djna.library.path=${rootDir}/../../target/debug")
}
