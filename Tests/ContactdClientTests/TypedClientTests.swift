import ContactdClient
import ContactdCore
import ContactdDaemon
import ContactdJSON
import ContactdProtocol
import ContactdTestSupport
import FakeContactAPI
import Foundation
import InMemoryLogging
import Logging
import ServiceLifecycle
import Testing

/// The typed Swift client against the real daemon, in-process, with a loopback API.
@Suite(.timeLimit(.minutes(1))) struct TypedClientTests {
    /// A contact with every documented member, one the client does not know, and numbers spelled
    /// as an API might.
    static let rich = #"""
        {"id":"rich-1","phone_number":"+14155550100","name":"Ada Rich","email":"ada@example.com",
         "company":"Example Ltd","notes":"met at the fair","tags":["customer","vip"],
         "metadata":{"tier":2,"score":1.50},"stats":{"total_calls":5,"total_messages":12,
         "last_contact":"2024-01-15T10:30:00.250Z"},"created_at":"2024-01-10T10:00:00Z",
         "updated_at":"2024-01-15T10:30:00Z","x_favourite_colour":"teal","x_nested":{"a":[1,2]}}
        """#

    @Test func aContactIsTypedAndKeepsWhatTheClientDoesNotKnow() async throws {
        try await withFakeAPI(contacts: [Self.rich]) { api in
            try await withDaemon(api: api) { daemon in
                let client = ContactdSession(socketPath: daemon.socketPath, timeout: .seconds(5))
                let found = try await client.contact(phoneNumber: "+1 415 555 0100")
                #expect(found.cacheStatus == .miss)
                #expect(found.staleReason == nil)
                let contact = found.contact
                #expect(contact.id == "rich-1" && contact.phoneNumber == "+14155550100" && contact.name == "Ada Rich")
                #expect(contact.email == "ada@example.com" && contact.company == "Example Ltd")
                #expect(contact.notes == "met at the fair" && contact.tags == ["customer", "vip"])
                #expect(contact.metadata["score"] == .number("1.50"), "the API's number spelling is kept")
                #expect(contact.stats?.totalCalls == 5 && contact.stats?.totalMessages == 12)
                #expect(contact.stats?.lastContact == Date(timeIntervalSince1970: 1_705_314_600.25))
                #expect(contact.createdAt == Date(timeIntervalSince1970: 1_704_880_800))
                #expect(contact.updatedAt == Date(timeIntervalSince1970: 1_705_314_600))
                #expect(contact["x_favourite_colour"]?.stringValue == "teal")
                #expect(contact["x_nested"]?["a"]?.arrayValue?.count == 2)
                // The verbatim bytes: the API's object with only the whitespace removed.
                #expect(String(decoding: contact.json, as: UTF8.self) == Self.compact(Self.rich))
                // Codable: what a service stores and reads back is the same contact.
                let decoded = try JSONDecoder().decode(Contact.self, from: JSONEncoder().encode(contact))
                #expect(
                    decoded.id == contact.id && decoded.tags == contact.tags && decoded.createdAt == contact.createdAt
                )
                #expect(decoded["x_favourite_colour"]?.stringValue == "teal")
                let again = try await client.contact(id: "rich-1")
                #expect(again.cacheStatus == .hit)
                #expect(again.contact == contact)
                await client.close()
            }
        }
    }

    /// The API's object as contactd keeps it: whitespace between tokens removed, nothing else.
    static func compact(_ text: String) -> String {
        var out = ""
        var inString = false
        var escaped = false
        for character in text {
            if inString {
                out.append(character)
                if escaped {
                    escaped = false
                } else if character == "\\" {
                    escaped = true
                } else if character == "\"" {
                    inString = false
                }
            } else if character == "\"" {
                inString = true
                out.append(character)
            } else if !character.isWhitespace {
                out.append(character)
            }
        }
        return out
    }

    @Test func everyReasonTheDaemonGivesComesBackAsItsKind() async throws {
        try await withFakeAPI { api in
            try await withDaemon(api: api, configure: { $0.policy.retryAttempts = 1 }) { daemon in
                let client = ContactdSession(socketPath: daemon.socketPath, timeout: .seconds(5))
                func kind(_ body: () async throws -> Void) async -> ContactdClientError.Reason? {
                    do {
                        try await body()
                        return nil
                    } catch let error as ContactdClientError {
                        return error.kind
                    } catch {
                        return .unknown("\(error)")
                    }
                }
                #expect(await kind { _ = try await client.contact(phoneNumber: "+15550000404") } == .notFound)
                #expect(await kind { _ = try await client.contact(phoneNumber: "+0123") } == .invalidPhoneNumber)
                #expect(await kind { _ = try await client.contact(id: "has space") } == .invalidContactID)
                #expect(await kind { _ = try await client.call("contact.get", params: .object([:])) } == .invalidParams)
                #expect(await kind { _ = try await client.call("contact.delete") } == .methodNotFound)
                #expect(
                    await kind { _ = try await client.contact(id: String(repeating: "x", count: 70_000)) }
                        == .requestTooLarge
                )
                api.setBehavior(.status(503))
                let unavailable = await kind { _ = try await client.contact(phoneNumber: "+15550000001") }
                #expect(unavailable == .upstreamUnavailable, "\(String(describing: unavailable))")
                api.setBehavior(.status(429, retryAfter: "7"))
                do {
                    _ = try await client.contact(phoneNumber: "+15550000002")
                    Issue.record("a 429 was answered")
                } catch let error as ContactdClientError {
                    #expect(error.kind == .rateLimited && error.retryAfter == 7 && error.retry == .afterRetryAfter)
                }
                api.setBehavior(.status(400))
                #expect(await kind { _ = try await client.contact(phoneNumber: "+15550000003") } == .rejectedByAPI)
                api.setBehavior(.garbage("<html>"))
                #expect(
                    await kind { _ = try await client.contact(phoneNumber: "+15550000004") } == .upstreamBadResponse
                )
                api.setBehavior(.status(401))
                #expect(
                    await kind { _ = try await client.contact(phoneNumber: "+15550000005") } == .upstreamUnauthorized
                )
                api.setBehavior(.normal)
                await client.close()
            }
        }
    }

    /// Issue #23, item 12: calls that time out leave the connection's table of calls waiting for
    /// a reply (before, they stayed in it forever), and their replies, arriving later, are dropped
    /// without harm to the connection.
    @Test func timedOutCallsLeaveThePendingTable() async throws {
        try await withFakeAPI { api in
            try await withDaemon(api: api, configure: { $0.limits.maxInFlightPerConnection = 64 }) { daemon in
                let connection = try await ContactdConnection.connect(
                    socketPath: daemon.socketPath,
                    timeout: .seconds(5)
                )
                api.hold()
                for index in 0..<20 {
                    let params: JSONValue = .object(["phone_number": .string("+1555111\(1000 + index)")])
                    do {
                        _ = try await connection.call("contact.get", params: params, timeout: .milliseconds(20))
                        Issue.record("a held lookup answered")
                    } catch let error as ContactdClientError {
                        #expect(error.kind == .timedOut && error.retry == .yes)
                    }
                }
                #expect(try await connection.unansweredCalls == 0)
                api.release()
                // The late replies (errors or contacts) are dropped; the connection goes on.
                try await connection.ping()
                #expect(try await connection.unansweredCalls == 0)
                await connection.close()
            }
        }
    }

    /// A connection over `--max-connections` is refused with `overloaded`, as a whole: the
    /// client reports it on the call it was making.
    @Test func aConnectionOverTheLimitIsOverloaded() async throws {
        try await withFakeAPI { api in
            try await withDaemon(api: api, configure: { $0.limits.maxConnections = 1 }) { daemon in
                let first = try await ContactdConnection.connect(socketPath: daemon.socketPath, timeout: .seconds(5))
                try await first.ping()
                let second = ContactdSession(socketPath: daemon.socketPath, timeout: .seconds(5))
                do {
                    try await second.ping()
                    Issue.record("a second connection was served past --max-connections 1")
                } catch let error as ContactdClientError {
                    #expect(error.kind == .overloaded, "\(error)")
                }
                await second.close()
                await first.close()
            }
        }
    }

    @Test func reasonsRoundTripAndAnUnknownOneStaysReadable() {
        for spelling in ContactdClientError.Reason.serverReasons + [
            "connection_failed", "permission_denied", "timed_out", "connection_closed", "bad_response",
        ] {
            let reason = ContactdClientError.Reason(spelling)
            #expect(reason.description == spelling)
            if case .unknown = reason { Issue.record("\(spelling) is not known") }
        }
        #expect(ContactdClientError.Reason.serverReasons.count == 18)
        #expect(ContactdClientError.Reason("brand_new") == .unknown("brand_new"))
        #expect(CacheStatus("warm") == .unknown("warm") && CacheStatus("warm").description == "warm")
        #expect(StaleReason("circuit_open") == .circuitOpen && StaleReason("other") == .unknown("other"))
    }

    @Test func statsAndStatusAreTyped() async throws {
        try await withFakeAPI { api in
            try await withDaemon(api: api) { daemon in
                let client = ContactdSession(socketPath: daemon.socketPath, timeout: .seconds(5))
                _ = try await client.contact(phoneNumber: "+14155551234")
                _ = try await client.contact(phoneNumber: "+14155551234")
                let stats = try await client.stats()
                #expect(stats.entries == 1 && stats.hits == 1 && stats.misses == 1)
                #expect(stats.hitRatio == 0.5 && stats.upstream.requests == 1 && stats.admissionsRefused == 0)
                #expect(stats.upstream.circuit.state == .closed && stats.upstream.latencyMs != nil)
                let config = try await client.config()
                #expect(config.settings.count == DaemonConfiguration.settings.count)
                #expect(config["ttl"] == .init(value: "5m", source: .default))
                #expect(config["socket"]?.value == daemon.socketPath && config["socket"]?.source == .default)
                #expect(config.apiTokenSource == .environment)
                let status = try await client.status()
                #expect(status.ready && !status.draining && status.connections == 1)
                #expect(status.cache?.entries == 1 && status.api?.state == .ok)
                #expect(!status.version.isEmpty)
                await client.close()
            }
        }
    }

    /// `rpc.discover` describes what these types decode: the same statuses, stale reasons and
    /// error reasons.
    @Test func theOpenRPCDocumentAgreesWithTheTypes() async throws {
        try await withFakeAPI { api in
            try await withDaemon(api: api) { daemon in
                let client = ContactdSession(socketPath: daemon.socketPath, timeout: .seconds(5))
                let document = try await client.call("rpc.discover")
                let get = try #require(document["methods"]?.arrayValue?.first { $0["name"] == "contact.get" })
                let cache = get["result"]?["schema"]?["properties"]?["cache"]?["properties"]
                #expect(cache?["status"]?["enum"]?.arrayValue?.compactMap(\.stringValue) == CacheStatus.known)
                #expect(cache?["stale_reason"]?["enum"]?.arrayValue?.compactMap(\.stringValue) == StaleReason.known)
                let documented = (get["errors"]?.arrayValue ?? []).flatMap {
                    ($0["message"]?.stringValue ?? "").split(separator: ",").map {
                        $0.trimmingCharacters(in: .whitespaces)
                    }
                }
                #expect(!documented.isEmpty)
                for reason in documented {
                    #expect(ContactdClientError.Reason.serverReasons.contains(reason), "\(reason)")
                }
                await client.close()
            }
        }
    }

    /// One client made once, shared by many tasks, run as a service: its calls spread over its
    /// connections, and the service group's shutdown closes them.
    @Test func thePooledClientIsAServiceSharedByTasks() async throws {
        try await withFakeAPI { api in
            try await withDaemon(api: api) { daemon in
                let logs = InMemoryLogHandler()
                var logger = Logger(label: "test", factory: { _ in logs })
                logger.logLevel = .debug
                let client = Contactd(
                    configuration: .init(socketPath: daemon.socketPath, timeout: .seconds(5), connections: 2),
                    logger: logger
                )
                let group = ServiceGroup(
                    services: [client],
                    logger: Logger(label: "group", factory: { _ in SwiftLogNoOpLogHandler() })
                )
                try await withThrowingTaskGroup(of: Void.self) { tasks in
                    tasks.addTask { try await group.run() }
                    let names = try await withThrowingTaskGroup(of: String?.self) { lookups in
                        for _ in 0..<50 {
                            lookups.addTask { try await client.contact(phoneNumber: "+14155551234").contact.name }
                        }
                        return try await lookups.reduce(into: [String?]()) { $0.append($1) }
                    }
                    #expect(names.count == 50 && names.allSatisfy { $0 == "John Smith" })
                    #expect(try await client.status().connections == 2)
                    await group.triggerGracefulShutdown()
                    try await tasks.waitForAll()
                }
                #expect(logs.entries.contains { $0.message.description == "contactd client closed its connections" })
                #expect(logs.entries.contains { $0.message.description == "connected to contactd" })
            }
        }
    }
}
