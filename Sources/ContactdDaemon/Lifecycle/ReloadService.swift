import ContactdCore
import ContactdJSON
import ContactdProtocol
import Logging
import ServiceLifecycle
import Systemd
import UnixSignals

/// On SIGHUP: `Reloader.reload()` (SPEC §4). `daemon.reload` (`contactctl reload`) calls the
/// same reloader, so a signal and a request at once are two reloads one after the other.
struct ReloadService: Service, CustomStringConvertible {
    var description: String { "ReloadService" }

    let reloader: Reloader

    func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            _ = await reloader.reload()
        }
    }
}

/// What one reload did: `daemon.reload`'s result, and what the log says.
package struct ReloadReport: Sendable, Equatable {
    /// Whether the token read again differs from the one in use; `nil` in `--demo` or when it
    /// could not be read (`tokenError`).
    package var tokenChanged: Bool?
    package var tokenError: String?
    /// Why the config file did not load (the running configuration stays); `nil` when it did.
    package var configurationError: String?
    /// Settings changed and applied at once, with their new values, in the settings' order.
    package var applied: [(name: String, value: String)] = []
    /// Settings changed in the file or environment that take effect after a restart.
    package var afterRestart: [String] = []

    package static func == (a: ReloadReport, b: ReloadReport) -> Bool {
        a.tokenChanged == b.tokenChanged && a.tokenError == b.tokenError
            && a.configurationError == b.configurationError && a.afterRestart == b.afterRestart
            && a.applied.map(\.name) == b.applied.map(\.name) && a.applied.map(\.value) == b.applied.map(\.value)
    }

    /// `daemon.reload`'s result.
    var result: ReloadResult {
        var result = ReloadResult()
        result.applied = Dictionary(applied.map { ($0.name, $0.value) }, uniquingKeysWith: { $1 })
        result.afterRestart = afterRestart
        result.token = tokenChanged.map { $0 ? .changed : .unchanged }
        result.tokenError = tokenError
        result.configurationError = configurationError
        return result
    }
}

/// Re-reads the token and the config file, and applies what can change while running: the
/// settings the table marks `.live` change at once; any other changed setting is
/// named as taking effect after a restart. `RELOADING=1` before, `READY=1` after.
///
/// A config file that no longer loads (an unknown key, a bad value) changes nothing: the running
/// configuration stays, and the report and the log say why. An actor: reloads never overlap, and
/// each compares against the configuration the one before it left.
actor Reloader {
    let tokenFile: String?
    let environment: [String: String]
    let demo: Bool
    let source: HTTPContactSource
    let status: LiveStatus
    let lookup: ContactResolver
    let notifier: SystemdNotifier
    let logger: Logger
    /// How to load the configuration again (flags and environment as at start, the config file
    /// as it is now); `nil` when there is nothing to re-read.
    let loadConfiguration: (@Sendable () throws(ConfigurationError) -> DaemonConfiguration)?
    /// The level the log handlers follow, when it can change while running.
    let levelSwitch: LogLevelSwitch?
    /// Where `daemon.config`'s answer is replaced when a setting changes live.
    let dispatcher: RequestDispatcher
    let tokenSource: Secret.Source
    /// The allow lists new connections are checked against.
    let allowLists: AllowLists
    /// The configuration the daemon runs with now.
    private var current: DaemonConfiguration

    init(
        tokenFile: String?,
        environment: [String: String],
        demo: Bool,
        source: HTTPContactSource,
        status: LiveStatus,
        lookup: ContactResolver,
        notifier: SystemdNotifier,
        logger: Logger,
        running: DaemonConfiguration,
        loadConfiguration: (@Sendable () throws(ConfigurationError) -> DaemonConfiguration)?,
        levelSwitch: LogLevelSwitch?,
        dispatcher: RequestDispatcher,
        tokenSource: Secret.Source,
        allowLists: AllowLists
    ) {
        self.tokenFile = tokenFile
        self.environment = environment
        self.demo = demo
        self.source = source
        self.status = status
        self.lookup = lookup
        self.notifier = notifier
        self.logger = logger
        self.current = running
        self.loadConfiguration = loadConfiguration
        self.levelSwitch = levelSwitch
        self.dispatcher = dispatcher
        self.tokenSource = tokenSource
        self.allowLists = allowLists
    }

    func reload() -> ReloadReport {
        notifier.reloading()
        var report = ReloadReport()
        if !demo {
            do {
                let token = try Secret.apiToken(file: tokenFile, environment: environment).secret
                let changed = source.replaceToken(token)
                lookup.tokenReloaded(changed: changed)
                report.tokenChanged = changed
                logger.notice("reloaded: token re-read", metadata: ["token.changed": "\(changed)"])
            } catch {
                report.tokenError = "\(error)"
                logger.error("reload failed; keeping the current token", metadata: ["error": "\(error)"])
            }
        }
        if let loadConfiguration { reloadConfiguration(loadConfiguration, into: &report) }
        notifier.ready(status: status.statusLine(stats: lookup.stats, upstreamFailure: lookup.upstreamFailure))
        return report
    }

    private func reloadConfiguration(
        _ load: @Sendable () throws(ConfigurationError) -> DaemonConfiguration,
        into report: inout ReloadReport
    ) {
        let fresh: DaemonConfiguration
        do {
            fresh = try load()
        } catch {
            report.configurationError = error.description
            logger.warning("configuration not reloaded: \(error.description); the running configuration stays")
            return
        }
        if !fresh.socket.allowUIDs.isEmpty || !fresh.socket.allowGIDs.isEmpty, let reason = AllowLists.unusableReason()
        {
            report.configurationError = "--allow-uid/--allow-gid: \(reason)"
            logger.warning(
                "configuration not reloaded: --allow-uid/--allow-gid: \(reason); the running configuration stays"
            )
            return
        }
        let changed = DaemonConfiguration.settings.filter { $0.text(in: fresh) != $0.text(in: current) }
        var applied: [Setting] = []
        var receivers: Set<Setting.Receiver> = []
        for setting in changed {
            guard case .live(let receiver) = setting.reload else { continue }
            // Without a level switch (a logger made elsewhere) the level cannot change live.
            if receiver == .logLevel, levelSwitch == nil { continue }
            setting.copyValue(from: fresh, to: &current)
            current.sources[setting.name] = fresh.sources[setting.name]
            applied.append(setting)
            receivers.insert(receiver)
        }
        for receiver in receivers {
            switch receiver {
            case .lookup:
                lookup.reconfigure(
                    policy: current.policy,
                    ttl: current.cache.ttl,
                    negativeTTL: current.cache.negativeTTL
                )
            case .allowLists:
                allowLists.set(uids: current.socket.allowUIDs, gids: current.socket.allowGIDs)
            case .logLevel:
                levelSwitch?.set(current.logLevel)
            }
        }
        report.applied = applied.map { ($0.name, $0.text(in: current)) }
        report.afterRestart = changed.filter { setting in !applied.contains { $0.name == setting.name } }.map(\.name)
        if !applied.isEmpty {
            dispatcher.replaceConfigReport(current.report(tokenSource: tokenSource))
            logger.notice(
                "reloaded: applied at once",
                metadata: ["settings": "\(report.applied.map { "\($0.name)=\($0.value)" }.joined(separator: ", "))"]
            )
        }
        if !report.afterRestart.isEmpty {
            logger.warning(
                "configuration changed; the new values take effect after a restart",
                metadata: ["settings": "\(report.afterRestart.joined(separator: ", "))"]
            )
        } else if applied.isEmpty {
            logger.notice("reloaded: configuration unchanged")
        }
    }
}
