import NIOConcurrencyHelpers
import NIOCore
import Synchronization

/// The open client connections: counted against the limit, drained together on shutdown.
final class ConnectionRegistry: Sendable {
    private let channels = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])
    private let status: DaemonStatus
    private let maxConnections: Int

    init(status: DaemonStatus, maxConnections: Int) {
        self.status = status
        self.maxConnections = maxConnections
    }

    /// Registers `channel` unless the limit is reached; removes it again when it closes.
    func admit(_ channel: any Channel) -> Bool {
        let admitted = channels.withLockedValue { channels in
            guard channels.count < maxConnections else { return false }
            channels[ObjectIdentifier(channel)] = channel
            return true
        }
        guard admitted else { return false }
        status.connections.add(1, ordering: .relaxed)
        channel.closeFuture.whenComplete { [self] _ in
            channels.withLockedValue { _ = $0.removeValue(forKey: ObjectIdentifier(channel)) }
            status.connections.subtract(1, ordering: .relaxed)
        }
        return true
    }

    /// Asks every connection to answer what it has received and close.
    func drainAll() {
        for channel in channels.withLockedValue({ Array($0.values) }) {
            channel.pipeline.fireUserInboundEventTriggered(DrainEvent())
        }
    }

    /// Closes every connection at once.
    func closeAll() {
        for channel in channels.withLockedValue({ Array($0.values) }) {
            channel.close(promise: nil)
        }
    }

    /// Waits until every connection open now has closed.
    func waitForAllClosed() async {
        for channel in channels.withLockedValue({ Array($0.values) }) {
            try? await channel.closeFuture.get()
        }
    }
}
