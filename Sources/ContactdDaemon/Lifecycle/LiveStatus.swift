import ContactdCore
import ContactdJSON
import ContactdProtocol
import Foundation
import Synchronization

/// Live facts about the daemon for `daemon.status` and systemd's `STATUS=` line.
package final class LiveStatus: Sendable {
    private let startedAt = ContinuousClock.now
    private let readyFlag = Atomic<Bool>(false)
    private let drainingFlag = Atomic<Bool>(false)
    /// Open client connections.
    package let connections = Atomic<Int>(0)
    /// Whether plain hits are served on the fast lane (`--fast-path`).
    package let fastPathEnabled = Atomic<Bool>(false)
    /// Open connections still on the fast lane (part of `connections`).
    package let fastPathConnections = Atomic<Int>(0)
    /// Connections the fast lane has handed to NIO since start.
    package let handedOver = Atomic<Int>(0)

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

    /// The `daemon.status` result (the shared cache's member is the composer's to add).
    package func report(stats: LookupStats, upstreamFailure: LookupError?) -> DaemonStatus {
        var report = DaemonStatus()
        report.version = ContactdVersion.current
        report.pid = Int(ProcessInfo.processInfo.processIdentifier)
        report.uptime = uptime
        report.connections = connections.load(ordering: .relaxed)
        var fastPath = DaemonStatus.FastPath()
        fastPath.enabled = fastPathEnabled.load(ordering: .relaxed)
        fastPath.connections = fastPathConnections.load(ordering: .relaxed)
        fastPath.handedOver = handedOver.load(ordering: .relaxed)
        report.fastPath = fastPath
        report.ready = ready
        report.draining = draining
        var cache = DaemonStatus.Cache()
        cache.entries = stats.entries
        cache.hitRatio = stats.hitRatio
        report.cache = cache
        var api = DaemonStatus.API()
        api.state = Self.apiState(stats: stats, upstreamFailure: upstreamFailure)
        api.circuit = stats.circuitState
        api.tokenRejected = stats.tokenRejected
        api.queueDepth = stats.queueDepth
        api.servingStaleSince = stats.servingStaleFor.map { Self.wallClock(secondsAgo: $0) }
        report.api = api
        return report
    }

    /// The API's state in one word for programs.
    static func apiState(stats: LookupStats, upstreamFailure: LookupError?) -> APIState {
        if stats.tokenRejected { return .tokenRejected }
        if stats.circuitState != .closed { return .circuitOpen }
        switch upstreamFailure {
        case .rateLimited?: return .rateLimited
        case .unavailable?: return .unavailable
        case .badResponse?: return .badResponses
        case .unauthorized?: return .tokenRejected
        case nil, .notFound?, .rejectedByAPI?, .overloaded?: return .ok
        }
    }

    /// The line systemd shows, e.g.
    /// `Serving; 42 cached, hit ratio 93.1%, API ok (17 requests, 0 failed), 3 connections`, or
    /// with an outage `…, API circuit open, serving stale since 14:02:11 UTC (…), …`.
    package func statusLine(stats: LookupStats, upstreamFailure: LookupError?) -> String {
        let ratio = String(format: "%.1f", stats.hitRatio * 100)
        var api: String
        switch Self.apiState(stats: stats, upstreamFailure: upstreamFailure) {
        case .tokenRejected: api = "API REJECTS THE TOKEN"
        case .circuitOpen: api = "API circuit open"
        case .rateLimited: api = "API rate limiting"
        case .unavailable: api = "API unavailable"
        case .badResponses: api = "API answering garbage"
        case .ok, .unknown: api = "API ok"
        }
        if let staleFor = stats.servingStaleFor {
            api += ", serving stale since " + Self.wallClock(secondsAgo: staleFor, timeOnly: true)
        }
        return "\(draining ? "Draining" : "Serving"); \(stats.entries) cached, hit ratio \(ratio)%, "
            + "\(api) (\(stats.upstreamRequests) requests, \(stats.upstreamErrors) failed), "
            + "\(connections.load(ordering: .relaxed)) connections"
    }

    /// The UTC wall-clock time `seconds` ago, ISO 8601 (or `HH:MM:SS UTC`).
    static func wallClock(secondsAgo seconds: Double, timeOnly: Bool = false) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = timeOnly ? "HH:mm:ss 'UTC'" : "yyyy-MM-dd'T'HH:mm:ss'Z'"
        return formatter.string(from: Date(timeIntervalSinceNow: -seconds))
    }
}
