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

extension CacheStats: WireResult {
    public static let method = RPCMethod.cacheStats
    public static let schema = #"""
        {"type": "object", "additionalProperties": false,
        "required": ["entries", "bytes", "held_bytes", "hits", "stale_hits", "stale_if_error", "misses", "hit_ratio", "evictions", "refreshes", "refresh_aheads", "upstream"],
        "properties": {
        "entries": {"type": "integer", "minimum": 0, "description": "Contacts and not-founds cached."},
        "bytes": {"type": "integer", "minimum": 0, "description": "What the entries cost, the figure --cache-max-bytes bounds."},
        "held_bytes": {"type": "integer", "minimum": 0, "description": "Memory the cache's record pages hold, used or free."},
        "hits": {"type": "integer", "minimum": 0}, "stale_hits": {"type": "integer", "minimum": 0},
        "stale_if_error": {"type": "integer", "minimum": 0}, "misses": {"type": "integer", "minimum": 0},
        "hit_ratio": {"type": "number", "minimum": 0, "maximum": 1},
        "evictions": {"type": "integer", "minimum": 0}, "refreshes": {"type": "integer", "minimum": 0},
        "refresh_aheads": {"type": "integer", "minimum": 0},
        "evictions_by_cause": {"type": "object", "additionalProperties": false, "required": ["capacity", "expired"],
        "description": "Evictions for room, by whether the entry was still fresh (capacity) or past its TTL (expired).",
        "properties": {"capacity": {"type": "integer", "minimum": 0}, "expired": {"type": "integer", "minimum": 0}}},
        "admissions_refused": {"type": "integer", "minimum": 0,
        "description": "New entries that left the nursery or window without main admitting them (counted in evictions too)."},
        "policy": {"type": "object", "additionalProperties": false, "required": ["window", "frequency_filter", "nursery"],
        "description": "The configuration the cache's policy runs in now (docs/caching.md).",
        "properties": {"window": {"type": "number", "minimum": 0, "maximum": 1},
        "frequency_filter": {"type": "boolean"}, "nursery": {"type": "number", "minimum": 0, "maximum": 1}}},
        "shared": {"type": "object", "description": "Only with --shared-cache.", "additionalProperties": false,
        "required": ["state", "hits", "misses", "waits", "writes", "errors", "skipped", "invalidations_received"],
        "properties": {"state": {"enum": "$SharedCacheState"}, "hits": {"type": "integer", "minimum": 0},
        "misses": {"type": "integer", "minimum": 0}, "waits": {"type": "integer", "minimum": 0},
        "writes": {"type": "integer", "minimum": 0}, "errors": {"type": "integer", "minimum": 0},
        "skipped": {"type": "integer", "minimum": 0}, "invalidations_received": {"type": "integer", "minimum": 0}}},
        "upstream": {"type": "object", "additionalProperties": false,
        "required": ["requests", "errors", "in_flight", "retries", "queue_depth", "overloaded", "token_rejected", "circuit", "latency_ms"],
        "properties": {
        "requests": {"type": "integer", "minimum": 0}, "errors": {"type": "integer", "minimum": 0},
        "in_flight": {"type": "integer", "minimum": 0}, "retries": {"type": "integer", "minimum": 0},
        "queue_depth": {"type": "integer", "minimum": 0}, "overloaded": {"type": "integer", "minimum": 0},
        "token_rejected": {"type": "boolean"},
        "circuit": {"type": "object", "additionalProperties": false, "required": ["state", "opened", "refusals"],
        "properties": {"state": {"enum": "$CircuitState"}, "opened": {"type": "integer", "minimum": 0}, "refusals": {"type": "integer", "minimum": 0}}},
        "latency_ms": {"type": "object", "additionalProperties": false, "required": ["p50", "p90", "p99", "max"],
        "properties": {"p50": {"type": "number", "minimum": 0}, "p90": {"type": "number", "minimum": 0}, "p99": {"type": "number", "minimum": 0}, "max": {"type": "number", "minimum": 0}}}}}}}
        """#
}
