import ContactdCore
import Logging
import ServiceLifecycle
import Systemd
import UnixSignals

/// On SIGHUP: `RELOADING=1`, re-read the token and the config file, `READY=1` (SPEC §4).
///
/// A config file that no longer loads (an unknown key, a bad value) is a warning and the running
/// configuration stays. Settings do not change while running yet: a changed one is named in one
/// warning as taking effect after a restart.
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
            if let loadConfiguration { reloadConfiguration(loadConfiguration) }
            notifier.ready(status: status.statusLine(stats: lookup.stats, upstreamFailure: lookup.upstreamFailure))
        }
    }

    private func reloadConfiguration(
        _ load: @Sendable () throws(ConfigurationError) -> DaemonConfiguration
    ) {
        let fresh: DaemonConfiguration
        do {
            fresh = try load()
        } catch {
            logger.warning("configuration not reloaded: \(error.description); the running configuration stays")
            return
        }
        let changed = DaemonConfiguration.settings.filter { $0.text(in: fresh) != $0.text(in: running) }
        guard !changed.isEmpty else {
            logger.notice("reloaded: configuration unchanged")
            return
        }
        logger.warning(
            "configuration changed; the new values take effect after a restart",
            metadata: ["settings": "\(changed.map(\.name).joined(separator: ", "))"]
        )
    }
}
