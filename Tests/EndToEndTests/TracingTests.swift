import ContactdClient
import ContactdJSON
import ContactdTestSupport
import FakeContactAPI
import Foundation
import Instrumentation
import ServiceContextModule
import Testing

/// `--otlp-endpoint` and `params.traceparent` with the built daemon: the spans it exports over
/// OTLP/HTTP, collected by the fake API (which is also a collector) and decoded from protobuf.
@Suite(.timeLimit(.minutes(2))) struct TracingTests {
    static let traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
    static let callerSpanID = "00f067aa0ba902b7"

    /// The spans collected so far, once `done` holds of them (polled: the daemon sends a batch a
    /// second), within 30 s.
    static func spans(
        from api: FakeContactAPI,
        until done: ([ExportedSpan]) -> Bool
    ) async throws -> [ExportedSpan] {
        do {
            return try await eventually("the spans", within: .seconds(30)) {
                let spans = try ExportedSpan.decode(api.traceExports)
                return done(spans) ? spans : nil
            }
        } catch {
            let spans = try ExportedSpan.decode(api.traceExports)
            Issue.record("spans after 30 s:\n\(spans.map(\.description).joined(separator: "\n"))")
            return spans
        }
    }

    static func lookUp(
        _ client: RawSocketClient,
        id: Int,
        phone: String,
        traceparent: String? = nil
    ) async throws -> String {
        let trace = traceparent.map { #","traceparent":"\#($0)""# } ?? ""
        try await client.send(
            #"{"jsonrpc":"2.0","id":\#(id),"method":"contact.get","params":{"phone_number":"\#(phone)"\#(trace)}}"#
                + "\n"
        )
        return try #require(try await client.readLine())
    }

    /// A miss under the caller's trace: its span is a child of the caller's, the fetch a child of
    /// it, each API attempt (a failed one, then its retry) a child of the fetch. A hit makes no
    /// span; an unsampled caller's miss none either; a miss without a traceparent starts a trace.
    /// No span holds the number looked up.
    @Test func aMissIsTracedUnderTheCallersTraceAndAHitIsNot() async throws {
        try await withFakeAPI { api in
            try await withTemporaryDirectory { dir in
                try await withSpawnedDaemon(
                    directory: dir,
                    arguments: ["--api-url", api.baseURL, "--otlp-endpoint", api.baseURL, "--retry-base-delay", "1ms"],
                    environment: ["CONTACTD_API_TOKEN": "test-token"]
                ) { daemon in
                    let client = try await RawSocketClient.connect(daemon.socketPath)
                    let traceparent = "00-\(Self.traceID)-\(Self.callerSpanID)-01"
                    api.script([.status(503), .normal])
                    let miss = try await Self.lookUp(client, id: 1, phone: "+14155551234", traceparent: traceparent)
                    #expect(miss.contains(#""status":"miss""#), "\(miss)")
                    // A hit, in another trace: no span.
                    let hit = try await Self.lookUp(
                        client,
                        id: 2,
                        phone: "+14155551234",
                        traceparent: "00-11111111111111111111111111111111-2222222222222222-01"
                    )
                    #expect(hit.contains(#""status":"hit""#), "\(hit)")
                    // A miss whose caller does not sample: no span.
                    _ = try await Self.lookUp(
                        client,
                        id: 3,
                        phone: "+12125550100",
                        traceparent: "00-33333333333333333333333333333333-4444444444444444-00"
                    )
                    // A miss without a traceparent (a not-found): a trace of its own.
                    api.setBehavior(.status(404))
                    let notFound = try await Self.lookUp(client, id: 4, phone: "+14155550000")
                    #expect(notFound.contains("not_found"))

                    let spans = try await Self.spans(from: api) { spans in
                        spans.count { $0.name == "contactd.api.attempt" } >= 3
                            && spans.count { $0.name == "contact.get" } >= 2
                    }
                    let ours = spans.filter { $0.traceID == Self.traceID }
                    let server = try #require(ours.first { $0.name == "contact.get" }, "\(spans)")
                    #expect(server.parentSpanID == Self.callerSpanID)
                    #expect(server.kind == 2)
                    #expect(server.attributes["contactd.cache.status"] == "miss")
                    #expect(server.attributes["contactd.key.kind"] == "phone")
                    #expect(server.resource["service.name"] == "contactd")
                    let fetch = try #require(ours.first { $0.name == "contactd.fetch" })
                    #expect(fetch.parentSpanID == server.spanID)
                    #expect(fetch.attributes["contactd.fetch.source"] == "api")
                    let attempts = ours.filter { $0.name == "contactd.api.attempt" }
                        .sorted { $0.attributes["contactd.attempt"] ?? "" < $1.attributes["contactd.attempt"] ?? "" }
                    #expect(attempts.count == 2, "\(ours)")
                    #expect(attempts.allSatisfy { $0.parentSpanID == fetch.spanID })
                    #expect(attempts.first?.attributes["contactd.api.outcome"] == "unavailable")
                    #expect(attempts.first?.statusCode == 2)
                    #expect(attempts.last?.attributes["contactd.attempt"] == "2")
                    #expect(attempts.last?.attributes["contactd.api.outcome"] == "ok")

                    #expect(!spans.contains { $0.traceID == "11111111111111111111111111111111" }, "a hit makes no span")
                    #expect(!spans.contains { $0.traceID == "33333333333333333333333333333333" }, "unsampled")
                    let own = spans.filter { $0.name == "contact.get" && $0.traceID != Self.traceID }
                    #expect(own.count == 1)
                    #expect(own.first?.parentSpanID == "")
                    #expect(own.first?.attributes["error.type"] == "not_found")
                    #expect(own.first?.statusCode == 2)
                    for span in spans {
                        #expect(!span.attributes.values.contains { $0.contains("4155") }, "a number in \(span)")
                    }
                    await client.close()
                    daemon.signal(SIGTERM)
                    #expect(try await daemon.waitForExit() == 0)
                }
            }
        }
    }

    /// Any method takes a traceparent; one that is not a string is refused plainly.
    @Test func everyMethodTakesATraceparent() async throws {
        try await withTemporaryDirectory { dir in
            try await withSpawnedDaemon(directory: dir, arguments: ["--demo"]) { daemon in
                let client = try await RawSocketClient.connect(daemon.socketPath)
                let traceparent = #""traceparent":"00-\#(Self.traceID)-\#(Self.callerSpanID)-01""#
                for (id, method) in ["daemon.ping", "cache.stats", "daemon.status", "rpc.discover"].enumerated() {
                    let request = #"{"jsonrpc":"2.0","id":\#(id),"method":"\#(method)","#
                    try await client.send(request + #""params":{\#(traceparent)}}"# + "\n")
                    let reply = try #require(try await client.readLine())
                    #expect(reply.contains(#""result""#), "\(method): \(reply)")
                }
                try await client.send(
                    #"{"jsonrpc":"2.0","id":9,"method":"contact.invalidate","params":{"all":true,\#(traceparent)}}"#
                        + "\n"
                )
                #expect(try #require(try await client.readLine()).contains(#""removed""#))
                try await client.send(
                    #"{"jsonrpc":"2.0","id":10,"method":"contact.get","params":{"phone_number":"+14155551234","traceparent":7}}"#
                        + "\n"
                )
                let refused = try #require(try await client.readLine())
                #expect(refused.contains("traceparent must be a string"), "\(refused)")
                await client.close()
                daemon.signal(SIGTERM)
                #expect(try await daemon.waitForExit() == 0)
            }
        }
    }

    /// The Swift client passes the caller's trace context: a lookup made inside a traced task
    /// shows in that trace.
    @Test func theSwiftClientPassesTheCallersTraceContext() async throws {
        _ = TestTraceInstrument.bootstrapped
        try await withFakeAPI { api in
            try await withTemporaryDirectory { dir in
                try await withSpawnedDaemon(
                    directory: dir,
                    arguments: ["--api-url", api.baseURL, "--otlp-endpoint", api.baseURL],
                    environment: ["CONTACTD_API_TOKEN": "test-token"]
                ) { daemon in
                    try await ContactdConnection.withConnection(socketPath: daemon.socketPath) { connection in
                        var context = ServiceContext.topLevel
                        context[TestTraceInstrument.Key.self] = "00-\(Self.traceID)-\(Self.callerSpanID)-01"
                        let found = try await ServiceContext.withValue(context) {
                            try await connection.contact(phoneNumber: "+14155551234")
                        }
                        #expect(found.cacheStatus == .miss)
                        // Outside the trace: nothing passed, the plain line.
                        _ = try? await connection.contact(phoneNumber: "+12125550100")  // not found: a miss too
                    }
                    let spans = try await Self.spans(from: api) { $0.count { $0.name == "contact.get" } >= 2 }
                    let traced = spans.filter { $0.name == "contact.get" && $0.traceID == Self.traceID }
                    #expect(traced.count == 1)
                    #expect(traced.first?.parentSpanID == Self.callerSpanID)
                    #expect(spans.filter { $0.name == "contact.get" && $0.parentSpanID.isEmpty }.count == 1)
                    daemon.signal(SIGTERM)
                    #expect(try await daemon.waitForExit() == 0)
                }
            }
        }
    }
}

/// What a service's OpenTelemetry instrument does for the client: puts the task's trace context
/// into a carrier as `traceparent`. Here the context holds the header itself.
struct TestTraceInstrument: Instrument {
    enum Key: ServiceContextKey {
        typealias Value = String
    }

    /// The process-wide instrument can be set once: every test that needs it goes through here.
    static let bootstrapped: Void = InstrumentationSystem.bootstrap(TestTraceInstrument())

    func extract<Carrier, Extract: Extractor>(
        _ carrier: Carrier,
        into context: inout ServiceContext,
        using extractor: Extract
    ) where Extract.Carrier == Carrier {}

    func inject<Carrier, Inject: Injector>(
        _ context: ServiceContext,
        into carrier: inout Carrier,
        using injector: Inject
    ) where Inject.Carrier == Carrier {
        if let traceparent = context[Key.self] { injector.inject(traceparent, forKey: "traceparent", into: &carrier) }
    }
}
