import ContactdCore
import Logging
import ServiceLifecycle
import Systemd
import UnixSignals

/// On SIGHUP: `RELOADING=1`, re-read the token and the config file, `READY=1` (SPEC §4).
///
/// A config file that no longer loads (an unknown key, a bad value) is a warning and the running
/// configuration stays. The settings in `DaemonConfiguration.appliedLive` change at once; any other changed setting
/// is named in one warning as taking effect after a restart.
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
    /// The configuration the daemon runs with, and how to load it again (flags and environment as
    /// at start, the config file as it is now); `nil` when there is nothing to re-read.
    let running: DaemonConfiguration
    let loadConfiguration: (@Sendable () throws(ConfigurationError) -> DaemonConfiguration)?
    /// The level the log handlers follow, when it can change while running.
    let levelSwitch: LogLevelSwitch?
    /// Where `daemon.config`'s answer is replaced when a setting changes live.
    let dispatcher: RequestDispatcher
    let tokenSource: APIToken.Source
    /// The allow lists new connections are checked against.
    let allowLists: AllowLists

    func run() async throws {
        var current = running
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
            if let loadConfiguration { reloadConfiguration(loadConfiguration, current: &current) }
            notifier.ready(status: status.statusLine(stats: lookup.stats, upstreamFailure: lookup.upstreamFailure))
        }
    }

    private func reloadConfiguration(
        _ load: @Sendable () throws(ConfigurationError) -> DaemonConfiguration,
        current: inout DaemonConfiguration
    ) {
        let fresh: DaemonConfiguration
        do {
            fresh = try load()
        } catch {
            logger.warning("configuration not reloaded: \(error.description); the running configuration stays")
            return
        }
        if !fresh.socket.allowUIDs.isEmpty || !fresh.socket.allowGIDs.isEmpty, let reason = AllowLists.unusableReason()
        {
            logger.warning(
                "configuration not reloaded: --allow-uid/--allow-gid: \(reason); the running configuration stays"
            )
            return
        }
        let changed = DaemonConfiguration.settings.filter { $0.text(in: fresh) != $0.text(in: current) }
        var applied: [Setting] = []
        for setting in changed where DaemonConfiguration.appliedLive.contains(setting.name) {
            guard setting.name != "log-level" || levelSwitch != nil else { continue }
            // The text a setting shows is text it takes back (a test holds every setting to that).
            guard (try? setting.apply(setting.text(in: fresh), to: &current)) != nil else { continue }
            current.sources[setting.name] = fresh.sources[setting.name]
            applied.append(setting)
        }
        if !applied.isEmpty {
            levelSwitch?.set(current.logLevel)
            lookup.reconfigure(policy: current.policy, ttl: current.cache.ttl, negativeTTL: current.cache.negativeTTL)
            allowLists.set(uids: current.socket.allowUIDs, gids: current.socket.allowGIDs)
        }
        let needRestart = changed.filter { setting in !applied.contains { $0.name == setting.name } }
        if !applied.isEmpty {
            dispatcher.replaceConfigReport(current.report(tokenSource: tokenSource))
            logger.notice(
                "reloaded: applied at once",
                metadata: [
                    "settings": "\(applied.map { "\($0.name)=\($0.text(in: current))" }.joined(separator: ", "))"
                ]
            )
        }
        if !needRestart.isEmpty {
            logger.warning(
                "configuration changed; the new values take effect after a restart",
                metadata: ["settings": "\(needRestart.map(\.name).joined(separator: ", "))"]
            )
        } else if applied.isEmpty {
            logger.notice("reloaded: configuration unchanged")
        }
    }
}
