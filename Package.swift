// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "swunison",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "swunison", targets: ["swunison"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // C libraries, each behind one small target (wrapped in Swift in one place).
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite"),
        .systemLibrary(name: "CCrypto", path: "Sources/CCrypto", pkgConfig: "libcrypto"),
        .systemLibrary(name: "CLibSSH", path: "Sources/CLibSSH", pkgConfig: "libssh"),
        .target(name: "CSwunisonShims", path: "Sources/CSwunisonShims"),

        // The engine, one module per concern.
        .target(name: "SwunisonModel", swiftSettings: hotPath),
        .target(name: "SwunisonProfile", dependencies: ["SwunisonModel"]),
        .target(name: "SwunisonStorage", dependencies: ["SwunisonModel", "CSQLite"], swiftSettings: hotPath),
        .target(name: "SwunisonFS", dependencies: ["SwunisonModel", "CSwunisonShims", "CCrypto"], swiftSettings: hotPath),
        .target(name: "SwunisonReconcile", dependencies: ["SwunisonModel"]),
        // The contract between the engine and a copy of the tree (local, or over the wire).
        .target(name: "SwunisonReplica", dependencies: ["SwunisonModel", "SwunisonFS"]),
        // Watch mode: inotify on a tree, change notices for the Replica contract.
        .target(name: "SwunisonWatch", dependencies: ["SwunisonModel", "SwunisonFS", "SwunisonReplica"]),
        .target(name: "SwunisonSSH", dependencies: ["CLibSSH"]),
        .target(name: "SwunisonCore", dependencies: [
            "SwunisonModel", "SwunisonProfile", "SwunisonStorage", "SwunisonFS", "SwunisonReconcile", "SwunisonReplica",
            "SwunisonWatch",
            .product(name: "Logging", package: "swift-log"),
        ], exclude: ["DESIGN.md", "DESIGN-NOTES.md"]),
        .target(name: "SwunisonWire", dependencies: [
            "SwunisonModel", "SwunisonReplica", "SwunisonFS", "SwunisonSSH", "CSwunisonShims",
        ], exclude: ["PROTOCOL.md"]),

        // The thin command-line front end.
        .executableTarget(name: "swunison", dependencies: [
            "SwunisonCore", "SwunisonReplica", "SwunisonProfile", "SwunisonWire", "SwunisonModel", "SwunisonFS",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        // Helpers shared by the test targets: temp dirs, a private sshd, running the built binary,
        // a replica that forwards to another.
        .target(name: "SwunisonTestSupport", dependencies: ["SwunisonModel", "SwunisonReplica"], path: "Tests/SwunisonTestSupport"),

        .testTarget(name: "SwunisonModelTests", dependencies: ["SwunisonModel"]),
        .testTarget(name: "SwunisonProfileTests", dependencies: ["SwunisonProfile", "SwunisonModel"]),
        .testTarget(name: "SwunisonStorageTests", dependencies: ["SwunisonStorage", "SwunisonModel"]),
        .testTarget(name: "SwunisonFSTests", dependencies: ["SwunisonFS", "SwunisonModel"]),
        .testTarget(name: "SwunisonReconcileTests", dependencies: ["SwunisonReconcile", "SwunisonModel"]),
        .testTarget(name: "SwunisonCoreTests", dependencies: [
            "SwunisonCore", "SwunisonReplica", "SwunisonModel", "SwunisonProfile", "SwunisonFS", "SwunisonStorage", "SwunisonTestSupport",
        ]),
        .testTarget(name: "SwunisonWireTests", dependencies: [
            "SwunisonWire", "SwunisonCore", "SwunisonReplica", "SwunisonModel", "SwunisonFS", "SwunisonSSH", "SwunisonStorage",
            "SwunisonReconcile", "SwunisonTestSupport", .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "SwunisonSSHTests", dependencies: ["SwunisonSSH", "SwunisonTestSupport"]),
        .testTarget(name: "SwunisonWatchTests", dependencies: [
            "SwunisonWatch", "SwunisonReplica", "SwunisonFS", "SwunisonModel", "SwunisonTestSupport",
        ]),
        .testTarget(name: "SwunisonEndToEndTests", dependencies: ["SwunisonModel", "SwunisonTestSupport"]),
    ]
)

// libFuzzer targets (Tests/fuzz builds them with `SWUNISON_FUZZ=1 swift build -sanitize=fuzzer`).
// Declared only then: each has no `main` of its own (libFuzzer supplies it), so an ordinary
// build could not link them.
if Context.environment["SWUNISON_FUZZ"] == "1" {
    let libFuzzerEntry: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]
    package.targets += [
        .executableTarget(name: "FuzzFrameDecoder", dependencies: ["SwunisonWire"], swiftSettings: libFuzzerEntry),
        .executableTarget(name: "FuzzMessageDecoder", dependencies: ["SwunisonWire"], swiftSettings: libFuzzerEntry),
        .executableTarget(name: "FuzzProfile", dependencies: ["SwunisonProfile", "SwunisonModel"],
                          swiftSettings: libFuzzerEntry),
    ]
}

/// The scan's per-entry loop (walk, cursor, path comparisons) lives in these modules. Release
/// builds skip Swift's run-time exclusivity checks there (each class property access otherwise
/// records itself in a per-thread access set: ~5 % of a no-change scan); debug builds, and so
/// the tests, keep them.
var hotPath: [SwiftSetting] { [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))] }
