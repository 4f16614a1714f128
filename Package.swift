// swift-tools-version:6.1
import Foundation
import PackageDescription

/// The packet path is single-threaded and owns its state, so dynamic exclusivity
/// checks only cost time there (measured: a few percent of `report`).
let hotPathSettings: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"])]

let package = Package(
    name: "trafficmon",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "trafficmon", targets: ["trafficmon"]),
        .library(name: "TrafficCore", targets: ["TrafficCore"]),
        .library(name: "TrafficCapture", targets: ["TrafficCapture"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.1.0"),
        // Without the default traits: no swift-configuration, and FoundationEssentials
        // instead of Foundation inside Hummingbird (nothing here uses either).
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.16.0", traits: []),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.6.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.0.0"),
        .package(url: "https://github.com/adam-fowler/compress-nio.git", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.1.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CPcap",
            pkgConfig: "libpcap",
            providers: [.apt(["libpcap-dev"])]
        ),
        .systemLibrary(
            name: "CMaxMindDB",
            pkgConfig: "libmaxminddb",
            providers: [.apt(["libmaxminddb-dev"])]
        ),
        // libyaml's event parser, for the --networks file.
        .systemLibrary(
            name: "CYAML",
            pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev"])]
        ),
        // C helpers the packet path needs and Swift lacks (a cache prefetch hint).
        .target(name: "CTrafficCoreShims"),
        .target(
            name: "TrafficCore",
            dependencies: ["CTrafficCoreShims", .product(name: "HeapModule", package: "swift-collections")],
            swiftSettings: hotPathSettings),
        // Keeps a capture file's memory map readable when the file is truncated while read
        // (a SIGBUS handler that patches the cut pages and says so).
        .target(name: "CMappedFileGuard"),
        // The build stamp `--version` prints, written into the shipped binary by scripts/build-release.
        .target(name: "CBuildInfo"),
        .target(name: "TrafficCapture", dependencies: ["CPcap", "TrafficCore", "CMappedFileGuard", "CTrafficCoreShims"], swiftSettings: hotPathSettings),
        // Flow inputs: NetFlow v5/v9, IPFIX and sFlow decoders and the UDP collector.
        .target(name: "TrafficFlows", dependencies: ["TrafficCore"], swiftSettings: hotPathSettings),
        // Who a party is: the --networks file (YAML) and MaxMind DB lookups of AS and country.
        .target(
            name: "TrafficEnrichment",
            dependencies: [
                "TrafficCore", "CMaxMindDB", "CYAML", .product(name: "OrderedCollections", package: "swift-collections"),
            ]
        ),
        .target(
            name: "TrafficStore",
            dependencies: [
                "TrafficCore",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .target(
            name: "TrafficServer",
            dependencies: [
                "TrafficCore", "TrafficCapture", "TrafficStore", "TrafficFlows",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            // The live page: written here as plain files, compiled into the binary.
            resources: [.embedInCode("Page/index.html"), .embedInCode("Page/app.js"), .embedInCode("Page/app.css")]
        ),
        .executableTarget(
            name: "trafficmon",
            dependencies: [
                "TrafficCore", "TrafficCapture", "TrafficStore", "TrafficServer", "TrafficEnrichment", "CBuildInfo", "TrafficFlows",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The test harness every test target shares: a pcap/pcapng writer, a frame builder, a
        // synthetic capture with an exact oracle, a reader of captures into records, a runner
        // for the built binary and a wrapper for the servers it starts, an HTTP client, and a
        // Prometheus text-format parser.
        .target(name: "TrafficTestSupport", dependencies: ["TrafficCore", "TrafficCapture"]),
        // Writes synthetic captures with an exact oracle for the demo and the benchmarks.
        .executableTarget(name: "synth-capture", dependencies: ["TrafficCore", "TrafficTestSupport"]),
        .testTarget(name: "TrafficCoreTests", dependencies: ["TrafficCore", "TrafficTestSupport"]),
        .testTarget(name: "TrafficFlowsTests", dependencies: ["TrafficFlows", "TrafficCore", "TrafficTestSupport"]),
        .testTarget(
            name: "TrafficEnrichmentTests",
            dependencies: ["TrafficEnrichment", "TrafficCore", "TrafficCapture", "TrafficTestSupport"]
        ),
        .testTarget(
            name: "TrafficCaptureTests",
            dependencies: ["TrafficCore", "TrafficCapture", "TrafficTestSupport"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "TrafficServerTests",
            dependencies: [
                "TrafficServer", "TrafficCore", "TrafficCapture", "TrafficTestSupport", "TrafficEnrichment",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HummingbirdWSTesting", package: "hummingbird-websocket"),
            ]
        ),
        .testTarget(
            name: "GrafanaTests",
            dependencies: ["trafficmon", "TrafficCore", "TrafficTestSupport"]
        ),
        .testTarget(
            name: "TrafficmonTests",
            dependencies: [
                "trafficmon", "TrafficCore", "TrafficFlows", "TrafficTestSupport",
                // The browser test drives headless Chromium over its DevTools WebSocket.
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
            ],
            // Real captures the tests hand to the built binary by path (#filePath), not resources.
            exclude: ["Corpus"]
        ),
    ]
)

// Benchmarks (ordo-one/benchmark) only when asked for, so ordinary builds and CI do not
// resolve and build the benchmark harness:
//   TRAFFICMON_BENCHMARKS=1 swift package --scratch-path .build-bench benchmark
if ProcessInfo.processInfo.environment["TRAFFICMON_BENCHMARKS"] != nil {
    package.dependencies.append(
        .package(url: "https://github.com/ordo-one/package-benchmark.git", from: "1.38.0", traits: ["MallocInterposer"]))
    package.targets.append(
        .executableTarget(
            name: "PacketPathBenchmarks",
            dependencies: [
                "TrafficCore", "TrafficTestSupport",
                .product(name: "Benchmark", package: "package-benchmark"),
            ],
            path: "Benchmarks/PacketPathBenchmarks",
            swiftSettings: hotPathSettings,
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ))
}
