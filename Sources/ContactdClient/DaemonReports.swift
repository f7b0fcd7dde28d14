import ContactdJSON
import Foundation

/// The counters of `cache.stats`.
public struct CacheStats: Sendable, Hashable, Codable {
    /// Cached entries (a contact is one entry, however many keys find it).
    public let entries: Int
    /// What the entries cost, the figure `--cache-max-bytes` bounds.
    public let bytes: Int
    /// Memory the cache's record pages take, used or free.
    public let heldBytes: Int?
    /// Fresh hits.
    public let hits: Int
    /// Stale answers given while a refresh ran.
    public let staleHits: Int
    /// Stale answers given because the API failed.
    public let staleIfError: Int
    /// Lookups that went to the API.
    public let misses: Int
    /// Fresh and stale hits over all lookups, 0 to 1.
    public let hitRatio: Double
    /// Entries evicted to stay within the bounds.
    public let evictions: Int
    /// Background refreshes of stale entries.
    public let refreshes: Int
    /// Refreshes of hot entries before they went stale.
    public let refreshAheads: Int
    /// New entries that left without the cache's main part admitting them (also counted in
    /// `evictions`); `nil` from a daemon that does not count them.
    public let admissionsRefused: Int?
    /// How the API is doing.
    public let upstream: Upstream

    /// The API calls' counters.
    public struct Upstream: Sendable, Hashable, Codable {
        /// API calls made.
        public let requests: Int
        /// API calls that failed.
        public let errors: Int
        /// API calls under way now.
        public let inFlight: Int
        /// Attempts made again after a transient failure.
        public let retries: Int
        /// Fetches waiting for an API slot now.
        public let queueDepth: Int
        /// Fetches refused because the queue was full.
        public let overloaded: Int
        /// Whether the API rejects contactd's token now.
        public let tokenRejected: Bool
        /// The circuit breaker.
        public let circuit: Circuit
        /// Latency percentiles of API calls in milliseconds; `nil` before the first call.
        public let latencyMs: Latency?

        enum CodingKeys: String, CodingKey {
            case requests, errors, retries, overloaded, circuit
            case inFlight = "in_flight"
            case queueDepth = "queue_depth"
            case tokenRejected = "token_rejected"
            case latencyMs = "latency_ms"
        }
    }

    /// The circuit breaker.
    public struct Circuit: Sendable, Hashable, Codable {
        /// `closed`, `open` or `half_open`.
        public let state: String
        /// Times it opened.
        public let opened: Int
        /// Calls it refused.
        public let refusals: Int
    }

    /// API latency percentiles, milliseconds.
    public struct Latency: Sendable, Hashable, Codable {
        /// Median.
        public let p50: Double
        /// 90th percentile.
        public let p90: Double
        /// 99th percentile.
        public let p99: Double
        /// Slowest.
        public let max: Double
    }

    enum CodingKeys: String, CodingKey {
        case entries, bytes, hits, misses, evictions, refreshes, upstream
        case heldBytes = "held_bytes"
        case staleHits = "stale_hits"
        case staleIfError = "stale_if_error"
        case hitRatio = "hit_ratio"
        case refreshAheads = "refresh_aheads"
        case admissionsRefused = "admissions_refused"
    }
}

/// What `daemon.status` says.
public struct DaemonStatus: Sendable, Hashable, Codable {
    /// contactd's version.
    public let version: String
    /// Its process id.
    public let pid: Int?
    /// Seconds since it started.
    public let uptime: Double
    /// Open client connections.
    public let connections: Int
    /// Whether it serves (after start-up, before a stop).
    public let ready: Bool
    /// Whether it is draining to stop.
    public let draining: Bool
    /// The cache at a glance.
    public let cache: Cache?
    /// The API at a glance.
    public let api: API?
    /// The fast lane for plain hits.
    public let fastPath: FastPath?
    /// The cache the fleet shares, with `--shared-cache`.
    public let sharedCache: SharedCache?

    /// The cache at a glance.
    public struct Cache: Sendable, Hashable, Codable {
        /// Cached entries.
        public let entries: Int
        /// Fresh and stale hits over all lookups, 0 to 1.
        public let hitRatio: Double

        enum CodingKeys: String, CodingKey {
            case entries
            case hitRatio = "hit_ratio"
        }
    }

    /// The API at a glance.
    public struct API: Sendable, Hashable, Codable {
        /// `ok`, or what is wrong (`unavailable`, `rate_limited`, …).
        public let state: String
        /// The circuit breaker's state.
        public let circuit: String
        /// Whether the API rejects contactd's token now.
        public let tokenRejected: Bool
        /// Fetches waiting for an API slot now.
        public let queueDepth: Int
        /// Since when answers are stale because the API fails (ISO 8601), while they are.
        public let servingStaleSince: String?

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
        public let enabled: Bool
        /// Open connections still on the lane.
        public let connections: Int
        /// Connections handed to the general path since start.
        public let handedOver: Int

