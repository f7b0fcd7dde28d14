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
             "result": {"name": "removed", "schema": {"type": "object", "properties": {"removed": {"type": "integer"}}}}},
            {"name": "cache.stats", "summary": "Cache and upstream counters.", "params": [],
             "result": {"name": "stats", "schema": {"type": "object"}}},
            {"name": "cache.reset_stats", "summary": "Zero the counters cache.stats reports; levels such as entries stay.", "params": [],
             "result": {"name": "empty", "schema": {"type": "object"}}},
            {"name": "daemon.status", "summary": "Version, uptime, connections, readiness.", "params": [],
             "result": {"name": "status", "schema": {"type": "object"}}},
            {"name": "daemon.config", "summary": "Every setting's effective value and where it came from; the token's source only.", "params": [],
             "result": {"name": "config", "schema": {"type": "object", "additionalProperties": {"type": "object",
               "properties": {"value": {"type": ["string", "null"]}, "source": {"enum": ["flag", "environment", "file", "default", "credential", "demo"]}}}}}},
            {"name": "daemon.ping", "summary": "Liveness check.", "params": [],
             "result": {"name": "pong", "schema": {"const": "pong"}}},
            {"name": "rpc.discover", "summary": "This document.", "params": [],
             "result": {"name": "openrpc", "schema": {"type": "object"}}}
          ]
        }
        """#
}
