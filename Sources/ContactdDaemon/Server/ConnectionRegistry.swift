import NIOConcurrencyHelpers
import NIOCore
import Synchronization

/// The open client connections: counted against the limit, drained together on shutdown.
///
/// Two kinds count: NIO channels, and connections still on the fast lane (`FastLane`), which are
/// only counted here. A fast-lane connection handed to NIO keeps its place (`adoptFromFastLane`).
final class ConnectionRegistry: Sendable {
    private struct Open {
        var channels: [ObjectIdentifier: any Channel] = [:]
        var onFastLane = 0
        var count: Int { channels.count + onFastLane }
    }

    private let open = NIOLockedValueBox(Open())
    private let status: LiveStatus
    private let maxConnections: Int

    init(status: LiveStatus, maxConnections: Int) {
        self.status = status
        self.maxConnections = maxConnections
    }

    /// Registers `channel` unless the limit is reached; removes it again when it closes.
    func admit(_ channel: any Channel) -> Bool {
        let admitted = open.withLockedValue { open in
            guard open.count < maxConnections else { return false }
            open.channels[ObjectIdentifier(channel)] = channel
            return true
        }
        guard admitted else { return false }
        status.connections.add(1, ordering: .relaxed)
        removeWhenClosed(channel)
        return true
    }

    /// Counts a connection the fast lane accepted, unless the limit is reached.
    func admitFastLane() -> Bool {
        let admitted = open.withLockedValue { open in
            guard open.count < maxConnections else { return false }
            open.onFastLane += 1
            return true
        }
        if admitted {
            status.connections.add(1, ordering: .relaxed)
            status.fastPathConnections.add(1, ordering: .relaxed)
        }
        return admitted
    }

    /// A fast-lane connection closed.
    func releaseFastLane() {
        open.withLockedValue { $0.onFastLane -= 1 }
        status.connections.subtract(1, ordering: .relaxed)
        status.fastPathConnections.subtract(1, ordering: .relaxed)
    }

    /// A fast-lane connection is now `channel`: same place, no new check against the limit.
    func adoptFromFastLane(_ channel: any Channel) {
        open.withLockedValue { open in
            open.onFastLane -= 1
            open.channels[ObjectIdentifier(channel)] = channel
        }
        status.fastPathConnections.subtract(1, ordering: .relaxed)
        removeWhenClosed(channel)
    }

    private func removeWhenClosed(_ channel: any Channel) {
        channel.closeFuture.whenComplete { [self] _ in
            open.withLockedValue { _ = $0.channels.removeValue(forKey: ObjectIdentifier(channel)) }
            status.connections.subtract(1, ordering: .relaxed)
        }
    }

    /// Asks every connection to answer what it has received and close.
    func drainAll() {
        for channel in open.withLockedValue({ Array($0.channels.values) }) {
            channel.pipeline.fireUserInboundEventTriggered(DrainEvent())
        }
    }

    /// Closes every connection at once.
    func closeAll() {
        for channel in open.withLockedValue({ Array($0.channels.values) }) {
            channel.close(promise: nil)
        }
    }

    /// Waits until every connection open now has closed.
    func waitForAllClosed() async {
        for channel in open.withLockedValue({ Array($0.channels.values) }) {
            try? await channel.closeFuture.get()
        }
    }
}
