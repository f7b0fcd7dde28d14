import AsyncHTTPClient
import ContactdCore
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Systemd
import UnixSignals

/// The daemon: loads the token, wires cache, API client and socket server, and runs them until a
/// graceful shutdown (SIGTERM/SIGINT) or cancellation.
package enum Daemon {
    /// Runs the daemon to completion.
    ///
    /// - Parameters:
    ///   - environment: the process environment (token sources, `NOTIFY_SOCKET` is read by libsystemd).
    ///   - inheritedSockets: listening sockets from socket activation; the first is served.
    ///   - onReady: called once the socket accepts and the token is loaded, with the socket path.
    /// - Throws: `ConfigurationError` for a missing token or an unusable socket path (exit 78).
    package static func run(
        configuration: DaemonConfiguration,
        environment: [String: String],
        inheritedSockets: [Int32] = [],
        logger: Logger,
        onReady: @escaping @Sendable () -> Void = {}
    ) async throws {
        var configuration = configuration
        let notifier = SystemdNotifier()
        var demoAPI: DemoAPI?
        let token: APIToken
        if configuration.demo {
            let demo = try await DemoAPI.start()
            demoAPI = demo
            configuration.upstream.url = demo.baseURL
            token = APIToken(demo.token)
            logger.notice("demo mode: serving bundled sample contacts", metadata: ["upstream.url": "\(demo.baseURL)"])
        } else {
            token = try APIToken.load(tokenFile: configuration.upstream.tokenFile, environment: environment)
            if let warning = APIToken.permissionWarning(tokenFile: configuration.upstream.tokenFile) {
                logger.warning("token file is readable by other users", metadata: ["token.file": "\(warning)"])
            }
        }

        var clientConfiguration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: .init(connect: .milliseconds(Int64(min(configuration.policy.deadline, 5) * 1000)))
        )
        // Keep as many connections as the API budget lets requests run at once.
        clientConfiguration.connectionPool = .init(
            idleTimeout: .seconds(60),
            concurrentHTTP1ConnectionsPerHostSoftLimit: configuration.policy.maxConcurrent
        )
        let httpClient = HTTPClient(
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            configuration: clientConfiguration,
            backgroundActivityLogger: HTTPClientLogHandler.logger(writingTo: logger)
        )

        let source = HTTPContactSource(
            client: httpClient,
            baseURL: configuration.upstream.url,
            token: token,
            logger: logger
        )
        let lookup = ContactLookup(
            cache: ContactCache(configuration: configuration.cache, clock: configuration.clock),
            source: source,
            policy: configuration.policy,
            clock: configuration.clock,
            logger: logger
        )
        let status = DaemonStatus()
        let dispatcher = RequestDispatcher(
            lookup: lookup,
            status: status,
            logger: logger,
            logPersonalData: configuration.logPersonalData
        )
        let server = SocketServer(configuration: configuration, dispatcher: dispatcher, status: status, logger: logger)

        let serverService = SocketServerService(
            server: server,
            inheritedSocket: inheritedSockets.first,
            shutdownTimeout: configuration.shutdownTimeout,
            status: status,
            lookup: lookup,
            notifier: notifier,
            logger: logger,
            onReady: onReady
        )
        let reloadService = ReloadService(
            tokenFile: configuration.upstream.tokenFile,
            environment: environment,
            demo: configuration.demo,
            source: source,
            status: status,
            lookup: lookup,
            notifier: notifier,
            logger: logger
        )
        let statusService = StatusService(status: status, lookup: lookup, notifier: notifier)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: serverService),
            .init(service: reloadService, successTerminationBehavior: .ignore),
            .init(service: statusService, successTerminationBehavior: .ignore),
        ]
        if let interval = SystemdEnvironment.watchdogInterval() {
            let watchdog = WatchdogService(
                intervalMicroseconds: interval,
                server: server,
                notifier: notifier,
                logger: logger
            )
            services.append(.init(service: watchdog, successTerminationBehavior: .ignore))
        }
        let group = ServiceGroup(
            configuration: .init(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        do {
            try await group.run()
        } catch {
            try? await httpClient.shutdown()
            await demoAPI?.shutdown()
            throw error
        }
        try? await httpClient.shutdown()
        await demoAPI?.shutdown()
        logger.info("stopped")
    }
}

