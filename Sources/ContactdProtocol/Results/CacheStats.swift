/// The result of `cache.stats`: the cache's and the API's counters. The daemon encodes it and
/// clients decode the same type; members a newer daemon adds are optional here.
public struct CacheStats: Sendable, Hashable, Codable {
    /// Cached entries (a contact is one entry, however many keys find it).
    public var entries = 0
    /// What the entries cost, the figure `--cache-max-bytes` bounds.
    public var bytes = 0
    /// Memory the cache's record pages take, used or free.
    public var heldBytes: Int?
    /// Fresh hits.
    public var hits = 0
    /// Stale answers given while a refresh ran.
    public var staleHits = 0
    /// Stale answers given because the API failed.
    public var staleIfError = 0
    /// Lookups that went to the API.
    public var misses = 0
    /// Fresh and stale hits over all lookups, 0 to 1.
    public var hitRatio = 0.0
    /// Entries evicted to stay within the bounds.
    public var evictions = 0
    /// Background refreshes of stale entries.
    public var refreshes = 0
    /// Refreshes of hot entries before they went stale.
    public var refreshAheads = 0
    /// Evictions for room, by whether the entry was still fresh.
    public var evictionsByCause: EvictionsByCause?
    /// New entries that left without the cache's main part admitting them (also counted in
    /// `evictions`).
    public var admissionsRefused: Int?
    /// The configuration the cache's policy runs in now (docs/caching.md).
    public var policy: Policy?
    /// The cache the fleet shares, with `--shared-cache`.
    public var shared: Shared?
    /// How the API is doing.
    public var upstream = Upstream()

    public init() {}

    /// Evictions for room.
    public struct EvictionsByCause: Sendable, Hashable, Codable {
        /// The entry was still fresh.
        public var capacity = 0
        /// The entry was past its TTL.
        public var expired = 0

        public init() {}
    }

    /// The cache policy's configuration now.
    public struct Policy: Sendable, Hashable, Codable {
        /// The admission window's share of the cache, 0 to 1.
        public var window = 0.0
        /// Whether the frequency filter decides admissions.
        public var frequencyFilter = false
        /// The nursery's share of the cache, 0 to 1.
        public var nursery = 0.0

        public init() {}

        enum CodingKeys: String, CodingKey {
            case window, nursery
            case frequencyFilter = "frequency_filter"
        }
    }

    /// The shared cache's counters.
    public struct Shared: Sendable, Hashable, Codable {
        /// Whether contactd is connected to it.
        public var state = SharedCacheState.connecting
        /// Lookups it answered.
        public var hits = 0
        /// Lookups it did not hold.
        public var misses = 0
        /// Lookups that waited for another host's fetch.
        public var waits = 0
        /// Entries written to it.
        public var writes = 0
        /// Calls that failed or timed out.
        public var errors = 0
        /// Lookups that did not ask it because it was down.
        public var skipped = 0
        /// Invalidations other hosts announced.
        public var invalidationsReceived = 0

        public init() {}

        enum CodingKeys: String, CodingKey {
            case state, hits, misses, waits, writes, errors, skipped
            case invalidationsReceived = "invalidations_received"
        }
    }

    /// The API calls' counters.
    public struct Upstream: Sendable, Hashable, Codable {
        /// API calls made.
        public var requests = 0
        /// API calls that failed.
        public var errors = 0
        /// API calls under way now.
        public var inFlight = 0
        /// Attempts made again after a transient failure.
        public var retries = 0
        /// Fetches waiting for an API slot now.
        public var queueDepth = 0
        /// Fetches refused because the queue was full.
        public var overloaded = 0
        /// Whether the API rejects contactd's token now.
        public var tokenRejected = false
        /// The circuit breaker.
        public var circuit = Circuit()
        /// Latency percentiles of API calls in milliseconds; `nil` from a daemon that sends none.
        public var latencyMs: Latency?

        public init() {}

        enum CodingKeys: String, CodingKey {
            case requests, errors
            case inFlight = "in_flight"
            case retries
            case queueDepth = "queue_depth"
            case overloaded
            case tokenRejected = "token_rejected"
            case circuit
            case latencyMs = "latency_ms"
        }
    }

    /// The circuit breaker.
    public struct Circuit: Sendable, Hashable, Codable {
        /// Closed, open or half open.
        public var state = CircuitState.closed
        /// Times it opened.
        public var opened = 0
        /// Calls it refused.
        public var refusals = 0

        public init() {}
    }

    /// API latency percentiles, milliseconds.
    public struct Latency: Sendable, Hashable, Codable {
        /// Median.
        public var p50 = 0.0
        /// 90th percentile.
        public var p90 = 0.0
        /// 99th percentile.
        public var p99 = 0.0
        /// Slowest.
        public var max = 0.0

        public init() {}
    }

    enum CodingKeys: String, CodingKey {
        case entries, bytes
        case heldBytes = "held_bytes"
        case hits
        case staleHits = "stale_hits"
        case staleIfError = "stale_if_error"
        case misses
        case hitRatio = "hit_ratio"
        case evictions, refreshes
        case refreshAheads = "refresh_aheads"
        case evictionsByCause = "evictions_by_cause"
        case admissionsRefused = "admissions_refused"
        case policy, shared, upstream
    }
}
