/// The OpenRPC description `rpc.discover` returns, compacted once at start.
public enum OpenRPCDocument {
    /// The document as compact JSON text.
    public static let json: String = #"""
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
                              "cache": {"type": "object", "properties": {"status": {"enum": ["hit", "miss", "stale"]}, "age": {"type": "number"}, "stale_reason": {"enum": ["refreshing", "upstream_unavailable", "rate_limited", "circuit_open"]}}}}}},
             "errors": [
               {"code": -32602, "message": "invalid_params, invalid_phone_number, invalid_contact_id, rejected_by_api"},
               {"code": -32001, "message": "not_found"},
               {"code": -32002, "message": "upstream_unavailable"},
               {"code": -32003, "message": "upstream_unauthorized"},
               {"code": -32004, "message": "rate_limited"},
               {"code": -32005, "message": "overloaded, shutting_down, forbidden"},
               {"code": -32006, "message": "upstream_bad_response"}
             ]},
            {"name": "contact.invalidate",
             "summary": "Drop one cached entry (by phone_number or contact_id) or all of them (all: true).",
             "paramStructure": "by-name",
             "params": [
               {"name": "phone_number", "schema": {"type": "string"}},
               {"name": "contact_id", "schema": {"type": "string"}},
               {"name": "all", "schema": {"type": "boolean"}}
             ],
             "result": {"name": "removed", "schema": {"type": "object", "additionalProperties": false, "required": ["removed"],
               "properties": {"removed": {"type": "integer", "minimum": 0}}}}},
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
                 "upstream": {"type": "object", "additionalProperties": false,
                   "required": ["requests", "errors", "in_flight", "retries", "queue_depth", "overloaded", "token_rejected", "circuit", "latency_ms"],
                   "properties": {
                     "requests": {"type": "integer", "minimum": 0}, "errors": {"type": "integer", "minimum": 0},
                     "in_flight": {"type": "integer", "minimum": 0}, "retries": {"type": "integer", "minimum": 0},
                     "queue_depth": {"type": "integer", "minimum": 0}, "overloaded": {"type": "integer", "minimum": 0},
                     "token_rejected": {"type": "boolean"},
                     "circuit": {"type": "object", "additionalProperties": false, "required": ["state", "opened", "refusals"],
                       "properties": {"state": {"enum": ["closed", "open", "half_open"]}, "opened": {"type": "integer", "minimum": 0}, "refusals": {"type": "integer", "minimum": 0}}},
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
                 "cache": {"type": "object", "additionalProperties": false, "required": ["entries", "hit_ratio"],
                   "properties": {"entries": {"type": "integer", "minimum": 0}, "hit_ratio": {"type": "number", "minimum": 0, "maximum": 1}}},
                 "api": {"type": "object", "additionalProperties": false, "required": ["state", "circuit", "token_rejected", "queue_depth"],
                   "properties": {"state": {"enum": ["ok", "token_rejected", "circuit_open", "rate_limited", "unavailable", "bad_responses"]},
                                  "circuit": {"enum": ["closed", "open", "half_open"]}, "token_rejected": {"type": "boolean"},
                                  "queue_depth": {"type": "integer", "minimum": 0},
                                  "serving_stale_since": {"type": "string", "description": "UTC, ISO 8601; only while answers are stale because the API fails."}}}}}}},
            {"name": "daemon.config", "summary": "Every setting's effective value and where it came from; the token's source only.", "params": [],
             "result": {"name": "config", "schema": {"type": "object", "required": ["api-token"],
               "properties": {"api-token": {"type": "object", "additionalProperties": false, "required": ["source"],
                 "properties": {"source": {"enum": ["file", "credential", "environment", "demo"]}}}},
               "additionalProperties": {"type": "object", "additionalProperties": false, "required": ["value", "source"],
                 "properties": {"value": {"type": ["string", "null"]}, "source": {"enum": ["flag", "environment", "file", "default"]}}}}}},
            {"name": "daemon.metrics", "summary": "The Prometheus metrics, as --metrics-listen serves them at /metrics.", "params": [],
             "result": {"name": "metrics", "schema": {"type": "object", "additionalProperties": false, "required": ["content_type", "text"],
               "properties": {"content_type": {"const": "text/plain; version=0.0.4; charset=utf-8"}, "text": {"type": "string", "description": "Prometheus text exposition format 0.0.4."}}}}},
            {"name": "daemon.ping", "summary": "Liveness check.", "params": [],
             "result": {"name": "pong", "schema": {"const": "pong"}}},
            {"name": "rpc.discover", "summary": "This document.", "params": [],
             "result": {"name": "openrpc", "schema": {"type": "object"}}}
          ]
        }
        """#
}
