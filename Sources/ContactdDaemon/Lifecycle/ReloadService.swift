import ContactdCore
import Logging
import ServiceLifecycle
import Systemd
import UnixSignals

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