        enum CodingKeys: String, CodingKey {
            case enabled, connections
            case handedOver = "handed_over"
        }
    }

    /// The cache the fleet shares (`--shared-cache`).
    public struct SharedCache: Sendable, Hashable, Codable {
        /// `connecting`, `up` or `down`.
        public let state: String
        /// Where it is: a Redis URL, or the sentinels' (`sentinel://…`).
        public let address: String
        /// Why it is down, while it is.
        public let reason: String?
        /// With `sentinel://`, while up: the primary's `host:port`.
        public let primary: String?
        /// With `sentinel://`: failovers followed since start.
        public let failovers: Int?
        /// With `sentinel://`: when the tier last moved to another primary (ISO 8601).
        public let movedAt: String?

        enum CodingKeys: String, CodingKey {
            case state, address, reason, primary, failovers
            case movedAt = "moved_at"
        }
    }

    enum CodingKeys: String, CodingKey {
        case version, pid, uptime, connections, ready, draining, cache, api
        case fastPath = "fast_path"
        case sharedCache = "shared_cache"
    }
}

extension JSONValue {
    /// This value decoded as `type` (a method's typed result); `bad_response` naming `method` if
    /// it does not fit.
    func decoded<T: Decodable>(as type: T.Type, method: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(jsonBytes))
        } catch {
            throw ContactdClientError.badResponse("\(method) result does not match \(type): \(error)")
        }
    }
}

/// What `daemon.config` says: every setting's effective value and where it came from.
public struct DaemonConfig: Sendable, Hashable, Decodable {
    /// Where a value came from.
    public enum Source: Sendable, Hashable, CustomStringConvertible, WireSpelling {
        /// A command-line flag.
        case flag
        /// A `CONTACTD_*` environment variable.
        case environment
        /// The config file.
        case file
        /// Nobody set it.
        case `default`
        /// systemd's `LoadCredential=` (the token only).
        case credential
        /// `--demo`'s own (the token only).
        case demo
        /// A source this client does not know, as sent.
        case unknown(String)

        static let spellings: [(Self, String)] = [
            (.flag, "flag"), (.environment, "environment"), (.file, "file"), (.default, "default"),
            (.credential, "credential"), (.demo, "demo"),
        ]

        /// The source as contactd spells it.
        public init(_ text: String) { self.init(spelling: text) }

        var unknownSpelling: String? { if case .unknown(let text) = self { text } else { nil } }
    }

    /// One setting's value, as a flag would take it (`5m`, `64K`, `on`; `nil` when unset), and
    /// its source.
    public struct Setting: Sendable, Hashable {
        /// The value as a flag would take it; `nil` when unset.
        public let value: String?
        /// Where it came from.
        public let source: Source

        /// A setting's value and source.
        public init(value: String?, source: Source) {
            self.value = value
            self.source = source
        }
    }

    /// Every setting by name (the flag without `--`: `ttl`, `cache-max-entries`, …).
    public let settings: [String: Setting]
    /// Where the API token came from (`file`, `credential`, `environment` or `demo`); contactd
    /// never sends the token itself.
    public let apiTokenSource: Source?

    /// The value of a setting, e.g. `config["ttl"]?.value`.
    public subscript(name: String) -> Setting? { settings[name] }

    private struct Entry: Decodable {
        let value: String?
        let source: String
    }

    /// Decodes `daemon.config`'s result.
    public init(from decoder: any Decoder) throws {
        let entries = try [String: Entry](from: decoder)
        var settings: [String: Setting] = [:]
        for (name, entry) in entries where name != "api-token" {
            settings[name] = Setting(value: entry.value, source: Source(entry.source))
        }
        self.settings = settings
        self.apiTokenSource = entries["api-token"].map { Source($0.source) }
    }
}

/// What `daemon.reload` did: the settings applied at once, those waiting for a restart, and what
/// became of the token.
public struct ReloadResult: Sendable, Hashable, Decodable {
    /// Settings changed and applied at once, with their new values as a flag would take them.
    public var applied: [String: String]
    /// Settings changed that take effect after a restart.
    public var afterRestart: [String]
    /// `changed` or `unchanged`; `nil` in `--demo` or when it could not be read (`tokenError`).
    public var token: String?
    /// Why the token could not be read again; the daemon keeps the one it has.
    public var tokenError: String?
    /// Why the configuration did not load; the running configuration stays.
    public var configurationError: String?

    enum CodingKeys: String, CodingKey {
        case applied, token
        case afterRestart = "after_restart"
        case tokenError = "token_error"
        case configurationError = "configuration_error"
    }
}
