// swift-tools-version:6.2
import PackageDescription

let package = Package(
    name: "contactd",
    products: [
        .executable(name: "contactd", targets: ["contactd"]),
        .executable(name: "contactctl", targets: ["contactctl"]),
        .executable(name: "contactd-bench", targets: ["contactd-bench"]),
        .library(name: "ContactdClient", targets: ["ContactdClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.3"),
        // OTLP over HTTP only: the gRPC exporter would bring grpc-swift (minutes of build) for
        // nothing the daemon uses.
        .package(url: "https://github.com/swift-otel/swift-otel", from: "1.6.0", traits: ["OTLPHTTP"]),
    ],
    targets: [
        // A small JSON reader/writer that keeps numbers as the sender spelled them
        // and objects in the sender's order; shared by the cache (contact bytes pass
        // through verbatim) and the wire protocol. No dependencies.
        .target(name: "ContactdJSON"),
        // Pure domain: contacts, phone numbers, the cache, miss coalescing. No I/O. It speaks the
        // wire's words (cache status, stale reason, tier, circuit state) from ContactdProtocol.
        .target(
            name: "ContactdCore",
            dependencies: [
                "ContactdJSON",
                "ContactdProtocol",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        // The wire: JSON-RPC types, the methods, error reasons with their codes, the words states
        // travel as, every method's result type, the OpenRPC document, the line framer.
        .target(
            name: "ContactdProtocol",
            dependencies: [
                "ContactdJSON",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .systemLibrary(
            name: "CSystemd",
            pkgConfig: "libsystemd",
            providers: [.apt(["libsystemd-dev"])]
        ),
        // epoll, eventfd and accept4, which Swift's Glibc module leaves out (the fast lane).
        .systemLibrary(name: "CLinux"),
        // zlib's CRC-32 for the cache snapshot's checksums.
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),
        // Swift face of libsystemd; knows no contactd types.
        .target(
            name: "Systemd",
            dependencies: [
                "CSystemd",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Loopback stand-in for the get-contact API in tests and benchmarks: faults, counters,
        // generated contacts. Not linked into the daemon (`--demo` has its own, `DemoAPI`).
        .target(
            name: "FakeContactAPI",
            dependencies: [
                "HTTPResponder",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // One small HTTP/1.1 server on SwiftNIO's codec: the metrics listener, --demo's API and the
        // tests' fake API answer through it.
        .target(
            name: "HTTPResponder",
            dependencies: [
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // Starting programs with posix_spawn (tests, the bench tool, the trace reader's xz).
        .target(
            name: "ChildProcess",
            dependencies: ["CLinux", .product(name: "NIOConcurrencyHelpers", package: "swift-nio")]
        ),
        // A failed system call or connection in plain words, without its number: the one wording
        // every message uses.
        .target(name: "PlainErrors"),
        // The fleet's shared cache on Redis (`--shared-cache`): a `SharedTier` for Core's lookups.
        // Knows nothing of the server or the configuration; the daemon composes it.
        .target(
            name: "ContactdSharedCache",
            dependencies: [
                "ContactdCore",
                "ContactdJSON",
                "ContactdProtocol",
                "RedisClient",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Warm restart: the cache snapshot, systemd's fd store and --snapshot-file. Knows nothing of
        // the server or the configuration; the daemon composes it.
        .target(
            name: "ContactdSnapshot",
            dependencies: [
                "ContactdCore",
                "CLinux",
                "CZlib",
                "Systemd",
                "PlainErrors",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Composition root: the hit path, socket server and fast lane, upstream client,
        // configuration, lifecycle, and the demo's API stand-in; it composes the shared cache and
        // the snapshot.
        .target(
            name: "ContactdDaemon",
            dependencies: [
                "ContactdCore",
                "ContactdProtocol",
                "ContactdSharedCache",
                "ContactdSnapshot",
                "HTTPResponder",
                "PlainErrors",
                "CLinux",
                "CZlib",
                "Systemd",
                "RedisClient",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "OTel", package: "swift-otel"),
            ]
        ),
        // A small RESP3 client on SwiftNIO: only the commands the shared cache sends (no Swift
        // Redis client is among the available packages). Knows no contactd types.
        .target(
            name: "RedisClient",
            dependencies: [
                "PlainErrors",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // Public async client library.
        .target(
            name: "ContactdClient",
            dependencies: [
                "ContactdProtocol",
                "ContactdJSON",
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "contactd",
            dependencies: [
                "ContactdDaemon",
                "ContactctlCommand",
                "ContactdProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // contactctl's commands. A library so that `contactd` can be contactctl too when run by
        // that name: the package ships one program, not two copies of the Swift runtime.
        .target(
            name: "ContactctlCommand",
            dependencies: [
                "ContactdClient",
                "ContactdProtocol",
                "ContactdJSON",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "contactctl", dependencies: ["ContactctlCommand"]),
        // Cache access traces replayed through contactd's cache and the published policies it is
        // measured against (LRU, SIEVE, S3-FIFO, ARC, 2Q, W-TinyLFU) and Belady's optimum. For the
        // bench tool and tests; not linked into the daemon.
        .target(name: "ContactdReplay", dependencies: ["ContactdCore", "ChildProcess"]),
        .executableTarget(
            name: "contactd-bench",
            dependencies: [
                "ChildProcess",
                "CLinux",
                "ContactdCore",
                "ContactdReplay",
                "FakeContactAPI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        .target(
            name: "ContactdTestSupport",
            dependencies: [
                "ChildProcess",
                "CLinux",
                "ContactdCore",
                "ContactdDaemon",
                "ContactdClient",
                "FakeContactAPI",
                "RedisClient",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "ContactdCoreTests",
            dependencies: [
                "ContactdCore", "ContactdJSON", "ContactdTestSupport", "ContactdReplay",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "ContactdProtocolTests",
            dependencies: [
                "ContactdProtocol",
                "ContactdJSON",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "ContactdDaemonTests",
            dependencies: [
                "ContactdDaemon",
                "HTTPResponder",
                "ContactdSharedCache",
                "ContactdSnapshot",
                "RedisClient",
                "ContactdTestSupport",
                "ContactdCore",
                "ContactdProtocol",
                "FakeContactAPI",
                "ContactdClient",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "RedisClientTests",
            dependencies: [
                "RedisClient", "ContactdTestSupport", "ChildProcess",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "ContactdClientTests",
            dependencies: [
                "ContactdClient", "ContactdJSON", "ContactdProtocol", "ContactdTestSupport", "FakeContactAPI",
                "ContactdDaemon",
                "ContactdCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "ChildProcess",
                "ContactdTestSupport", "RedisClient", "ContactdDaemon", "FakeContactAPI", "ContactdClient",
                "ContactdJSON",
                "ContactdProtocol",
                "contactd",
                "contactctl",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
            ]
        ),
    ]
)

// Fuzz targets exist only when CONTACTD_FUZZ is set: they have no `main` (libFuzzer provides it),
// so an ordinary build must not see them. scripts/fuzz builds them with -sanitize=fuzzer.
if Context.environment["CONTACTD_FUZZ"] != nil {
    package.targets += [
        .executableTarget(
            name: "RequestFuzzer",
            dependencies: ["ContactdProtocol", "ContactdJSON", .product(name: "NIOCore", package: "swift-nio")],
            path: "Fuzz/RequestFuzzer"
        ),
        .executableTarget(
            name: "ContactFuzzer",
            dependencies: ["ContactdCore", "ContactdJSON"],
            path: "Fuzz/ContactFuzzer"
        ),
    ]
    package.products += [
        .executable(name: "request-fuzzer", targets: ["RequestFuzzer"]),
        .executable(name: "contact-fuzzer", targets: ["ContactFuzzer"]),
    ]
}

// One settings list for every Swift target we own (swift-log's habit).
// Warnings become errors only when WARNINGS_AS_ERRORS is set (.ci/run sets it), so a
// newer compiler's new warning never breaks a user's build.
let werror = Context.environment["WARNINGS_AS_ERRORS"] != nil
for target in package.targets where target.type != .system {
    var settings = target.swiftSettings ?? []
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    settings.append(.enableUpcomingFeature("MemberImportVisibility"))
    if werror {
        settings.append(.treatAllWarnings(as: .error))
    }
    target.swiftSettings = settings
}
