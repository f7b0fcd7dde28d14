import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Systemd

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
