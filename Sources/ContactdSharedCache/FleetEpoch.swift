/// What this host knows of the fleet's invalidations: the epoch (how many invalidations the fleet
/// has made, kept in Redis) as it last knew it, and the nonces of the messages it heard lately.
/// Pure: `SharedCache` holds one under a lock.
struct FleetEpoch: Sendable {
    /// How far a message's time may be from this host's clock, and how long its nonce is kept.
    static let messageWindow = 60.0

    /// What a connect to a server found, against what this host knew.
    enum Comparison: Sendable, Equatable {
        /// The first connect, or nothing happened meanwhile.
        case inStep
        /// The fleet made invalidations this host did not hear: what it holds may be what they
        /// removed, and it cannot tell which.
        case missedSome
        /// The server's count is behind this host's: invalidations were lost with the server
        /// they were made on (a failover before they reached a replica), and the entries they
        /// removed may be back.
        case lostSome
    }

    /// `nil` before the first connect.
    private(set) var known: Int64?
    private var minute = 0
    private var current: Set<UInt64> = []
    private var previous: Set<UInt64> = []

    /// Notes an epoch this host took part in or heard of.
    mutating func learned(_ epoch: Int64) {
        known = max(known ?? epoch, epoch)
    }

    /// On each connect: the server's epoch against what this host knew; from now on the server's.
    mutating func connected(serverEpoch epoch: Int64) -> Comparison {
        defer { known = epoch }
        guard let last = known else { return .inStep }
        if epoch < last { return .lostSome }
        return epoch == last ? .inStep : .missedSome
    }

    enum Verdict: Sendable, Equatable {
        case fresh
        /// Sent more than a minute from now by this host's clock: replayed, or a clock far off.
        case outOfWindow
        /// Heard before (its nonce is kept for the minute it may be replayed in).
        case replayed
    }

    /// Whether to act on `message` received at `now` (unix seconds): only when it is fresh.
    /// Notes its epoch when it is.
    mutating func accept(_ message: SharedCacheLayout.Message, now: Double) -> Verdict {
        guard abs(now - Double(message.sent) / 1000) <= Self.messageWindow else { return .outOfWindow }
        // Nonces by minute, this one and the last: every message within the window is in one.
        let thisMinute = Int(now / Self.messageWindow)
        if thisMinute != minute {
            previous = thisMinute == minute + 1 ? current : []
            current = []
            minute = thisMinute
        }
        guard !previous.contains(message.nonce), current.insert(message.nonce).inserted else { return .replayed }
        learned(message.epoch)
        return .fresh
    }
}
