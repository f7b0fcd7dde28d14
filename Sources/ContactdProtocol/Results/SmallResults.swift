/// The result of `contact.invalidate`.
public struct InvalidateResult: Sendable, Hashable, Codable {
    /// Entries removed from this host's cache.
    public var removed: Int
    /// With `--shared-cache`: whether the shared cache and the other hosts were told in time.
    public var shared: Bool?

    public init(removed: Int, shared: Bool? = nil) {
        self.removed = removed
        self.shared = shared
    }
}

/// The result of `daemon.metrics`: the Prometheus exposition `/metrics` serves.
public struct MetricsText: Sendable, Hashable, Codable {
    /// The exposition format's media type.
    public var contentType: String
    /// The series, one per line.
    public var text: String

    public init(contentType: String, text: String) {
        self.contentType = contentType
        self.text = text
    }

    enum CodingKeys: String, CodingKey {
        case contentType = "content_type"
        case text
    }
}

/// The result of `daemon.reload`: the settings applied at once, those waiting for a restart, and
/// what became of the token.
public struct ReloadResult: Sendable, Hashable, Codable {
    /// Settings changed and applied at once, with their new values as a flag would take them.
    public var applied: [String: String] = [:]
    /// Settings changed that take effect after a restart.
    public var afterRestart: [String] = []
    /// Whether the token read again differs; `nil` in `--demo` or when it could not be read
    /// (`tokenError`).
    public var token: TokenChange?
    /// Why the token could not be read again; the daemon keeps the one it has.
    public var tokenError: String?
    /// Why the configuration did not load; the running configuration stays.
    public var configurationError: String?

    public init() {}

    enum CodingKeys: String, CodingKey {
        case applied
        case afterRestart = "after_restart"
        case token
        case tokenError = "token_error"
        case configurationError = "configuration_error"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        // By name, so that the same reload always reads the same.
        var applied = container.nestedContainer(keyedBy: NameKey.self, forKey: .applied)
        for (name, value) in self.applied.sorted(by: { $0.key < $1.key }) {
            try applied.encode(value, forKey: NameKey(stringValue: name))
        }
        try container.encode(afterRestart, forKey: .afterRestart)
        try container.encodeIfPresent(token, forKey: .token)
        try container.encodeIfPresent(tokenError, forKey: .tokenError)
        try container.encodeIfPresent(configurationError, forKey: .configurationError)
    }

    private struct NameKey: CodingKey {
        let stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}

/// What a reload found of the token (`daemon.reload`'s `token`).
public enum TokenChange: WireSpelling {
    /// Read again, and different: calls from now on use the new one.
    case changed
    /// Read again, and the same.
    case unchanged
    /// A word this version does not know (from a newer contactd), as sent.
    case unknown(String)

    public static let spellings: [(Self, String)] = [(.changed, "changed"), (.unchanged, "unchanged")]

    public var unknownSpelling: String? { if case .unknown(let text) = self { text } else { nil } }
}

extension InvalidateResult: WireResult {
    public static let method = RPCMethod.contactInvalidate
    public static let schema = #"""
        {"type": "object", "additionalProperties": false, "required": ["removed"],
        "properties": {"removed": {"type": "integer", "minimum": 0}, "shared": {"type": "boolean"}}}
        """#
}

extension MetricsText: WireResult {
    public static let method = RPCMethod.daemonMetrics
    public static let schema = #"""
        {"type": "object", "additionalProperties": false, "required": ["content_type", "text"],
        "properties": {"content_type": {"const": "text/plain; version=0.0.4; charset=utf-8"}, "text": {"type": "string", "description": "Prometheus text exposition format 0.0.4."}}}
        """#
}

extension ReloadResult: WireResult {
    public static let method = RPCMethod.daemonReload
    public static let schema = #"""
        {"type": "object", "additionalProperties": false, "required": ["applied", "after_restart"],
        "properties": {"applied": {"type": "object", "description": "Settings applied at once, with their new values.", "additionalProperties": {"type": "string"}},
        "after_restart": {"type": "array", "description": "Settings changed that take effect after a restart.", "items": {"type": "string"}},
        "token": {"enum": "$TokenChange", "description": "Absent in --demo or when the token could not be read."},
        "token_error": {"type": "string", "description": "Why the token could not be read again; the current one stays."},
        "configuration_error": {"type": "string", "description": "Why the configuration did not load; the running one stays."}}}
        """#
}
