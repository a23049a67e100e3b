// swift-tools-version:5.9
// A command-line Swift package using the generated Sluice bindings. Not built on the
// project's Linux CI (no Swift toolchain there); see docs/bindings.md for the layout:
//   Sources/SluiceFFI/  SluiceFFI.h + module.modulemap (generated), links libsluice_ffi
//   Sources/Sluice/     Sluice.swift (generated)
import PackageDescription

let package = Package(
    name: "SluiceExample",
    platforms: [.macOS(.v12), .iOS(.v15)],
    targets: [
        // The C half: the generated header and module map; links the Rust library, found
        // with `-L` (swift build -Xlinker -L<dir of libsluice_ffi>) or an XCFramework.
        .systemLibrary(name: "SluiceFFI", path: "Sources/SluiceFFI"),
        .target(name: "Sluice", dependencies: ["SluiceFFI"], path: "Sources/Sluice"),
        .executableTarget(name: "SluiceExample", dependencies: ["Sluice"], path: "Sources/SluiceExample"),
    ]
)
