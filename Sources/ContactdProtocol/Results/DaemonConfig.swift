import ContactdJSON

/// The result of `daemon.config`: every setting's effective value, as a flag would take it
/// (`5m`, `64K`, `on`; `nil` when unset), and where it came from; and where the API token came
/// from, never the token itself (SPEC §7).
///
/// On the wire an object by setting name (the flag without `--`), in the daemon's settings order,
/// with the token's source under `api-token`.
public struct DaemonConfig: Sendable, Hashable, Codable {
    /// One setting's value and its source.
    public struct Setting: Sendable, Hashable, Codable {
        /// The value as a flag would take it; `nil` when unset.
        public var value: String?
        /// Where it came from.
        public var source: ValueSource

        /// A setting's value and source.
        public init(value: String?, source: ValueSource) {
            self.value = value
            self.source = source
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(value, forKey: .value)  // `null` when unset, not left out
            try container.encode(source, forKey: .source)
        }
    }

    /// Every setting by name (`ttl`, `cache-max-entries`, …).
    public private(set) var settings: [String: Setting] = [:]
    /// The settings' names in the daemon's order (from a `Decoder`: by name).
    public private(set) var names: [String] = []
    /// Where the API token came from (`file`, `credential`, `environment` or `demo`).
    public var apiTokenSource: ValueSource?

    /// The key the token's source is sent under.
    static let tokenKey = "api-token"

    public init() {}

    /// Adds a setting after those already added (or replaces its value).
    public mutating func add(_ name: String, _ setting: Setting) {
        if settings.updateValue(setting, forKey: name) == nil { names.append(name) }
    }

    /// The value of a setting, e.g. `config["ttl"]?.value`.
    public subscript(name: String) -> Setting? { settings[name] }

    /// Equal when every setting has the same value and source, in whatever order they came.
    public static func == (a: Self, b: Self) -> Bool {
        a.settings == b.settings && a.apiTokenSource == b.apiTokenSource
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(settings)
        hasher.combine(apiTokenSource)
    }

    private struct Key: CodingKey {
        let stringValue: String
        var intValue: Int? { nil }
        init(_ name: String) { stringValue = name }
        init(stringValue: String) { self.init(stringValue) }
        init?(intValue: Int) { nil }
    }

    private struct TokenEntry: Codable {
        let source: ValueSource
    }

    /// The result as contactd sent it, settings in its order (a `Decoder` gives members in no
    /// promised order; `decoded` ones are by name). `nil` if it is not `daemon.config`'s shape.
    public init?(result: JSONValue) {
        guard let object = result.objectValue else { return nil }
        for (name, entry) in object.members {
            guard let source = entry["source"]?.stringValue.map(ValueSource.init(spelling:)) else { return nil }
            if name == Self.tokenKey {
                apiTokenSource = source
            } else {
                add(name, Setting(value: entry["value"]?.stringValue, source: source))
            }
        }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        for key in container.allKeys.sorted(by: { $0.stringValue < $1.stringValue }) {
            if key.stringValue == Self.tokenKey {
                apiTokenSource = try container.decode(TokenEntry.self, forKey: key).source
            } else {
                add(key.stringValue, try container.decode(Setting.self, forKey: key))
            }
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        for name in names { try container.encode(settings[name], forKey: Key(name)) }
        if let apiTokenSource { try container.encode(TokenEntry(source: apiTokenSource), forKey: Key(Self.tokenKey)) }
    }
}

extension DaemonConfig: WireResult {
    public static let method = RPCMethod.daemonConfig
    public static let schema = #"""
        {"type": "object", "required": ["api-token"],
        "properties": {"api-token": {"type": "object", "additionalProperties": false, "required": ["source"],
        "properties": {"source": {"enum": "$ValueSource"}}}},
        "additionalProperties": {"type": "object", "additionalProperties": false, "required": ["value", "source"],
        "properties": {"value": {"type": ["string", "null"]}, "source": {"enum": "$ValueSource"}}}}
        """#
}
