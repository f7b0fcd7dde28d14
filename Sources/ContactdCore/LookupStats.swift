import ContactdProtocol
import Synchronization

/// Cache and upstream counters, as `cache.stats` reports them.
package struct LookupStats: Sendable, Equatable {
    /// API call durations.
    package struct Latency: Sendable, Equatable {
        package var p50 = 0.0
        package var p90 = 0.0
        package var p99 = 0.0
        package var max = 0.0

        package init(p50: Double = 0, p90: Double = 0, p99: Double = 0, max: Double = 0) {
            self.p50 = p50
            self.p90 = p90
            self.p99 = p99
            self.max = max
        }
    }

    package var entries: Int
    /// What the entries cost by `ContactCache.cost(of:keys:)`, the figure `--cache-max-bytes` bounds.
    package var bytes: Int
    /// Memory the cache's record pages take, used or free (`ContactCache.slabBytes`).
    package var heldBytes = 0
    /// Fresh answers from the cache.
    package var hits: Int
    package var misses: Int
    package var evictions: Int
    /// Evictions by cause, main's refusals and the configuration the policy chose.
    package var policy: CachePolicyReport?
    package var upstreamRequests: Int
    /// Upstream calls that failed other than with not-found.
    package var upstreamErrors: Int
    package var upstreamInFlight: Int
    /// Stale answers given at once while a refresh runs or the API is held back.
    package var staleHits = 0
    /// Stale answers given because a fetch failed (stale-if-error).
    package var staleIfError = 0
    /// Background refreshes started (stale-while-revalidate and refresh-ahead).
    package var refreshes = 0
    /// Of those, refreshes of hot entries before they went stale.
    package var refreshAheads = 0
    /// API calls repeated after a transient failure.
    package var retries = 0
    /// `closed`, `open` or `half_open`.
    package var circuitState = CircuitState.closed
    /// Times the circuit opened since start.
    package var circuitOpened = 0
    /// Fetches refused because the circuit was open.
    package var circuitRefusals = 0
    /// Fetches refused by the API budget (queue full or no slot within the deadline).
    package var overloaded = 0
    /// Fetches waiting for an API slot now.
    package var queueDepth = 0
    /// Whether the API rejects the current token.
    package var tokenRejected = false
    /// Seconds since answers became stale because the API failed; `nil` when they are not.
    package var servingStaleFor: Double?
    package var latencyMilliseconds = Latency()

    package init(
        entries: Int,
        bytes: Int,
        hits: Int,
        misses: Int,
        evictions: Int,
        upstreamRequests: Int,
        upstreamErrors: Int,
        upstreamInFlight: Int
    ) {
        self.entries = entries
        self.bytes = bytes
        self.hits = hits
        self.misses = misses
        self.evictions = evictions
        self.upstreamRequests = upstreamRequests
        self.upstreamErrors = upstreamErrors
        self.upstreamInFlight = upstreamInFlight
    }

    /// Hits (fresh and stale) over all lookups, 0 when there were none.
    package var hitRatio: Double {
        let served = hits + staleHits
        return served + misses == 0 ? 0 : Double(served) / Double(served + misses)
    }
}

final class Counters: Sendable {
    let hits = Atomic<Int>(0)
    let misses = Atomic<Int>(0)
    let staleHits = Atomic<Int>(0)
    let staleIfError = Atomic<Int>(0)
    let refreshes = Atomic<Int>(0)
    let refreshAheads = Atomic<Int>(0)
    let retries = Atomic<Int>(0)
    let circuitRefusals = Atomic<Int>(0)
    let overloaded = Atomic<Int>(0)
    let upstreamRequests = Atomic<Int>(0)
    let upstreamErrors = Atomic<Int>(0)
    let upstreamInFlight = Atomic<Int>(0)

    /// Zeroes every count; `upstreamInFlight` is a level, not a count, and stays.
    func reset() {
        hits.store(0, ordering: .relaxed)
        misses.store(0, ordering: .relaxed)
        staleHits.store(0, ordering: .relaxed)
        staleIfError.store(0, ordering: .relaxed)
        refreshes.store(0, ordering: .relaxed)
        refreshAheads.store(0, ordering: .relaxed)
        retries.store(0, ordering: .relaxed)
        circuitRefusals.store(0, ordering: .relaxed)
        overloaded.store(0, ordering: .relaxed)
        upstreamRequests.store(0, ordering: .relaxed)
        upstreamErrors.store(0, ordering: .relaxed)
    }
}
