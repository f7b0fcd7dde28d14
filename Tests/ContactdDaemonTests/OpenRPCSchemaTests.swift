import ContactdCore
import ContactdDaemon
import ContactdJSON
import ContactdProtocol
import ContactdTestSupport
import FakeContactAPI
import Testing

/// `rpc.discover` gives every method's full result schema, and real replies fit them: a member
/// added to a reply and not to the document (or the other way round) fails here.
@Suite(.timeLimit(.minutes(1))) struct OpenRPCSchemaTests {
    @Test func realRepliesFitTheDocumentedResultSchemas() async throws {
        let time = ManualClock()
        try await withFakeAPI { api in
            try await withDaemon(api: api, configure: { $0.clock = time.clock }) { daemon in
                let client = try await RawSocketClient.connect(daemon.socketPath)
                let document = try #require(
                    try await roundTrip(client, #"{"jsonrpc":"2.0","id":1,"method":"rpc.discover"}"#)["result"]
                )
                var schemas: [String: JSONValue] = [:]
                for method in document["methods"]?.arrayValue ?? [] {
                    schemas[method["name"]?.stringValue ?? ""] = method["result"]?["schema"]
                }
                #expect(Set(schemas.keys) == Set(RPCMethod.allCases.map(\.rawValue)))

                func check(_ method: String, _ params: String = "{}") async throws {
                    let reply = try await roundTrip(
                        client,
                        #"{"jsonrpc":"2.0","id":2,"method":"\#(method)","params":\#(params)}"#
                    )
                    let result = try #require(reply["result"], "\(method): \(reply.jsonString)")
                    let schema = try #require(schemas[method], "\(method) has no result schema")
                    let problems = JSONSchemaCheck.problems(result, against: schema)
                    #expect(problems.isEmpty, "\(method): \(problems)")
                }
                try await check("contact.get", #"{"phone_number":"+14155551234"}"#)
                try await check("contact.get", #"{"phone_number":"+14155551234"}"#)
                for method in ["cache.stats", "daemon.status", "daemon.config", "daemon.metrics", "daemon.ping"] {
                    try await check(method)
                }
                // With the API failing and a stale answer given, daemon.status carries
                // serving_stale_since and the circuit's state.
                api.setBehavior(.status(503))
                time.advance(by: 3600)
                try await check("contact.get", #"{"phone_number":"+14155551234"}"#)
                try await check("daemon.status")
                try await check("cache.stats")
                try await check("contact.invalidate", #"{"all":true}"#)
                try await check("cache.reset_stats")
                await client.close()
            }
        }
    }

    /// Each result type's schema, beside its members, names exactly what the type encodes: a
    /// value with every member set fits it, and every property it lists is in that value.
    @Test func everyResultTypeFillsItsSchemaExactly() throws {
        let document = try JSONParser.parse(Array(OpenRPCDocument.json.utf8))
        var schemas: [String: JSONValue] = [:]
        for method in document["methods"]?.arrayValue ?? [] {
            schemas[method["name"]?.stringValue ?? ""] = method["result"]?["schema"]
        }
        for (type, sample) in try Self.fullSamples() {
            let schema = try #require(schemas[type.method.rawValue], "\(type): no schema for \(type.method)")
            #expect(
                JSONSchemaCheck.problems(sample, against: schema).isEmpty,
                "\(type): \(JSONSchemaCheck.problems(sample, against: schema))"
            )
            let missing = Self.properties(of: schema).subtracting(Self.members(of: sample))
            #expect(missing.isEmpty, "\(type)'s schema lists what it never encodes: \(missing.sorted())")
        }
        #expect(Set(try Self.fullSamples().map { "\($0.0)" }) == Set(OpenRPCDocument.results.map { "\($0)" }))
    }

    /// Every result type with every member set (optionals too).
    static func fullSamples() throws -> [(any WireResult.Type, JSONValue)] {
        let encoder = JSONValueEncoder()
        var stats = CacheStats()
        stats.heldBytes = 1
        stats.evictionsByCause = CacheStats.EvictionsByCause()
        stats.admissionsRefused = 0
        stats.policy = CacheStats.Policy()
        stats.shared = CacheStats.Shared()
        stats.upstream.latencyMs = CacheStats.Latency()
        var status = DaemonStatus()
        status.pid = 1
        status.fastPath = DaemonStatus.FastPath()
        status.cache = DaemonStatus.Cache()
        var api = DaemonStatus.API()
        api.servingStaleSince = "2026-12-07T12:00:00Z"
        status.api = api
        var shared = DaemonStatus.SharedCache()
        shared.reason = "down"
        shared.primary = "127.0.0.1:6379"
        shared.failovers = 1
        shared.movedAt = "2026-12-07T12:00:00Z"
        status.sharedCache = shared
        var config = DaemonConfig()
        config.add("ttl", .init(value: "5m", source: .default))
        config.apiTokenSource = .credential
        var reload = ReloadResult()
        reload.applied = ["ttl": "1m"]
        reload.token = .changed
        reload.tokenError = "x"
        reload.configurationError = "y"
        return [
            (InvalidateResult.self, try encoder.encode(InvalidateResult(removed: 1, shared: true))),
            (CacheStats.self, try encoder.encode(stats)),
            (DaemonStatus.self, try encoder.encode(status)),
            (DaemonConfig.self, try encoder.encode(config)),
            (
                MetricsText.self,
                try encoder.encode(MetricsText(contentType: "text/plain; version=0.0.4; charset=utf-8", text: ""))
            ),
            (ReloadResult.self, try encoder.encode(reload)),
        ]
    }

    /// The dotted paths of the properties a schema names.
    static func properties(of schema: JSONValue, prefix: String = "") -> Set<String> {
        var paths: Set<String> = []
        for (name, sub) in schema["properties"]?.objectValue?.members ?? [] {
            paths.insert(prefix + name)
            paths.formUnion(properties(of: sub, prefix: prefix + name + "."))
        }
        return paths
    }

    /// The dotted paths of the members a value has.
    static func members(of value: JSONValue, prefix: String = "") -> Set<String> {
        var paths: Set<String> = []
        for (name, sub) in value.objectValue?.members ?? [] {
            paths.insert(prefix + name)
            paths.formUnion(members(of: sub, prefix: prefix + name + "."))
        }
        return paths
    }

    /// A schema that says nothing but "object" documents nothing.
    @Test func everyResultSchemaSaysMoreThanObject() throws {
        let document = try JSONParser.parse(Array(OpenRPCDocument.json.utf8))
        for method in document["methods"]?.arrayValue ?? [] {
            let name = method["name"]?.stringValue ?? "?"
            guard name != "rpc.discover" else { continue }
            let schema = try #require(method["result"]?["schema"])
            #expect(schema != .object(["type": "object"]), "\(name)'s result schema is only {type: object}")
        }
    }

    /// The checker itself finds what it is meant to.
    @Test func theCheckerFindsMismatches() throws {
        let schema = try JSONParser.parse(
            Array(
                #"{"type":"object","additionalProperties":false,"required":["a"],"properties":{"a":{"type":"integer","minimum":0},"b":{"enum":["x"]}}}"#
                    .utf8
            )
        )
        #expect(
            JSONSchemaCheck.problems(try JSONParser.parse(Array(#"{"a":1,"b":"x"}"#.utf8)), against: schema).isEmpty
        )
        let bad = try JSONParser.parse(Array(#"{"a":-1.5,"b":"y","c":true}"#.utf8))
        let problems = JSONSchemaCheck.problems(bad, against: schema)
        #expect(problems.count == 4, "\(problems)")
        #expect(JSONSchemaCheck.problems(.object([:]), against: schema) == ["$: a is missing"])
    }
}
