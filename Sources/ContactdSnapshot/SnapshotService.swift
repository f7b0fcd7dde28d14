import NIOPosix
import ServiceLifecycle

/// Writes the cache snapshot every `--snapshot-interval` and once more on stop.
///
/// Listed first in the service group, so it is shut down last: the final snapshot is taken
/// after the socket server has drained and the fetches in flight have filled the cache.
package struct SnapshotService: Service, CustomStringConvertible {
    package var description: String { "SnapshotService" }

    let warmRestart: WarmRestart
    let interval: Duration

    package init(warmRestart: WarmRestart, interval: Duration) {
        self.warmRestart = warmRestart
        self.interval = interval
    }

    package func run() async {
        if interval > .zero {
            while true {
                do {
                    try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
                } catch {
                    break
                }
                if Task.isShuttingDownGracefully || Task.isCancelled { break }
                await save(final: false)
            }
        } else {
            try? await gracefulShutdown()
        }
        await save(final: true)
    }

    /// Writes on NIO's blocking-I/O pool: a large cache takes a second to write, which would hold
    /// one of the few cooperative threads.
    private func save(final: Bool) async {
        let warmRestart = warmRestart
        try? await NIOThreadPool.singleton.runIfActive { warmRestart.save(final: final) }
    }
}
