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
    /// The id of invalidation number `known`, when this host knows it (from its own invalidation,
    /// its first message, or the history read at connect).
    private(set) var knownID: UInt64?
    /// The generation of the server's data the count belongs to (`nil` before the first connect):
    /// a Redis that lost its data (restarted without persistence, flushed, another server) starts
    /// a new one, and counts from two generations say nothing about each other.
    private(set) var generation: String?
    private var minute = 0
    private var current: Set<UInt64> = []
    private var previous: Set<UInt64> = []

    /// Notes an invalidation this host made or heard of: its number and, when known, its id.
    mutating func learned(_ epoch: Int64, id: UInt64? = nil) {
        guard epoch > (known ?? Int64.min) else { return }
        (known, knownID) = (epoch, id)
    }

    /// On each connect: the server's count, generation and recent history (newest first) against
    /// what this host knew; from now on the server's (docs/scale.md, "An invalidation is final
    /// across a failover").
    mutating func connected(
        serverEpoch epoch: Int64,
        generation serverGeneration: String,
        history: [SharedCacheLayout.HistoryEntry] = []
    ) -> Comparison {
        defer {
            (known, generation) = (epoch, serverGeneration)
            knownID = history.first { $0.epoch == epoch }?.id
        }
        guard let last = known else { return .inStep }
        // Another generation: the data this host knew is gone, and with it any record of what
        // the fleet invalidated since; a count that happens to match proves nothing.
        guard serverGeneration == generation else { return .missedSome }
        if epoch < last { return .lostSome }
        // The server's invalidation number `last` is not the one this host knew: the one it knew
        // was lost, and the count has grown past it since (other hosts invalidating on the new
        // primary). Without the entry (history too short, or kept by an older contactd) the
        // count alone decides.
        if let id = knownID, let entry = history.first(where: { $0.epoch == last }), entry.id != id {
            return .lostSome
        }
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
        // An invalidation's first message carries its id as the nonce (`SharedCache`).
        learned(message.epoch, id: message.nonce)
        return .fresh
    }
}
