import ArgumentParser
import ContactdDaemon
import Foundation
import Glibc
import Logging
import NIOCore
import Systemd

/// `contactd`: flags → `DaemonConfiguration` → `Daemon.run`.
@main
struct ContactdCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "contactd",
        abstract:
            "Caches the get-contact API for local services on a Unix socket (JSON-RPC 2.0, one message per line).",
        discussion: """
            Every option can also be set through the environment: --cache-max-entries is \
            CONTACTD_CACHE_MAX_ENTRIES, and so on; a flag wins over the environment. Durations are \
            seconds or a number with ms, s, m or h; sizes are bytes or a number with K, M or G.

            The API token is never a flag. It comes from --token-file, from \
            $CREDENTIALS_DIRECTORY/api-token (systemd LoadCredential=api-token:…), or from \
            CONTACTD_API_TOKEN, first found wins. Without one (and without --demo) contactd exits 78.

            Try it: contactd --demo --socket /tmp/contactd.sock, then \
            contactctl --socket /tmp/contactd.sock get +14155551234
            """
    )

    @Option(parsing: .unconditional, help: "Unix socket path. Default /run/contactd/contactd.sock.")
    var socket: String?
    @Option(parsing: .unconditional, help: "Permission bits of the socket file, octal. Default 0660.")
    var socketMode: String?
    @Option(parsing: .unconditional, help: "Group of the socket file. Default: the daemon's group.")
    var socketGroup: String?
    @Option(
        parsing: .unconditional,
        help: "Base URL of the get-contact API. Default https://mtxbiyilvgwhbdptysex.supabase.co/functions/v1."
    )
    var apiUrl: String?
    @Option(parsing: .unconditional, help: "File holding the API token. Default: none (see below).")
    var tokenFile: String?
    @Option(parsing: .unconditional, help: "Most cached contacts. Default 100000.")
    var cacheMaxEntries: String?
    @Option(parsing: .unconditional, help: "Most cached bytes. Default 256M.")
    var cacheMaxBytes: String?
    @Option(parsing: .unconditional, help: "How long a contact is fresh. Default 5m.")
    var ttl: String?
    @Option(
        parsing: .unconditional,
        help: "After --ttl, how long a contact is answered at once as stale while one refresh runs. Default 1h."
    )
    var staleTtl: String?
    @Option(
        parsing: .unconditional,
        help: "After --ttl, how long a contact is answered as stale when the API fails. Default 24h."
    )
    var staleIfError: String?
    @Option(
        parsing: .unconditional,
        help: "Refresh a hot contact once its age passes this fraction of --ttl; 0 = never. Default 0.8."
    )
    var refreshAhead: String?
    @Option(parsing: .unconditional, help: "Reads while fresh that make a contact hot for --refresh-ahead. Default 2.")
    var refreshAheadReads: String?
    @Option(parsing: .unconditional, help: "How long a not-found answer is cached. Default 1m.")
    var negativeTtl: String?
    @Option(
        parsing: .unconditional,
        help: "One overall deadline per lookup, retries and queueing included. Default 5s."
    )
    var upstreamTimeout: String?
    @Option(
        parsing: .unconditional,
        help: "API calls per fetch, the first included (transient failures only); 1 = no retries. Default 3."
    )
    var retryAttempts: String?
    @Option(
        parsing: .unconditional,
        help: "Backoff before retry n: random in [0, min(max, base × 2^n)]. Default 100ms."
    )
    var retryBaseDelay: String?
    @Option(
        parsing: .unconditional,
        help: "Longest backoff, and the pause before a failed refresh is tried again. Default 2s."
    )
    var retryMaxDelay: String?
    @Option(parsing: .unconditional, help: "Failed API calls in a row that open the circuit. Default 5.")
    var breakerFailures: String?
    @Option(parsing: .unconditional, help: "How long the circuit stays open before one probe. Default 10s.")
    var breakerCooldown: String?
    @Option(parsing: .unconditional, help: "Most API requests in flight. Default 16.")
    var apiConcurrency: String?
    @Option(parsing: .unconditional, help: "Most API requests started per second; 0 = no limit. Default 0.")
    var apiRate: String?
    @Option(parsing: .unconditional, help: "API requests the rate limit lets through at once; 0 = the rate. Default 0.")
    var apiBurst: String?
    @Option(parsing: .unconditional, help: "Most fetches waiting for an API slot; more get overloaded. Default 1024.")
    var apiQueue: String?
    @Flag(help: "A 429 holds back calls for every key until Retry-After passes, not only its own key.")
    var rateLimitAllKeys = false
    @Option(parsing: .unconditional, help: "Most open client connections. Default 1024.")
    var maxConnections: String?
    @Option(parsing: .unconditional, help: "Longest request line. Default 64K.")
    var maxLineBytes: String?
    @Option(parsing: .unconditional, help: "Most requests in one batch. Default 1000.")
    var maxBatch: String?
    @Option(parsing: .unconditional, help: "Most requests waiting for the API on one connection. Default 1024.")
    var maxRequestsPerConnection: String?
    @Option(
        parsing: .unconditional,
        help: "Close a connection silent this long with nothing in flight; 0 = never. Default 1h."
    )
    var idleTimeout: String?
    @Option(
        parsing: .unconditional,
        help: "Close a connection whose started line is not finished this long after; 0 = never. Default 10s."
    )
    var partialLineTimeout: String?
    @Option(parsing: .unconditional, help: "Serve plain cache hits on hand-written epoll loops (on/off). Default on.")
    var fastPath: String?
    @Option(
        help:
            "Allow peers with this uid (SO_PEERCRED); repeatable or comma-separated. Default: anyone the socket's mode lets in."
    )
    var allowUid: [String] = []
    @Option(help: "Allow peers with this primary gid (SO_PEERCRED); repeatable or comma-separated.")
    var allowGid: [String] = []
    @Flag(help: "Log phone numbers and contact ids in clear (masked by default).")
    var logPersonalData = false
    @Option(parsing: .unconditional, help: "Longest drain on SIGTERM. Default 10s.")
    var shutdownTimeout: String?
    @Option(parsing: .unconditional, help: "trace, debug, info, notice, warning, error or critical. Default info.")
    var logLevel: String?
    @Flag(help: "Serve bundled sample contacts through an in-process fake API; needs no token or network.")
    var demo = false

    /// The listening socket systemd passed, if any: the one named `contactd.socket` (or
    /// `contactd`), else the only one. It must be a listening Unix stream socket.
    static func inheritedSocket() throws(ConfigurationError) -> [Int32] {
        let passed = SystemdEnvironment.listenFileDescriptors()
        guard !passed.isEmpty else { return [] }
        let chosen = passed.first { $0.name == "contactd.socket" || $0.name == "contactd" } ?? passed[0]
        guard passed.count == 1 || chosen.name.hasPrefix("contactd") else {
            throw ConfigurationError(
                "socket activation passed \(passed.count) sockets and none is named contactd.socket"
            )
        }
        guard SystemdEnvironment.isListeningUnixSocket(chosen.fd) else {
            throw ConfigurationError(
                "socket activation passed fd \(chosen.fd), which is not a listening Unix stream socket"
            )
        }
        return [chosen.fd]
    }

    /// Sizes SwiftNIO's shared event loop group to the CPUs this process may run on.
    ///
    /// NIO counts online CPUs and cgroup limits but not the affinity mask (taskset, systemd's
    /// CPUAffinity=). Pinned to one core, its default two loops took turns on it: 50 connections ×
    /// 16 pipelined hits ran at 164k req/s with two loops (issue #5's profile), see
    /// docs/benchmarks.md for the figure with one. An explicit NIO_SINGLETON_GROUP_LOOP_COUNT wins.
    static func matchEventLoopsToAffinity() {
        guard getenv("NIO_SINGLETON_GROUP_LOOP_COUNT") == nil,
            let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") })
        else { return }
        var count = 0
        for range in line.dropFirst("Cpus_allowed_list:".count).split(separator: ",") {
            let bounds = range.split(separator: "-").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            if bounds.count == 2 { count += bounds[1] - bounds[0] + 1 } else if bounds.count == 1 { count += 1 }
        }
        if count > 0, count < System.coreCount { setenv("NIO_SINGLETON_GROUP_LOOP_COUNT", String(count), 1) }
    }

    func run() async throws {
        Self.matchEventLoopsToAffinity()
        GlibcHeap.keepLargeAllocationsMapped()
        var arguments: [String: String] = [:]
        let given: [(String, String?)] = [
            ("socket", socket), ("socket-mode", socketMode), ("socket-group", socketGroup),
            ("api-url", apiUrl), ("token-file", tokenFile), ("cache-max-entries", cacheMaxEntries),
            ("cache-max-bytes", cacheMaxBytes), ("ttl", ttl), ("stale-ttl", staleTtl),
            ("stale-if-error", staleIfError), ("refresh-ahead", refreshAhead),
            ("refresh-ahead-reads", refreshAheadReads), ("retry-attempts", retryAttempts),
            ("retry-base-delay", retryBaseDelay), ("retry-max-delay", retryMaxDelay),
            ("breaker-failures", breakerFailures), ("breaker-cooldown", breakerCooldown),
            ("api-concurrency", apiConcurrency), ("api-rate", apiRate), ("api-burst", apiBurst),
            ("api-queue", apiQueue),
            ("negative-ttl", negativeTtl), ("upstream-timeout", upstreamTimeout),
            ("max-connections", maxConnections), ("max-line-bytes", maxLineBytes), ("max-batch", maxBatch),
            ("shutdown-timeout", shutdownTimeout), ("log-level", logLevel),
            ("max-requests-per-connection", maxRequestsPerConnection), ("idle-timeout", idleTimeout),
            ("partial-line-timeout", partialLineTimeout), ("fast-path", fastPath),
            ("allow-uid", allowUid.isEmpty ? nil : allowUid.joined(separator: ",")),
            ("allow-gid", allowGid.isEmpty ? nil : allowGid.joined(separator: ",")),
        ]
        for case (let flag, let value?) in given { arguments[flag] = value }
        if demo { arguments["demo"] = "true" }
        if logPersonalData { arguments["log-personal-data"] = "true" }
        if rateLimitAllKeys { arguments["rate-limit-all-keys"] = "true" }

        let environment = ProcessInfo.processInfo.environment
        let notifier = SystemdNotifier()
        do {
            let configuration = try DaemonConfiguration.load(arguments: arguments, environment: environment)
            let level = configuration.logLevel
            // Under systemd with stderr going to the journal, log structured entries straight to
            // it; otherwise plain lines on stderr.
            let toJournal = SystemdEnvironment.stderrIsJournal(environment: environment)
            LoggingSystem.bootstrap { label in
                if toJournal {
                    var handler = JournalLogHandler(label: label, identifier: "contactd")
                    handler.logLevel = level
                    return handler
                }
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
            let logger = Logger(label: "contactd")
            try await Daemon.run(
                configuration: configuration,
                environment: environment,
                inheritedSockets: try Self.inheritedSocket(),
                logger: logger
            )
        } catch let error as ConfigurationError {
            FileHandle.standardError.write(Data("contactd: \(error.description)\n".utf8))
            notifier.failure(errno: EINVAL, status: "Failed: \(error.description)")
            throw ExitCode(78)
        }
    }
}
