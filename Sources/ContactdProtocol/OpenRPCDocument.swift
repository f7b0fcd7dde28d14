/// A method's result type: what the daemon encodes and clients decode, with the JSON Schema
/// `rpc.discover` gives for it written beside its members (tests hold the two together).
public protocol WireResult: Codable, Sendable {
    /// The method that answers with it.
    static var method: RPCMethod { get }
    /// Its JSON Schema; `"$CacheStatus"` and the like stand for the words of that type.
    static var schema: String { get }
}

/// The OpenRPC description `rpc.discover` returns, put together from the types: each result's
/// schema from its `WireResult` type (`"$result:CacheStats"`), the words states travel as and the
/// errors a lookup can end in from their types (`"$CacheStatus"`, `"$LookupErrors"`), so the
/// document cannot list a word or a member the code does not have, or miss one it does. What is
/// written here: the methods' summaries, their params, and `contact.get`'s result (a reply the
/// hit path writes by hand). A test checks real replies against the schemas.
public enum OpenRPCDocument {
    /// The document as JSON text, the daemon's version in it.
    public static let json: String = Self.fillingIn(template)

    /// Every method's result type (all but `contact.get`'s, `cache.reset_stats`' `{}`,
    /// `daemon.ping`'s `"pong"` and this document).
    public static let results: [any WireResult.Type] = [
        InvalidateResult.self, CacheStats.self, DaemonStatus.self, DaemonConfig.self, MetricsText.self,
        ReloadResult.self,
    ]

    private static func fillingIn(_ template: String) -> String {
        func list(_ words: [String]) -> String { "[" + words.map { "\"\($0)\"" }.joined(separator: ", ") + "]" }
        let codes = Dictionary(grouping: ErrorReason.lookupFailures, by: { $0.code ?? 0 }).sorted { $0.key > $1.key }
        let errors = codes.map { code, reasons in
            #"{"code": \#(code), "message": "\#(reasons.map(\.rawValue).joined(separator: ", "))"}"#
        }
        let words: [(String, String)] = [
            ("CacheStatus", list(CacheStatus.known)), ("StaleReason", list(StaleReason.known)),
            ("CacheTier", list(CacheTier.known)), ("SharedCacheState", list(SharedCacheState.known)),
            ("CircuitState", list(CircuitState.known)), ("APIState", list(APIState.known)),
            ("ValueSource", list(ValueSource.known)), ("TokenChange", list(TokenChange.known)),
            ("LookupErrors", "[" + errors.joined(separator: ", ") + "]"),
        ]
        var document = template.replacing("VERSION", with: ContactdVersion.current)
        for result in results { document = document.replacing("\"$result:\(result)\"", with: result.schema) }
        for (name, value) in words { document = document.replacing("\"$\(name)\"", with: value) }
        return document
    }

    private static let template: String = #"""
        {
          "openrpc": "1.2.6",
          "info": {"title": "contactd", "version": "VERSION",
                   "description": "Local cache of the get-contact API over a Unix socket, one JSON-RPC 2.0 message per line."},
          "methods": [
            {"name": "contact.get",
             "summary": "A contact by phone number or by id, from the cache or from one API call.",
             "paramStructure": "by-name",
             "params": [
               {"name": "phone_number", "schema": {"type": "string", "maxLength": 128}, "description": "E.164 after stripping spaces, -, ., ( and ). Exactly one of phone_number and contact_id."},
               {"name": "contact_id", "schema": {"type": "string", "minLength": 1, "maxLength": 128}},
               {"name": "max_age", "schema": {"type": "number", "minimum": 0}, "description": "Seconds; an older entry is fetched again; 0 forces a fetch."}
             ],
             "result": {"name": "lookup", "schema": {"type": "object", "required": ["contact", "cache"],
               "properties": {"contact": {"type": "object"},
                              "cache": {"type": "object", "properties": {"status": {"enum": "$CacheStatus"}, "age": {"type": "number"}, "stale_reason": {"enum": "$StaleReason"}, "tier": {"enum": "$CacheTier", "description": "Only with --shared-cache: which cache answered."}}}}}},
             "errors": "$LookupErrors"},
            {"name": "contact.invalidate",
             "summary": "Drop one cached entry (by phone_number or contact_id) or all of them (all: true).",
             "paramStructure": "by-name",
             "params": [
               {"name": "phone_number", "schema": {"type": "string"}},
               {"name": "contact_id", "schema": {"type": "string"}},
               {"name": "all", "schema": {"type": "boolean"}}
             ],
             "result": {"name": "removed", "schema": "$result:InvalidateResult"}},
            {"name": "cache.stats", "summary": "Cache and upstream counters.", "params": [],
             "result": {"name": "stats", "schema": "$result:CacheStats"}},
            {"name": "cache.reset_stats", "summary": "Zero the counters cache.stats reports; levels such as entries stay.", "params": [],
             "result": {"name": "empty", "schema": {"type": "object", "additionalProperties": false}}},
            {"name": "daemon.status", "summary": "Version, uptime, connections, readiness.", "params": [],
             "result": {"name": "status", "schema": "$result:DaemonStatus"}},
            {"name": "daemon.config", "summary": "Every setting's effective value and where it came from; the token's source only.", "params": [],
             "result": {"name": "config", "schema": "$result:DaemonConfig"}},
            {"name": "daemon.metrics", "summary": "The Prometheus metrics, as --metrics-listen serves them at /metrics.", "params": [],
             "result": {"name": "metrics", "schema": "$result:MetricsText"}},
            {"name": "daemon.reload", "summary": "Re-read the token and the config file as SIGHUP does; what changed now and what waits for a restart. Only root and the daemon's own user (else forbidden).", "params": [],
             "result": {"name": "reload", "schema": "$result:ReloadResult"}},
            {"name": "daemon.ping", "summary": "Liveness check.", "params": [],
             "result": {"name": "pong", "schema": {"const": "pong"}}},
            {"name": "rpc.discover", "summary": "This document.", "params": [],
             "result": {"name": "openrpc", "schema": {"type": "object"}}}
          ]
        }
        """#
}
