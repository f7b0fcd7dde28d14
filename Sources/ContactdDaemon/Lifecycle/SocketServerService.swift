import ContactdCore
import ContactdProtocol
import Logging
import ServiceLifecycle
import Systemd

/// Serves the socket until shutdown, then drains (SPEC §4).
struct SocketServerService: Service, CustomStringConvertible {
    // ServiceLifecycle logs each service's description; the default one would dump every field.
    var description: String { "SocketServerService" }

    let server: SocketServer
    let inheritedSocket: Int32?
    let shutdownTimeout: Duration
    let status: LiveStatus
    let lookup: ContactResolver
    let notifier: SystemdNotifier
    let logger: Logger
    let onReady: @Sendable () -> Void

    func run() async throws {
        let listener = try await server.listen(inheritedSocket: inheritedSocket)
        status.markReady()
        notifier.ready(status: status.statusLine(stats: lookup.stats, upstreamFailure: lookup.upstreamFailure))
        logger.notice(
            "ready",
            metadata: ["version": "\(ContactdVersion.current)", "limit.nofile": "\(ProcessLimits.descriptorLimit)"]
        )
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
        notifier.extendTimeout(microseconds: UInt64((shutdownTimeout + .seconds(5)).nanoseconds / 1000))
        logger.notice(
            "stopping: draining connections",
            metadata: ["shutdown.timeout": "\(shutdownTimeout.settingText)"]
        )
        await server.stopAccepting(listener)
        let finished = await server.drainConnections(timeout: shutdownTimeout)
        if !finished {
            logger.warning("drain timed out; closed the remaining connections")
        }
    }
}
