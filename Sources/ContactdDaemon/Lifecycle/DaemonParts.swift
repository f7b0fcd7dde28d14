import ContactdCore
import ContactdSharedCache
import ContactdSnapshot
import Logging
import ServiceLifecycle
import Systemd
import Tracing

/// What the daemon is made of, built from its configuration before any service runs; then the
/// services that run them, as one list. `Daemon.serve` builds one and runs its services.
struct DaemonParts {
    let configuration: DaemonConfiguration
    let logger: Logger
    let notifier = SystemdNotifier()
    let warmRestart: WarmRestart
    let metrics = DaemonMetrics()
    /// The shared cache (`--shared-cache`) and its secrets, never logged.
    let sharedCache: (cache: SharedCache, password: Secret?, sentinelPassword: Secret?)?
    /// The tracer `--otlp-endpoint` exports through, and the service that sends the spans.
    let traceExport: (tracer: any Tracer, service: any Service)?
    let lookup: ContactResolver
    let status = LiveStatus()
    let server: SocketServer
    let reloader: Reloader

    init(
        configuration: DaemonConfiguration,
        source: HTTPContactSource,
        tokenSource: Secret.Source,
        environment: [String: String],
        storedSnapshots: [Int32],
        reloadConfiguration: (@Sendable () throws(ConfigurationError) -> DaemonConfiguration)?,
        logLevelSwitch: LogLevelSwitch?,
        logger: Logger
    ) throws {
        self.configuration = configuration
        self.logger = logger
        let cache = ContactCache(configuration: configuration.cache, clock: configuration.clock)
        warmRestart = Self.warmRestart(
            configuration,
            cache: cache,
            environment: environment,
            notifier: notifier,
            logger: logger
        )
        warmRestart.restore(storedDescriptors: storedSnapshots)
        sharedCache = try Self.sharedCache(configuration, environment: environment, logger: logger)
        traceExport = try configuration.otlpEndpoint.map { endpoint throws(ConfigurationError) in
            try TraceExport.make(endpoint: endpoint, logger: logger)
        }
        lookup = ContactResolver(
            cache: cache,
            source: source,
            policy: configuration.policy,
            clock: configuration.clock,
            observer: metrics,
            shared: sharedCache?.cache,
            tracing: LookupTracer(traceExport?.tracer),
            logger: logger
        )
        let callers = CallerUnits()
        let failures = LookupFailures()
        metrics.read(
            from: .init(
                lookup: lookup,
                status: status,
                callers: callers,
                failures: failures,
                snapshots: warmRestart,
                shared: sharedCache?.cache,
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
            sharedCache: sharedCache?.cache,
            failures: failures
        )
        server = SocketServer(
            configuration: configuration,
            dispatcher: dispatcher,
            status: status,
            callers: callers,
            logger: logger
        )
        reloader = Reloader(
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
    }

    /// The daemon's services, in the order they start. The group stops them in the reverse
    /// order, so the first listed stop last. The socket server and the snapshot writer end the
    /// daemon when they end; the others end only with it.
    func services(
        inheritedSocket: Int32?,
        onReady: @escaping @Sendable () -> Void
    ) async throws -> [ServiceGroupConfiguration.ServiceConfiguration] {
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        func add(_ service: (any Service)?, endsTheDaemon: Bool = false) {
            guard let service else { return }
            services.append(.init(service: service, successTerminationBehavior: endsTheDaemon ? .cancelGroup : .ignore))
        }
        // Stops last: the spans of the drain's last lookups go out.
        add(traceExport?.service)
        // Stops after the drain, so the final snapshot holds what the last fetches brought.
        add(SnapshotService(warmRestart: warmRestart, interval: configuration.snapshots.interval), endsTheDaemon: true)
        add(
            SocketServerService(
                server: server,
                inheritedSocket: inheritedSocket,
                shutdownTimeout: configuration.shutdownTimeout,
                status: status,
                lookup: lookup,
                notifier: notifier,
                logger: logger,
                onReady: onReady
            ),
            endsTheDaemon: true
        )
        add(ReloadService(reloader: reloader))
        add(StatusService(status: status, lookup: lookup, notifier: notifier))
        add(
            sharedCache.map { shared in
                SharedCacheService(
                    cache: shared.cache,
                    password: shared.password?.value,
                    sentinelPassword: shared.sentinelPassword?.value,
                    certificateAuthorities: configuration.sharedCache.caFile,
                    lookup: lookup,
                    logger: logger
                )
            }
        )
        add(try await metricsService())
        add(
            SystemdEnvironment.watchdogInterval().map { interval in
                WatchdogService(intervalMicroseconds: interval, server: server, notifier: notifier, logger: logger)
            }
        )
        return services
    }

    // MARK: Parts built from the configuration

    private static func warmRestart(
        _ configuration: DaemonConfiguration,
        cache: ContactCache,
        environment: [String: String],
        notifier: SystemdNotifier,
        logger: Logger
    ) -> WarmRestart {
        let policy = configuration.policy
        return WarmRestart(
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
    }

    /// The shared cache `--shared-cache` names, with its key and passwords; `nil` without one.
    private static func sharedCache(
        _ configuration: DaemonConfiguration,
        environment: [String: String],
        logger: Logger
    ) throws(ConfigurationError) -> (cache: SharedCache, password: Secret?, sentinelPassword: Secret?)? {
        // Read even without a shared cache: a secret file that is named and unreadable stops
        // the start either way.
        let password = try Secret.load(
            file: configuration.sharedCache.passwordFile,
            flag: "--shared-cache-password-file",
            credential: "shared-cache-password",
            environment: environment
        )
        let key = try Secret.load(
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
        guard let address = configuration.sharedCache.address else { return nil }
        let seal: SharedCacheSeal?
        do throws(SharedCacheSeal.KeyError) {
            if let key { seal = try SharedCacheSeal(key: key.secret.value) } else { seal = nil }
        } catch {
            throw ConfigurationError(error.description)
        }
        let cache = SharedCache(
            target: address,
            prefix: configuration.sharedCache.prefix,
            timeout: configuration.sharedCache.timeout,
            seal: seal,
            logger: logger
        )
        return (cache, password?.secret, sentinelPassword?.secret)
    }

    /// The `/metrics` listener (`--metrics-listen`), listening already; `nil` without one.
    private func metricsService() async throws -> MetricsService? {
        guard let address = configuration.metricsListen else { return nil }
        let status = self.status
        let metricsServer = try await MetricsServer.start(at: address, metrics: metrics) {
            Health(ready: status.ready, draining: status.draining)
        }
        logger.info("serving metrics", metadata: ["metrics.address": "\(address)"])
        return MetricsService(server: metricsServer)
    }
}
