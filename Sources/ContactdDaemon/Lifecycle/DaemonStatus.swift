import ContactdCore
import ContactdJSON
import ContactdProtocol
import Foundation
import Synchronization

/// Live facts about the daemon for `daemon.status` and systemd's `STATUS=` line.
package final class DaemonStatus: Sendable {
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

    /// The `daemon.status` result.
    package func json(stats: LookupStats, upstreamFailure: LookupError?) -> JSONValue {
        var api: [String: JSONValue] = [
            "state": .string(Self.apiState(stats: stats, upstreamFailure: upstreamFailure)),
            "circuit": .string(stats.circuitState),
            "token_rejected": .bool(stats.tokenRejected),
            "queue_depth": .int(stats.queueDepth),
        ]
        if let staleFor = stats.servingStaleFor {
            api["serving_stale_since"] = .string(Self.wallClock(secondsAgo: staleFor))
        }
        return .object([
            "version": .string(ContactdVersion.current),
            "pid": .int(Int(ProcessInfo.processInfo.processIdentifier)),
            "uptime": .double(uptime),
            "connections": .int(connections.load(ordering: .relaxed)),
            "fast_path": .object([
                "enabled": .bool(fastPathEnabled.load(ordering: .relaxed)),
                "connections": .int(fastPathConnections.load(ordering: .relaxed)),
                "handed_over": .int(handedOver.load(ordering: .relaxed)),
            ]),
            "ready": .bool(ready),
            "draining": .bool(draining),
            "cache": .object([
                "entries": .int(stats.entries),
                "hit_ratio": .double(stats.hitRatio),
            ]),
            "api": .object(JSONObject(api.sorted { $0.key < $1.key })),
        ])
    }

    /// The API's state in one word for programs: `ok`, `token_rejected`, `circuit_open`,
    /// `rate_limited`, `unavailable` or `bad_responses`.
    static func apiState(stats: LookupStats, upstreamFailure: LookupError?) -> String {
        if stats.tokenRejected { return "token_rejected" }
        if stats.circuitState != "closed" { return "circuit_open" }
        switch upstreamFailure {
        case .rateLimited?: return "rate_limited"
        case .unavailable?: return "unavailable"
        case .badResponse?: return "bad_responses"
        case .unauthorized?: return "token_rejected"
        case nil, .notFound?, .rejectedByAPI?, .overloaded?: return "ok"
        }
    }

    /// The line systemd shows, e.g.
    /// `Serving; 42 cached, hit ratio 93.1%, API ok (17 requests, 0 failed), 3 connections`, or
    /// with an outage `…, API circuit open, serving stale since 14:02:11 UTC (…), …`.
    package func statusLine(stats: LookupStats, upstreamFailure: LookupError?) -> String {
        let ratio = String(format: "%.1f", stats.hitRatio * 100)
        var api: String
        switch Self.apiState(stats: stats, upstreamFailure: upstreamFailure) {
        case "token_rejected": api = "API REJECTS THE TOKEN"
        case "circuit_open": api = "API circuit open"
        case "rate_limited": api = "API rate limiting"
        case "unavailable": api = "API unavailable"
        case "bad_responses": api = "API answering garbage"
        default: api = "API ok"
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
