import AsyncHTTPClient
import ContactdCore
import ContactdSharedCache
import ContactdSnapshot
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Systemd
import UnixSignals

/// The daemon: loads the token, wires cache, API client and socket server, and runs them until a
/// graceful shutdown (SIGTERM/SIGINT) or cancellation.
package enum Daemon {
    /// The name of the cache snapshot in systemd's fd store (`LISTEN_FDNAMES`).
    package static let snapshotStoreName = WarmRestart.storeName

    /// Runs the daemon to completion.
    ///
    /// - Parameters:
    ///   - environment: the process environment (token sources, `NOTIFY_SOCKET` is read by libsystemd).
    ///   - inheritedSockets: listening sockets from socket activation; the first is served.
    ///   - storedSnapshots: cache snapshots systemd passed back from the fd store; restored
    ///     before `READY=1`, then closed.
    ///   - reloadConfiguration: loads the configuration again on SIGHUP; `nil`: only the token.
    ///   - logLevelSwitch: the level `logger`'s handlers follow, set by a reload.
    ///   - onReady: called once the socket accepts and the token is loaded, with the socket path.
    /// - Throws: `ConfigurationError` for a missing token or an unusable socket path (exit 78).
    package static func run(
        configuration: DaemonConfiguration,
        environment: [String: String],
        inheritedSockets: [Int32] = [],
        storedSnapshots: [Int32] = [],
        reloadConfiguration: (@Sendable () throws(ConfigurationError) -> DaemonConfiguration)? = nil,
        logLevelSwitch: LogLevelSwitch? = nil,
        logger: Logger,
        onReady: @escaping @Sendable () -> Void = {}
    ) async throws {
        if !configuration.socket.allowUIDs.isEmpty || !configuration.socket.allowGIDs.isEmpty,
            let reason = AllowLists.unusableReason()
        {
            throw ConfigurationError("--allow-uid/--allow-gid: \(reason)")
        }
        try await withAPI(configuration, environment: environment, logger: logger) { source, tokenSource in
            try await serve(
                configuration: configuration,
                source: source,
                tokenSource: tokenSource,
                environment: environment,
                inheritedSocket: inheritedSockets.first,
                storedSnapshots: storedSnapshots,
                reloadConfiguration: reloadConfiguration,
                logLevelSwitch: logLevelSwitch,
                logger: logger,
                onReady: onReady
            )
        }
        logger.info("stopped")
    }

    /// Runs `body` with the API's client (and, under `--demo`, its loopback stand-in); shuts both
    /// down when `body` ends, however it ends. The one place the HTTP client lives and dies.
    private static func withAPI(
        _ configuration: DaemonConfiguration,
        environment: [String: String],
        logger: Logger,
        _ body: (HTTPContactSource, Secret.Source) async throws -> Void
    ) async throws {
        var url = configuration.upstream.url
        let token: Secret
        let tokenSource: Secret.Source
        var demo: DemoAPI?
        if configuration.demo {
            let standIn = try await DemoAPI.start()
            demo = standIn
            url = standIn.baseURL
            token = Secret(standIn.token)
            tokenSource = .demo
            logger.notice("demo mode: serving bundled sample contacts", metadata: ["upstream.url": "\(url)"])
        } else {
            (token, tokenSource) = try Secret.apiToken(
                file: configuration.upstream.tokenFile,
                environment: environment
            )
            if let warning = Secret.permissionWarning(tokenFile: configuration.upstream.tokenFile) {
                logger.warning("token file is readable by other users", metadata: ["token.file": "\(warning)"])
            }
        }
        var clientConfiguration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: .init(
                connect: TimeAmount(min(configuration.upstream.connectTimeout, configuration.policy.deadline))
            )
        )
        // Keep as many connections as the API budget lets requests run at once. A failed connect
        // fails its request at once (the pool would otherwise try again until the request's
        // deadline): the lookup's retry policy and circuit breaker decide what happens next.
        clientConfiguration.connectionPool = .init(
            idleTimeout: .seconds(60),
            concurrentHTTP1ConnectionsPerHostSoftLimit: configuration.policy.maxConcurrent
        )
        clientConfiguration.connectionPool.retryConnectionEstablishment = false
        let client = HTTPClient(
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            configuration: clientConfiguration,
            backgroundActivityLogger: HTTPClientLogHandler.logger(writingTo: logger)
        )
        let source = HTTPContactSource(client: client, baseURL: url, token: token, logger: logger)
        let outcome: Result<Void, any Error>
        do {
            try await body(source, tokenSource)
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        try? await client.shutdown()
        await demo?.shutdown()
        try outcome.get()
    }

    /// Builds the daemon's parts and runs its services until shutdown.
    private static func serve(
        configuration: DaemonConfiguration,
        source: HTTPContactSource,
        tokenSource: Secret.Source,
        environment: [String: String],
        inheritedSocket: Int32?,
        storedSnapshots: [Int32],
        reloadConfiguration: (@Sendable () throws(ConfigurationError) -> DaemonConfiguration)?,
        logLevelSwitch: LogLevelSwitch?,
        logger: Logger,
        onReady: @escaping @Sendable () -> Void
    ) async throws {
        let parts = try DaemonParts(
            configuration: configuration,
            source: source,
            tokenSource: tokenSource,
            environment: environment,
            storedSnapshots: storedSnapshots,
            reloadConfiguration: reloadConfiguration,
            logLevelSwitch: logLevelSwitch,
            logger: logger
        )
        let services = try await parts.services(inheritedSocket: inheritedSocket, onReady: onReady)
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        )
        try await group.run()
    }
}
