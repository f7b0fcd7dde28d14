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

    /// Wires the cache, the lookup and the socket server, and runs the services until shutdown.
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
        let notifier = SystemdNotifier()
        let cache = ContactCache(configuration: configuration.cache, clock: configuration.clock)
        let policy = configuration.policy
        let warmRestart = WarmRestart(
            cache: cache,
            // The demo's stand-in listens on a new port each run; its contacts are the same.
            api: configuration.demo ? "demo" : configuration.upstream.url,
            file: configuration.snapshots.file,
            interval: configuration.snapshots.interval,
            limits: CacheSnapshot.Limits(
                contact: (configuration.cache.ttl + max(policy.staleTTL, policy.staleIfError)).seconds,
                notFound: configuration.cache.negativeTTL.seconds
            ),
            environment: environment,
            notifier: notifier,
            logger: logger
        )
        warmRestart.restore(storedDescriptors: storedSnapshots)
        let metrics = DaemonMetrics()
        let sharedCachePassword = try Secret.load(
            file: configuration.sharedCache.passwordFile,
            flag: "--shared-cache-password-file",
            credential: "shared-cache-password",
            environment: environment
        )
        let sharedCacheKey = try Secret.load(
            file: configuration.sharedCache.keyFile,
            flag: "--shared-cache-key-file",
            credential: "shared-cache-key",
            environment: environment
        )
        let sentinelPassword = try Secret.load(
            file: configuration.sharedCache.sentinelPasswordFile,
            flag: "--shared-cache-sentinel-password-file",
            credential: "shared-cache-sentinel-password",
            environment: environment
        )
        let sharedCache = try configuration.sharedCache.address.map { address throws(ConfigurationError) in
            SharedCache(
                target: address,
                prefix: configuration.sharedCache.prefix,
                timeout: configuration.sharedCache.timeout,
                seal: try sharedCacheKey.map { key throws(ConfigurationError) in
                    do throws(SharedCacheSeal.KeyError) {
                        return try SharedCacheSeal(key: key.secret.value)
                    } catch {
                        throw ConfigurationError(error.description)
                    }
                },
                logger: logger
            )
        }
        let traceExport = try configuration.otlpEndpoint.map { endpoint throws(ConfigurationError) in
            try TraceExport.make(endpoint: endpoint, logger: logger)
        }
        let lookup = ContactLookup(
            cache: cache,
            source: source,
            policy: configuration.policy,
            clock: configuration.clock,
            observer: metrics,
            shared: sharedCache,
            tracing: LookupTracer(traceExport?.tracer),
            logger: logger
        )
        let status = DaemonStatus()
        let callers = CallerUnits()
        let failures = LookupFailures()
        metrics.read(
            from: .init(
                lookup: lookup,
                status: status,
                callers: callers,
                failures: failures,
                snapshots: warmRestart,
                shared: sharedCache,
                limits: (
                    configuration.cache.maxEntries, configuration.cache.maxBytes,
                    configuration.limits.maxConnections
                ),
                snapshotInterval: configuration.snapshots.interval
            )
        )
        let dispatcher = RequestDispatcher(
            lookup: lookup,
            status: status,
            logger: logger,
            logPersonalData: configuration.logPersonalData,
            configReport: configuration.report(tokenSource: tokenSource),
            levelSwitch: logLevelSwitch,
            metrics: metrics,
            sharedCache: sharedCache,
            failures: failures
        )
        let server = SocketServer(
            configuration: configuration,
            dispatcher: dispatcher,
            status: status,
            callers: callers,
            logger: logger
        )
        let reloader = Reloader(
            tokenFile: configuration.upstream.tokenFile,
            environment: environment,
            demo: configuration.demo,
            source: source,
            status: status,
            lookup: lookup,
            notifier: notifier,
            logger: logger,
            running: configuration,
            loadConfiguration: reloadConfiguration,
            levelSwitch: logLevelSwitch,
            dispatcher: dispatcher,
            tokenSource: tokenSource,
            allowLists: server.allowLists
        )
        dispatcher.reloader = reloader
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let traceExport {
            // Before everything: shut down last, so the spans of the drain's last lookups go out.
            services.append(.init(service: traceExport.service, successTerminationBehavior: .ignore))
        }
        services += [
            // First, so it is shut down last, after the drain: see SnapshotService.
            .init(service: SnapshotService(warmRestart: warmRestart, interval: configuration.snapshots.interval)),
            .init(
                service: SocketServerService(
                    server: server,
                    inheritedSocket: inheritedSocket,
                    shutdownTimeout: configuration.shutdownTimeout,
                    status: status,
                    lookup: lookup,
                    notifier: notifier,
                    logger: logger,
                    onReady: onReady
                )
            ),
            .init(service: ReloadService(reloader: reloader), successTerminationBehavior: .ignore),
            .init(
                service: StatusService(status: status, lookup: lookup, notifier: notifier),
                successTerminationBehavior: .ignore
            ),
        ]
        if let sharedCache {
            let service = SharedCacheService(
                cache: sharedCache,
                password: sharedCachePassword?.secret.value,
                sentinelPassword: sentinelPassword?.secret.value,
                certificateAuthorities: configuration.sharedCache.caFile,
                lookup: lookup,
                logger: logger
            )
            services.append(.init(service: service, successTerminationBehavior: .ignore))
        }
        if let address = configuration.metricsListen {
            let metricsServer = try await MetricsServer.start(at: address, metrics: metrics) {
                Health(ready: status.ready, draining: status.draining)
            }
            logger.info("serving metrics", metadata: ["metrics.address": "\(address)"])
            services.append(.init(service: MetricsService(server: metricsServer), successTerminationBehavior: .ignore))
        }
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
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        )
        try await group.run()
    }
}
