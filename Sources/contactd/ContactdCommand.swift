import ArgumentParser
import ContactdDaemon
import ContactdProtocol
import Foundation
import Glibc
import Logging
import NIOCore
import Systemd

/// `contactd`: flags → `DaemonConfiguration` → `Daemon.run`.
struct ContactdCommand: AsyncParsableCommand {
    static let configuration: CommandConfiguration = {
        CommandConfiguration(
            commandName: "contactd",
            abstract:
                "Caches the get-contact API for local services on a Unix socket (JSON-RPC 2.0, one message per line).",
            usage: "contactd [--<setting> <value> ...]",
            discussion: """
                SETTINGS
                \(DaemonConfiguration.helpText)

                Every setting can also be given in the environment: --cache-max-entries is \
                CONTACTD_CACHE_MAX_ENTRIES, and so on; a flag wins over the environment. Durations are \
                seconds or a number with ms, s, m or h; sizes are bytes or a number with K, M or G.

                The API token is never a flag. It comes from --token-file, from \
                $CREDENTIALS_DIRECTORY/api-token (systemd LoadCredential=api-token:…), or from \
                CONTACTD_API_TOKEN, first found wins. Without one (and without --demo) contactd exits 78.

                Try it: contactd --demo --socket /tmp/contactd.sock, then \
                contactctl --socket /tmp/contactd.sock get +14155551234
                """,
            version: "contactd \(ContactdVersion.current)"
        )
    }()

    @Flag(
        help: """
            Read the settings, the config file and the token as a start would; print the effective \
            settings and where each came from, and exit 0, or 78 with the message a start would give.
            """
    )
    var checkConfig = false

    /// The settings, read by `DaemonConfiguration.settings` (which declares each once).
    @Argument(parsing: .allUnrecognized, help: .hidden)
    var settings: [String] = []

    /// What systemd passed (`LISTEN_FDS`): the listening socket, if any — the one named
    /// `contactd.socket` (or `contactd`), else the only one; it must be a listening Unix stream
    /// socket — and the cache snapshots from the fd store, named `cache`.
    static func inheritedDescriptors() throws(ConfigurationError) -> (sockets: [Int32], snapshots: [Int32]) {
        let all = SystemdEnvironment.listenFileDescriptors()
        let snapshots = all.filter { $0.name == Daemon.snapshotStoreName }.map(\.fd)
        let passed = all.filter { $0.name != Daemon.snapshotStoreName }
        guard !passed.isEmpty else { return ([], snapshots) }
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
        return ([chosen.fd], snapshots)
    }

    /// Sizes SwiftNIO's shared event loop group to the CPUs this process may run on.
    ///
    /// NIO counts online CPUs and cgroup limits but not the affinity mask (taskset, systemd's
    /// CPUAffinity=). Pinned to one core, its default two loops would take turns on it (the cost is
    /// in docs/benchmarks.md). An explicit NIO_SINGLETON_GROUP_LOOP_COUNT wins.
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
        let arguments: [String: String]
        do {
            arguments = try DaemonConfiguration.commandLineValues(settings)
        } catch {
            throw ValidationError(error.description)
        }

        let environment = ProcessInfo.processInfo.environment
        if checkConfig {
            do {
                let report = try ConfigCheck.run(arguments: arguments, environment: environment)
                print(report.settings)
                for warning in report.warnings {
                    FileHandle.standardError.write(Data("contactd: warning: \(warning)\n".utf8))
                }
                print("contactd: the configuration is valid")
                return
            } catch {
                FileHandle.standardError.write(Data("contactd: \(error.description)\n".utf8))
                throw ExitCode(78)
            }
        }
        let notifier = SystemdNotifier()
        do {
            var configuration = try DaemonConfiguration.load(arguments: arguments, environment: environment)
            let level = configuration.logLevel
            // Under systemd with stderr going to the journal, log structured entries straight to
            // it; otherwise plain lines on stderr.
            let toJournal = SystemdEnvironment.stderrIsJournal(environment: environment)
            // One level for every handler, changed by a reload with a new log-level.
            let levelSwitch = LogLevelSwitch(level)
            LoggingSystem.bootstrap { label in
                if toJournal {
                    let handler = JournalLogHandler(label: label, identifier: "contactd")
                    return SwitchedLogHandler(handler, levelSwitch: levelSwitch)
                }
                return SwitchedLogHandler(StreamLogHandler.standardError(label: label), levelSwitch: levelSwitch)
            }
            let logger = Logger(label: "contactd")
            configuration.limits.maxConnections = ProcessLimits.apply(
                maxConnections: configuration.limits.maxConnections,
                logger: logger
            )
            let inherited = try Self.inheritedDescriptors()
            try await Daemon.run(
                configuration: configuration,
                environment: environment,
                inheritedSockets: inherited.sockets,
                storedSnapshots: inherited.snapshots,
                reloadConfiguration: { () throws(ConfigurationError) in
                    try DaemonConfiguration.load(arguments: arguments, environment: environment)
                },
                logLevelSwitch: levelSwitch,
                logger: logger
            )
        } catch let error as ConfigurationError {
            FileHandle.standardError.write(Data("contactd: \(error.description)\n".utf8))
            notifier.failure(errno: EINVAL, status: "Failed: \(error.description)")
            throw ExitCode(78)
        }
    }
}
