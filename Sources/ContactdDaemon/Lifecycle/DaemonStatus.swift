import ContactdCore
import ContactdJSON
import Foundation
import Synchronization

/// Live facts about the daemon for `daemon.status` and systemd's `STATUS=` line.
package final class DaemonStatus: Sendable {
    private let startedAt = ContinuousClock.now
    private let readyFlag = Atomic<Bool>(false)
    private let drainingFlag = Atomic<Bool>(false)
    /// Open client connections.
    package let connections = Atomic<Int>(0)

    package init() {}

    /// Whether the socket accepts and the token is loaded, and the daemon is not draining.
    package var ready: Bool {
        readyFlag.load(ordering: .relaxed) && !draining
    }

    package func markReady() { readyFlag.store(true, ordering: .relaxed) }

    /// Whether a shutdown has begun.
    package var draining: Bool { drainingFlag.load(ordering: .relaxed) }

    package func markDraining() { drainingFlag.store(true, ordering: .relaxed) }

    /// Seconds since start.
    package var uptime: Double {
        let elapsed = startedAt.duration(to: .now)
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
    }

    /// The `daemon.status` result.
    package func json(stats: LookupStats) -> JSONValue {
        .object([
            "version": .string(ContactdVersion.current),
            "pid": .int(Int(ProcessInfo.processInfo.processIdentifier)),
            "uptime": .double(uptime),
            "connections": .int(connections.load(ordering: .relaxed)),
            "ready": .bool(ready),
            "draining": .bool(draining),
            "cache": .object([
                "entries": .int(stats.entries),
                "hit_ratio": .double(stats.hitRatio),
            ]),
        ])
    }

    /// The line systemd shows, e.g.
    /// `Serving; 42 cached, hit ratio 93.1%, API ok (17 requests, 0 failed), 3 connections`.
    package func statusLine(stats: LookupStats, upstreamFailure: LookupError?) -> String {
        let ratio = String(format: "%.1f", stats.hitRatio * 100)
        let api: String
        switch upstreamFailure {
        case nil: api = "API ok"
        case .unauthorized?: api = "API REJECTS THE TOKEN"
        case .rateLimited?: api = "API rate limiting"
        case .unavailable?: api = "API unavailable"
        case .badResponse?: api = "API answering garbage"
        case .rejectedByAPI?, .notFound?: api = "API ok"
        }
        return "\(draining ? "Draining" : "Serving"); \(stats.entries) cached, hit ratio \(ratio)%, "
            + "\(api) (\(stats.upstreamRequests) requests, \(stats.upstreamErrors) failed), "
            + "\(connections.load(ordering: .relaxed)) connections"
    }
}
