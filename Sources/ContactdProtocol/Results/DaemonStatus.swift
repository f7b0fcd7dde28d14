/// The result of `daemon.status`: version, uptime, connections, readiness, and the cache, the API
/// and the shared cache at a glance. The daemon encodes it and clients decode the same type;
/// members a newer daemon adds, or an older one lacks, are optional here.
public struct DaemonStatus: Sendable, Hashable, Codable {
    /// contactd's version.
    public var version = ""
    /// Its process id.
    public var pid: Int?
    /// Seconds since it started.
    public var uptime = 0.0
    /// Open client connections.
    public var connections = 0
    /// The fast lane for plain hits.
    public var fastPath: FastPath?
    /// Whether it serves (after start-up, before a stop).
    public var ready = false
    /// Whether it is draining to stop.
    public var draining = false
    /// The cache at a glance.
    public var cache: Cache?
    /// The API at a glance.
    public var api: API?
    /// The cache the fleet shares, with `--shared-cache`.
    public var sharedCache: SharedCache?

    public init() {}

    /// The cache at a glance.
    public struct Cache: Sendable, Hashable, Codable {
        /// Cached entries.
        public var entries = 0
        /// Fresh and stale hits over all lookups, 0 to 1.
        public var hitRatio = 0.0

        public init() {}

        enum CodingKeys: String, CodingKey {
            case entries
            case hitRatio = "hit_ratio"
        }
    }

    /// The API at a glance.
    public struct API: Sendable, Hashable, Codable {
        /// `ok`, or what is wrong.
        public var state = APIState.ok
        /// The circuit breaker's state.
        public var circuit = CircuitState.closed
        /// Whether the API rejects contactd's token now.
        public var tokenRejected = false
        /// Fetches waiting for an API slot now.
        public var queueDepth = 0
        /// Since when answers are stale because the API fails (ISO 8601), while they are.
        public var servingStaleSince: String?

        public init() {}

        enum CodingKeys: String, CodingKey {
            case state, circuit
            case tokenRejected = "token_rejected"
            case queueDepth = "queue_depth"
            case servingStaleSince = "serving_stale_since"
        }
    }

    /// The fast lane for plain hits (`--fast-path`).
    public struct FastPath: Sendable, Hashable, Codable {
        /// Whether `--fast-path` is on.
        public var enabled = false
        /// Open connections still on the lane.
        public var connections = 0
        /// Connections handed to the general path since start.
        public var handedOver = 0

        public init() {}

        enum CodingKeys: String, CodingKey {
            case enabled, connections
            case handedOver = "handed_over"
        }
    }

    /// The cache the fleet shares (`--shared-cache`).
    public struct SharedCache: Sendable, Hashable, Codable {
        /// Whether contactd is connected to it.
        public var state = SharedCacheState.connecting
        /// Where it is: a Redis URL, or the sentinels' (`sentinel://…`).
        public var address = ""
        /// Why it is down, while it is.
        public var reason: String?
        /// With `sentinel://`, while up: the primary's `host:port`.
        public var primary: String?
        /// With `sentinel://`: failovers followed since start.
        public var failovers: Int?
        /// With `sentinel://`: when the tier last moved to another primary (ISO 8601).
        public var movedAt: String?

        public init() {}

        enum CodingKeys: String, CodingKey {
            case state, address, reason, primary, failovers
            case movedAt = "moved_at"
        }
    }

    enum CodingKeys: String, CodingKey {
        case version, pid, uptime, connections
        case fastPath = "fast_path"
        case ready, draining, cache, api
        case sharedCache = "shared_cache"
    }
}

extension DaemonStatus: WireResult {
    public static let method = RPCMethod.daemonStatus
    public static let schema = #"""
        {"type": "object", "additionalProperties": false,
        "required": ["version", "pid", "uptime", "connections", "fast_path", "ready", "draining", "cache", "api"],
        "properties": {
        "version": {"type": "string"}, "pid": {"type": "integer", "minimum": 1},
        "uptime": {"type": "number", "minimum": 0, "description": "Seconds since start."},
        "connections": {"type": "integer", "minimum": 0},
        "fast_path": {"type": "object", "additionalProperties": false, "required": ["enabled", "connections", "handed_over"],
        "properties": {"enabled": {"type": "boolean"}, "connections": {"type": "integer", "minimum": 0}, "handed_over": {"type": "integer", "minimum": 0}}},
        "ready": {"type": "boolean"}, "draining": {"type": "boolean"},
        "shared_cache": {"type": "object", "description": "Only with --shared-cache.", "additionalProperties": false,
        "required": ["state", "address"],
        "properties": {"state": {"enum": "$SharedCacheState"}, "address": {"type": "string"}, "reason": {"type": "string"},
        "primary": {"type": "string", "description": "With sentinel://, while up: the primary's host:port."},
        "failovers": {"type": "integer", "minimum": 0, "description": "With sentinel://: failovers followed."},
        "moved_at": {"type": "string", "format": "date-time", "description": "With sentinel://: when the tier last moved to another primary."}}},
        "cache": {"type": "object", "additionalProperties": false, "required": ["entries", "hit_ratio"],
        "properties": {"entries": {"type": "integer", "minimum": 0}, "hit_ratio": {"type": "number", "minimum": 0, "maximum": 1}}},
        "api": {"type": "object", "additionalProperties": false, "required": ["state", "circuit", "token_rejected", "queue_depth"],
        "properties": {"state": {"enum": "$APIState"},
        "circuit": {"enum": "$CircuitState"}, "token_rejected": {"type": "boolean"},
        "queue_depth": {"type": "integer", "minimum": 0},
        "serving_stale_since": {"type": "string", "description": "UTC, ISO 8601; only while answers are stale because the API fails."}}}}}
        """#
}
