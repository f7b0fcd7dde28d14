import ContactdProtocol

/// The shared cache's connection as a state machine: what every lookup reads first, and what
/// `SharedCacheService` does next. Events go in, decisions come out; nothing here waits, sends or
/// logs, so every path is tested on a manual clock (`SharedCacheLinkTests`).
///
///     connecting ──connected──▶ up ──failed/closed/moved──▶ down ──connected──▶ up
///          └──────attempt failed──────────────────────────▶ down ──attempt failed──▶ down
///
/// In `down` the service tries again after `pause`, which doubles from 0.25 s to 5 s; news from
/// the sentinels that the primary moved ends the pause at once and starts again from 0.25 s.
struct SharedCacheLink: Sendable {
    enum State: Sendable {
        /// The first connection is being made.
        case connecting
        /// Connected to `server` (in sentinel mode, the primary's `host:port`).
        case up(any SharedCacheConnection, server: String)
        /// The last attempt or call failed; nothing is asked until the service connects again.
        case down(reason: String)

        var reported: SharedCacheState {
            switch self {
            case .connecting: .connecting
            case .up: .up
            case .down: .down
            }
        }
    }

    /// What changed, for the caller to log and act on.
    enum Change: Sendable {
        case none
        /// Up again; `movedFrom` is the server used before when this is another one (a failover).
        case cameUp(movedFrom: String?)
        /// Down; the connection to close, if one was open.
        case wentDown(closing: (any SharedCacheConnection)?)
    }

    static let firstPause = 0.25
    static let longestPause = 5.0

    private(set) var state = State.connecting
    /// The server this host last used (a failover is coming up on another one).
    private(set) var lastServer: String?
    /// When (unix seconds) the tier last came up on another server than before.
    private(set) var movedAt: Double?
    /// How many times the tier came up on another server than before.
    private(set) var failovers = 0
    /// How long to wait before the next attempt.
    private(set) var pause = firstPause

    var connection: (any SharedCacheConnection)? {
        if case .up(let connection, _) = state { connection } else { nil }
    }

    var isDown: Bool {
        if case .down = state { true } else { false }
    }

    /// A connection is ready: the tier is up. `now` is the wall clock (unix seconds).
    mutating func connected(_ connection: any SharedCacheConnection, server: String, now: Double) -> Change {
        let wasUp = if case .up = state { true } else { false }
        state = .up(connection, server: server)
        pause = Self.firstPause
        defer { lastServer = server }
        guard let last = lastServer, last != server else { return wasUp ? .none : .cameUp(movedFrom: nil) }
        failovers += 1
        movedAt = now
        return .cameUp(movedFrom: last)
    }

    /// A call failed, the connection closed, or the sentinels moved the primary: the tier is down
    /// until the service connects again. Only the first of several failures changes anything.
    mutating func failed(_ reason: String) -> Change {
        switch state {
        case .down:
            return .none
        case .connecting:
            state = .down(reason: reason)
            return .wentDown(closing: nil)
        case .up(let connection, _):
            state = .down(reason: reason)
            return .wentDown(closing: connection)
        }
    }

    /// An attempt to connect failed: how long to wait before the next (it doubles each time).
    mutating func attemptFailed(_ reason: String) -> (change: Change, pause: Double) {
        let change = failed(reason)
        defer { pause = min(pause * 2, Self.longestPause) }
        return (change, pause)
    }

    /// The sentinels announced a new primary: the next attempt is made at once.
    mutating func primaryMoved() {
        pause = Self.firstPause
    }
}
