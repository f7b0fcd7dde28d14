/// A word the wire carries as a string from a set this version knows (`"hit"`, `"half_open"`),
/// with an `unknown` case that keeps a word a newer peer adds: a client reads it without failing,
/// and contactd itself never sends one. The spellings are one table, read both ways, and
/// `rpc.discover` and docs/protocol.md list the same words (tests hold both to it).
public protocol WireSpelling: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Every known value and its spelling, in the order documents list them.
    static var spellings: [(Self, String)] { get }
    /// A value a newer peer sent that this version does not know.
    static func unknown(_ text: String) -> Self
    /// The text of the `unknown` case; `nil` for a known value.
    var unknownSpelling: String? { get }
}

extension WireSpelling {
    /// The value spelled `text`; `.unknown(text)` if this version does not know it.
    public init(spelling text: String) {
        self = Self.spellings.first { $0.1 == text }?.0 ?? .unknown(text)
    }

    /// The value as the wire spells it.
    public var description: String {
        unknownSpelling ?? Self.spellings.first { $0.0 == self }?.1 ?? ""
    }

    /// Every spelling this version knows, in order.
    public static var known: [String] { spellings.map(\.1) }

    public init(from decoder: any Decoder) throws {
        self.init(spelling: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// How contactd answered a lookup: `cache.status` of `contact.get`.
public enum CacheStatus: WireSpelling {
    /// A fresh entry from the cache.
    case hit
    /// Fetched from the API for this request (or joined a fetch in progress).
    case miss
    /// Past its TTL; see ``StaleReason``.
    case stale
    /// A status this version does not know (from a newer contactd), as sent.
    case unknown(String)

    public static let spellings: [(Self, String)] = [(.hit, "hit"), (.miss, "miss"), (.stale, "stale")]

    /// The status as contactd spells it.
    public init(_ text: String) { self.init(spelling: text) }

    public var unknownSpelling: String? { if case .unknown(let text) = self { text } else { nil } }
}

/// Why an answer was stale (`cache.stale_reason` of `contact.get`), so an outage never hides
/// behind a hit ratio.
public enum StaleReason: WireSpelling {
    /// Past its TTL, within `stale_ttl`; a background refresh is running (stale-while-revalidate).
    case refreshing
    /// The API failed, or failed the last refresh of this entry (stale-if-error).
    case upstreamUnavailable
    /// The API said 429, or contactd's own API budget is spent.
    case rateLimited
    /// contactd's circuit breaker is open: the API is not being called.
    case circuitOpen
    /// The API has not answered within `--stale-if-error-wait`; the fetch goes on behind.
    case upstreamSlow
    /// A reason this version does not know (from a newer contactd), as sent.
    case unknown(String)

    public static let spellings: [(Self, String)] = [
        (.refreshing, "refreshing"), (.upstreamUnavailable, "upstream_unavailable"), (.rateLimited, "rate_limited"),
        (.circuitOpen, "circuit_open"), (.upstreamSlow, "upstream_slow"),
    ]

    /// The reason as contactd spells it.
    public init(_ text: String) { self.init(spelling: text) }

    public var unknownSpelling: String? { if case .unknown(let text) = self { text } else { nil } }
}

/// Which cache answered a lookup (`cache.tier`); reported only with `--shared-cache`.
public enum CacheTier: WireSpelling {
    /// This host's own cache.
    case local
    /// The cache the fleet shares (Redis): another host fetched it.
    case shared
    /// Neither: this lookup called the API.
    case api
    /// A tier this version does not know (from a newer contactd), as sent.
    case unknown(String)

    public static let spellings: [(Self, String)] = [(.local, "local"), (.shared, "shared"), (.api, "api")]

    public var unknownSpelling: String? { if case .unknown(let text) = self { text } else { nil } }
}

/// The circuit breaker in front of the API (`cache.stats`' `upstream.circuit.state`,
/// `daemon.status`' `api.circuit`).
public enum CircuitState: WireSpelling {
    /// Calls go through.
    case closed
    /// Calls are refused until the cool-down ends.
    case open
    /// One probe call goes through; its answer closes or opens the circuit again.
    case halfOpen
    /// A state this version does not know (from a newer contactd), as sent.
    case unknown(String)

    public static let spellings: [(Self, String)] = [(.closed, "closed"), (.open, "open"), (.halfOpen, "half_open")]

    public var unknownSpelling: String? { if case .unknown(let text) = self { text } else { nil } }
}

/// The API in one word for programs (`daemon.status`' `api.state`).
public enum APIState: WireSpelling {
    /// Answering.
    case ok
    /// The API rejects contactd's token: an operator must act.
    case tokenRejected
    /// The circuit breaker holds calls back.
    case circuitOpen
    /// The API says 429, or contactd's own API budget is spent.
    case rateLimited
    /// The API fails: network, timeouts, 5xx.
    case unavailable
    /// The API answers with things that are not contacts.
    case badResponses
    /// A state this version does not know (from a newer contactd), as sent.
    case unknown(String)

    public static let spellings: [(Self, String)] = [
        (.ok, "ok"), (.tokenRejected, "token_rejected"), (.circuitOpen, "circuit_open"), (.rateLimited, "rate_limited"),
        (.unavailable, "unavailable"), (.badResponses, "bad_responses"),
    ]

    public var unknownSpelling: String? { if case .unknown(let text) = self { text } else { nil } }
}

/// The cache the fleet shares (`--shared-cache`): `cache.stats`' `shared.state` and
/// `daemon.status`' `shared_cache.state`.
public enum SharedCacheState: WireSpelling {
    /// The first connection is being made.
    case connecting
    /// Connected: lookups ask it, fills and invalidations reach it.
    case up
    /// Not connected; lookups go on without it and a reconnect is under way.
    case down
    /// A state this version does not know (from a newer contactd), as sent.
    case unknown(String)

    public static let spellings: [(Self, String)] = [(.connecting, "connecting"), (.up, "up"), (.down, "down")]

    public var unknownSpelling: String? { if case .unknown(let text) = self { text } else { nil } }
}

/// Where a setting's value came from (`daemon.config`'s `source`).
public enum ValueSource: WireSpelling {
    /// A command-line flag.
    case flag
    /// A `CONTACTD_*` environment variable.
    case environment
    /// The config file, or the file a `--…-file` flag names (a secret).
    case file
    /// Nobody set it.
    case `default`
    /// systemd's `LoadCredential=` (secrets only).
    case credential
    /// `--demo`'s own (the token only).
    case demo
    /// A source this version does not know (from a newer contactd), as sent.
    case unknown(String)

    public static let spellings: [(Self, String)] = [
        (.flag, "flag"), (.environment, "environment"), (.file, "file"), (.default, "default"),
        (.credential, "credential"), (.demo, "demo"),
    ]

    /// The source as contactd spells it.
    public init(_ text: String) { self.init(spelling: text) }

    public var unknownSpelling: String? { if case .unknown(let text) = self { text } else { nil } }
}
