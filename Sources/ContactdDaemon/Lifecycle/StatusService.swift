import ContactdCore
import ServiceLifecycle
import Systemd

/// Keeps systemd's `STATUS=` line current.
struct StatusService: Service, CustomStringConvertible {
    var description: String { "StatusService" }

    let status: LiveStatus
    let lookup: ContactResolver
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