/// Serves the socket until shutdown, then drains (SPEC §4).
struct SocketServerService: Service, CustomStringConvertible {
    // ServiceLifecycle logs each service's description; the default one would dump every field.
    var description: String { "SocketServerService" }

    let server: SocketServer
    let inheritedSocket: Int32?
    let shutdownTimeout: Double
    let status: DaemonStatus
    let lookup: ContactLookup
    let notifier: SystemdNotifier
    let logger: Logger
    let onReady: @Sendable () -> Void

    func run() async throws {
        let listener = try await server.listen(inheritedSocket: inheritedSocket)
        status.markReady()
        notifier.ready(status: status.statusLine(stats: lookup.stats, upstreamFailure: lookup.upstreamFailure))
        logger.notice("ready")
        onReady()
        do {
            try await gracefulShutdown()
        } catch {
            // Cancelled, not asked to stop gracefully: close everything now.
            await server.stopAccepting(listener)
            await server.closeAllConnections()
            return
        }
        status.markDraining()
        notifier.stopping(status: "Draining: answering requests in flight")
        notifier.extendTimeout(microseconds: UInt64((shutdownTimeout + 5) * 1_000_000))
        logger.notice("stopping: draining connections", metadata: ["shutdown.timeout": "\(shutdownTimeout)"])
        await server.stopAccepting(listener)
        let finished = await server.drainConnections(timeout: shutdownTimeout)
        if !finished {
            logger.warning("drain timed out; closed the remaining connections")
        }
    }
}

/// On SIGHUP: `RELOADING=1`, re-read the token, `READY=1` (SPEC §4).
struct ReloadService: Service, CustomStringConvertible {
    // The default description would print `environment`, which may hold CONTACTD_API_TOKEN.
    var description: String { "ReloadService" }

    let tokenFile: String?
    let environment: [String: String]
    let demo: Bool
    let source: HTTPContactSource
    let status: DaemonStatus
    let lookup: ContactLookup
    let notifier: SystemdNotifier
    let logger: Logger

    func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            notifier.reloading()
            if !demo {
                do {
                    let token = try APIToken.load(tokenFile: tokenFile, environment: environment)
                    let changed = source.replaceToken(token)
                    lookup.tokenReloaded(changed: changed)
                    logger.notice("reloaded: token re-read", metadata: ["token.changed": "\(changed)"])
                } catch {
                    logger.error("reload failed; keeping the current token", metadata: ["error": "\(error)"])
                }
            }
            notifier.ready(status: status.statusLine(stats: lookup.stats, upstreamFailure: lookup.upstreamFailure))
        }
    }
}

/// Keeps systemd's `STATUS=` line current.
struct StatusService: Service, CustomStringConvertible {
    var description: String { "StatusService" }

    let status: DaemonStatus
    let lookup: ContactLookup
    let notifier: SystemdNotifier

    func run() async throws {
        while !Task.isCancelled, !status.draining {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(5)) }
            } catch {
                return
            }
            if status.draining || Task.isCancelled { return }
            notifier.status(status.statusLine(stats: lookup.stats, upstreamFailure: lookup.upstreamFailure))
        }
    }
}

/// Sends `WATCHDOG=1` at half the interval systemd asked for, but only after every event loop and
/// every fast-lane loop has answered a no-op: a daemon whose loops are wedged stops pinging and
/// systemd restarts it.
struct WatchdogService: Service, CustomStringConvertible {
    var description: String { "WatchdogService" }
    let intervalMicroseconds: UInt64
    let server: SocketServer
    let notifier: SystemdNotifier
    let logger: Logger

    func run() async throws {
        let half = Duration.microseconds(Int64(intervalMicroseconds / 2))
        logger.info("watchdog enabled", metadata: ["watchdog.usec": "\(intervalMicroseconds)"])
        while true {
            if await Self.eventLoopsAnswer() {
                await server.fastLaneAnswers()
                notifier.watchdog()
            } else {
                logger.error("event loops did not answer the liveness probe; not pinging the watchdog")
            }
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: half) }
            } catch {
                return
            }
        }
    }

    /// Whether every loop of the shared event loop group runs a submitted no-op.
    static func eventLoopsAnswer() async -> Bool {
        for loop in MultiThreadedEventLoopGroup.singleton.makeIterator() {
            do {
                try await loop.submit {}.get()
            } catch {
                return false
            }
        }
        return true
    }
}
