/// The OpenRPC description `rpc.discover` returns.
///
/// The methods' schemas are written here by hand; the words states travel as and the errors a
/// lookup can end in are filled in from their types (`"$CacheStatus"`, `"$LookupErrors"`), so the
/// document cannot list a word the code does not have, or miss one it does. A test checks real
/// replies against the schemas.
public enum OpenRPCDocument {
    /// The document as JSON text, the daemon's version in it.
    public static let json: String = Self.fillingIn(template)

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
             "result": {"name": "removed", "schema": {"type": "object", "additionalProperties": false, "required": ["removed"],
               "properties": {"removed": {"type": "integer", "minimum": 0}, "shared": {"type": "boolean"}}}}},
            {"name": "cache.stats", "summary": "Cache and upstream counters.", "params": [],
             "result": {"name": "stats", "schema": {"type": "object", "additionalProperties": false,
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
                       "properties": {"p50": {"type": "number", "minimum": 0}, "p90": {"type": "number", "minimum": 0}, "p99": {"type": "number", "minimum": 0}, "max": {"type": "number", "minimum": 0}}}}}}}}},
            {"name": "cache.reset_stats", "summary": "Zero the counters cache.stats reports; levels such as entries stay.", "params": [],
             "result": {"name": "empty", "schema": {"type": "object", "additionalProperties": false}}},
            {"name": "daemon.status", "summary": "Version, uptime, connections, readiness.", "params": [],
             "result": {"name": "status", "schema": {"type": "object", "additionalProperties": false,
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
                                  "serving_stale_since": {"type": "string", "description": "UTC, ISO 8601; only while answers are stale because the API fails."}}}}}}},
            {"name": "daemon.config", "summary": "Every setting's effective value and where it came from; the token's source only.", "params": [],
             "result": {"name": "config", "schema": {"type": "object", "required": ["api-token"],
               "properties": {"api-token": {"type": "object", "additionalProperties": false, "required": ["source"],
                 "properties": {"source": {"enum": "$ValueSource"}}}},
               "additionalProperties": {"type": "object", "additionalProperties": false, "required": ["value", "source"],
                 "properties": {"value": {"type": ["string", "null"]}, "source": {"enum": "$ValueSource"}}}}}},
            {"name": "daemon.metrics", "summary": "The Prometheus metrics, as --metrics-listen serves them at /metrics.", "params": [],
             "result": {"name": "metrics", "schema": {"type": "object", "additionalProperties": false, "required": ["content_type", "text"],
               "properties": {"content_type": {"const": "text/plain; version=0.0.4; charset=utf-8"}, "text": {"type": "string", "description": "Prometheus text exposition format 0.0.4."}}}}},
            {"name": "daemon.reload", "summary": "Re-read the token and the config file as SIGHUP does; what changed now and what waits for a restart. Only root and the daemon's own user (else forbidden).", "params": [],
             "result": {"name": "reload", "schema": {"type": "object", "additionalProperties": false, "required": ["applied", "after_restart"],
               "properties": {"applied": {"type": "object", "description": "Settings applied at once, with their new values.", "additionalProperties": {"type": "string"}},
                              "after_restart": {"type": "array", "description": "Settings changed that take effect after a restart.", "items": {"type": "string"}},
                              "token": {"enum": "$TokenChange", "description": "Absent in --demo or when the token could not be read."},
                              "token_error": {"type": "string", "description": "Why the token could not be read again; the current one stays."},
                              "configuration_error": {"type": "string", "description": "Why the configuration did not load; the running one stays."}}}}},
            {"name": "daemon.ping", "summary": "Liveness check.", "params": [],
             "result": {"name": "pong", "schema": {"const": "pong"}}},
            {"name": "rpc.discover", "summary": "This document.", "params": [],
             "result": {"name": "openrpc", "schema": {"type": "object"}}}
          ]
        }
        """#
}
