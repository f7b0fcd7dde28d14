import ContactdJSON
import ContactdTestSupport
import FakeContactAPI
import Foundation
import Glibc
import NIOCore
import RedisClient
import Testing

/// The shared cache with a real `redis-server` and three real contactd processes (hosts A, B
/// and C) against one loopback API: shared hits, fleet-wide coalescing and invalidation, and Redis
/// failing under them.
@Suite(
    .timeLimit(.minutes(2)),
    .serialized,
    .enabled(if: RedisServer.isAvailable, "needs /usr/bin/redis-server (apt-get install redis-server)")
)
struct SharedCacheTests {
    struct Fleet {
        let redis: RedisServer
        let hosts: [SpawnedDaemon]
        let api: FakeContactAPI
    }

    /// Redis, the API and `count` hosts sharing them (host 0 through the Unix socket, the others
    /// over TCP); everything is stopped afterwards.
    func withFleet(
        count: Int = 3,
        redisPassword: String? = nil,
        hostPassword: String? = nil,
        hostKeys: [String?] = [],
        redisArguments: [String] = [],
        hostArguments: @Sendable (FakeContactAPI) -> [String] = { _ in [] },
        _ body: (Fleet) async throws -> Void
    ) async throws {
        try await withTemporaryDirectory { directory in
            let redis = try RedisServer(directory: directory, password: redisPassword, extraArguments: redisArguments)
            try await redis.start()
            try await withFakeAPI { api in
                var hosts: [SpawnedDaemon] = []
                do {
                    for index in 0..<count {
                        let hostDirectory = directory + "/h\(index)"
                        try FileManager.default.createDirectory(
                            atPath: hostDirectory,
                            withIntermediateDirectories: true
                        )
                        var arguments =
                            [
                                "--api-url", api.baseURL, "--log-level", "info",
                                "--shared-cache", index == 0 ? "unix:\(redis.socketPath)" : redis.url,
                            ] + hostArguments(api)
                        if let hostPassword {
                            let file = hostDirectory + "/redis-password"
                            try hostPassword.write(toFile: file, atomically: true, encoding: .utf8)
                            arguments += ["--shared-cache-password-file", file]
                        }
                        if index < hostKeys.count, let key = hostKeys[index] {
                            let file = hostDirectory + "/redis-key"
                            try key.write(toFile: file, atomically: true, encoding: .utf8)
                            arguments += ["--shared-cache-key-file", file]
                        }
                        let host = try SpawnedDaemon(
                            directory: hostDirectory,
                            arguments: arguments,
                            environment: ["CONTACTD_API_TOKEN": "test-token"]
                        )
                        hosts.append(host)
                        _ = try await host.notify.waitFor("READY=1") { $0.contains("READY=1") }
                    }
                    if hostPassword == redisPassword {
                        for host in hosts { try await waitForSharedCache(host, state: "up") }
                    }
                    try await body(Fleet(redis: redis, hosts: hosts, api: api))
                } catch {
                    for host in hosts { await host.stop() }
                    await redis.kill()
                    throw error
                }
                for host in hosts { await host.stop() }
                await redis.kill()
            }
        }
    }

    func call(_ host: SpawnedDaemon, _ line: String) async throws -> JSONValue {
        let client = try await RawSocketClient.connect(host.socketPath)
        defer { Task { await client.close() } }
        try await client.send(line + "\n")
        let reply = try #require(try await client.readLine())
        return try JSONParser.parse(Array(reply.utf8))
    }

    func get(_ host: SpawnedDaemon, _ number: String) async throws -> JSONValue {
        try await call(host, #"{"jsonrpc":"2.0","id":1,"method":"contact.get","params":{"phone_number":"\#(number)"}}"#)
    }

    func sharedState(_ host: SpawnedDaemon) async throws -> String? {
        try await call(host, #"{"jsonrpc":"2.0","id":1,"method":"daemon.status"}"#)["result"]?["shared_cache"]?[
            "state"
        ]?
        .stringValue
    }

    /// The shared tier in a trace (issue #26, item 6): host A's miss claims the key in Redis and
    /// calls the API, which holds its answer; host B's miss of the same key finds the claim and
    /// waits for A's fetch (B's stats say when it waits: the API is released only then); B's
    /// answer comes through Redis. Each step is a span, in each caller's own trace.
    @Test func theSharedTierAndAWaitForAnotherHostsClaimAreTraced() async throws {
        let traced: @Sendable (FakeContactAPI) -> [String] = { ["--otlp-endpoint", $0.baseURL] }
        try await withFleet(count: 2, hostArguments: traced) { fleet in
            let (traceA, traceB) = ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")
            func lookUp(_ host: SpawnedDaemon, trace: String) async throws -> JSONValue {
                let params = #"{"phone_number":"+14155551234","traceparent":"00-\#(trace)-00f067aa0ba902b7-01"}"#
                return try await call(host, #"{"jsonrpc":"2.0","id":1,"method":"contact.get","params":\#(params)}"#)
            }
            fleet.api.hold()
            async let a = lookUp(fleet.hosts[0], trace: traceA)
            try await fleet.api.waitForCalls(1)
            async let b = lookUp(fleet.hosts[1], trace: traceB)
            let stats = #"{"jsonrpc":"2.0","id":2,"method":"cache.stats"}"#
            try await eventually("host B waits for host A's claim") {
                try await call(fleet.hosts[1], stats)["result"]?["shared"]?["waits"]?.intValue ?? 0 >= 1
            }
            fleet.api.release()
            #expect(try await a["result"]?["cache"]?["status"]?.stringValue == "miss")
            let answerB = try await b
            #expect(answerB["result"]?["cache"]?["tier"]?.stringValue == "shared", "\(answerB)")
            #expect(fleet.api.calls == 1)

            let spans = try await TracingTests.spans(from: fleet.api) { spans in
                spans.contains { $0.traceID == traceB && $0.name == "contact.get" }
                    && spans.contains { $0.traceID == traceA && $0.name == "contact.get" }
            }
            let lookupA = spans.first { $0.traceID == traceA && $0.name == "contactd.shared_cache.lookup" }
            #expect(lookupA?.attributes["contactd.shared_cache.result"] == "claimed", "\(spans)")
            #expect(spans.contains { $0.traceID == traceA && $0.name == "contactd.api.attempt" })
            let lookupB = spans.first { $0.traceID == traceB && $0.name == "contactd.shared_cache.lookup" }
            #expect(lookupB?.attributes["contactd.shared_cache.result"] == "fetched_elsewhere", "\(spans)")
            let waitB = spans.first { $0.traceID == traceB && $0.name == "contactd.shared_cache.wait_for_claim" }
            #expect(waitB?.attributes["contactd.shared_cache.found"] == "true")
            let fetchB = spans.first { $0.traceID == traceB && $0.name == "contactd.fetch" }
            #expect(fetchB?.attributes["contactd.fetch.source"] == "shared")
            #expect(!spans.contains { $0.traceID == traceB && $0.name == "contactd.api.attempt" })
        }
    }

    func waitForSharedCache(_ host: SpawnedDaemon, state: String, within seconds: Double = 10) async throws {
        do {
            try await eventually("the shared cache \(state)", within: .seconds(seconds)) {
                try await sharedState(host) == state
            }
        } catch {
            Issue.record("\(error): \(host.log)")
        }
    }

    @Test func aContactFetchedOnOneHostIsASharedHitOnAnother() async throws {
        try await withFleet { fleet in
            let (a, b, c) = (fleet.hosts[0], fleet.hosts[1], fleet.hosts[2])
            let first = try await get(a, "+14155551234")
            #expect(first["result"]?["cache"]?["status"]?.stringValue == "miss")
            #expect(first["result"]?["cache"]?["tier"]?.stringValue == "api")
            try await fleet.api.waitForCalls(1)
            let onB = try await get(b, "+14155551234")
            #expect(onB["result"]?["cache"]?["status"]?.stringValue == "hit", "\(onB.jsonString)")
            #expect(onB["result"]?["cache"]?["tier"]?.stringValue == "shared")
            #expect(onB["result"]?["contact"] == first["result"]?["contact"])
            // B now has it itself; by its id too (the shared entry is stored under every key).
            let again = try await get(b, "+14155551234")
            #expect(again["result"]?["cache"]?["tier"]?.stringValue == "local")
            let byID = try await call(
                c,
                #"{"jsonrpc":"2.0","id":1,"method":"contact.get","params":{"contact_id":"c1d2e3f4-5678-9abc-def0-123456789abc"}}"#
            )
            #expect(byID["result"]?["cache"]?["tier"]?.stringValue == "shared", "\(byID.jsonString)")
            // A not-found is shared too.
            _ = try await get(a, "+15550000000")
            let notFound = try await get(c, "+15550000000")
            #expect(notFound["error"]?["data"]?["reason"]?.stringValue == "not_found")
            #expect(fleet.api.calls == 2, "one call for the contact, one for the unknown number")
            // The replies with the shared cache's members fit rpc.discover's schemas.
            let document = try await call(a, #"{"jsonrpc":"2.0","id":1,"method":"rpc.discover"}"#)
            let methods = document["result"]?["methods"]?.arrayValue ?? []
            func schema(_ name: String) -> JSONValue? {
                methods.first { $0["name"]?.stringValue == name }?["result"]?["schema"]
            }
            for (method, reply) in [
                ("contact.get", onB),
                ("cache.stats", try await call(b, #"{"jsonrpc":"2.0","id":1,"method":"cache.stats"}"#)),
                ("daemon.status", try await call(b, #"{"jsonrpc":"2.0","id":1,"method":"daemon.status"}"#)),
            ] {
                let result = try #require(reply["result"])
                #expect(result["shared"] != nil || result["shared_cache"] != nil || method == "contact.get")
                let problems = JSONSchemaCheck.problems(result, against: try #require(schema(method)))
                #expect(problems.isEmpty, "\(method): \(problems)")
            }
            let metrics =
                try await call(b, #"{"jsonrpc":"2.0","id":1,"method":"daemon.metrics"}"#)["result"]?["text"]?
                .stringValue ?? ""
            #expect(metrics.contains("contactd_shared_cache_up 1.0"), "\(metrics)")
            #expect(metrics.contains(#"contactd_shared_cache_lookups_total{result="hit"} 1"#), "\(metrics)")
            // SIGTERM with the shared cache connected: a clean, prompt stop.
            a.signal(SIGTERM)
            #expect(try await a.waitForExit(timeout: 10) == 0, "\(a.log)")
        }
    }

    /// 3 hosts × 100 concurrent misses for one key: one API call.
    @Test func concurrentMissesOnEveryHostMakeOneAPICall() async throws {
        try await withFleet { fleet in
            fleet.api.setDelay(.milliseconds(300))
            let number = "+14155551234"
            let replies = try await withThrowingTaskGroup(of: [String].self) { group in
                for host in fleet.hosts {
                    group.addTask {
                        let client = try await RawSocketClient.connect(host.socketPath)
                        for id in 0..<100 {
                            try await client.send(
                                #"{"jsonrpc":"2.0","id":\#(id),"method":"contact.get","params":{"phone_number":"\#(number)"}}"#
                                    + "\n"
                            )
                        }
                        let lines = try await client.readLines(100)
                        await client.close()
                        return lines
                    }
                }
                var all: [String] = []
                for try await lines in group { all += lines }
                return all
            }
            #expect(replies.count == 300)
            #expect(
                replies.allSatisfy { $0.contains("John Smith") },
                "\(replies.first { !$0.contains("John Smith") } ?? "")"
            )
            #expect(fleet.api.calls(for: "phone:" + number) == 1, "the API saw \(fleet.api.calls) calls")
        }
    }

    /// `contact.invalidate` on B: gone from Redis and from A's and C's own caches.
    @Test func anInvalidationOnOneHostReachesEveryHost() async throws {
        try await withFleet { fleet in
            for host in fleet.hosts { _ = try await get(host, "+14155551234") }
            for host in fleet.hosts {
                #expect(try await get(host, "+14155551234")["result"]?["cache"]?["tier"]?.stringValue == "local")
            }
            let started = ContinuousClock.now
            _ = try await call(
                fleet.hosts[1],
                #"{"jsonrpc":"2.0","id":1,"method":"contact.invalidate","params":{"phone_number":"+14155551234"}}"#
            )
            for host in [fleet.hosts[0], fleet.hosts[2]] {
                try await eventually("the other hosts drop it") {
                    try await call(host, #"{"jsonrpc":"2.0","id":1,"method":"cache.stats"}"#)["result"]?["entries"]?
                        .intValue == 0
                }
            }
            let elapsed = ContinuousClock.now - started
            print("invalidation reached both other hosts in \(elapsed)")
            let calls = fleet.api.calls
            let after = try await get(fleet.hosts[2], "+14155551234")
            #expect(after["result"]?["cache"]?["tier"]?.stringValue == "api", "not served from Redis either")
            #expect(fleet.api.calls == calls + 1)
        }
    }

    /// Invalidating by id on a host that never had the contact removes it under its number too;
    /// invalidating everything empties every host and this prefix's entries in Redis.
    @Test func invalidationsReachEveryKeyAndEverything() async throws {
        try await withFleet { fleet in
            let (a, b, c) = (fleet.hosts[0], fleet.hosts[1], fleet.hosts[2])
            _ = try await get(a, "+14155551234")
            let byID =
                #"{"jsonrpc":"2.0","id":1,"method":"contact.invalidate","params":{"contact_id":"c1d2e3f4-5678-9abc-def0-123456789abc"}}"#
            let invalidated = try await call(b, byID)
            #expect(invalidated["result"]?["shared"] == .bool(true), "\(invalidated.jsonString)")
            let redis = try await RedisConnection.connect(
                to: try RedisAddress(parsing: fleet.redis.url),
                password: nil,
                timeout: .seconds(2)
            )
            func entries() async throws -> [String] {
                guard case .array(let names) = try await redis.send(["KEYS", "contactd:*"], timeout: .seconds(1)) else {
                    return []
                }
                // Entries and key sets; not the claims, the invalidation marks or the epoch.
                return names.compactMap(\.string).filter {
                    $0.hasPrefix("contactd:p:") || $0.hasPrefix("contactd:i:") || $0.hasPrefix("contactd:keys:")
                }
            }
            // The reply comes once Redis has done it: nothing to wait for.
            let leftAfterID = try await entries()
            #expect(leftAfterID.isEmpty, "left in Redis: \(leftAfterID)")
            let onC = try await get(c, "+14155551234")
            #expect(onC["result"]?["cache"]?["tier"]?.stringValue == "api", "\(onC.jsonString)")

            for number in ["+14155551234", "+442079460958", "+15550000000"] { _ = try await get(a, number) }
            #expect(try await entries().count >= 3)
            let all = try await call(
                c,
                #"{"jsonrpc":"2.0","id":1,"method":"contact.invalidate","params":{"all":true}}"#
            )
            #expect(all["result"]?["shared"] == .bool(true), "\(all.jsonString)")
            let leftAfterAll = try await entries()
            #expect(leftAfterAll.isEmpty, "left in Redis: \(leftAfterAll)")
            let stats = try await call(a, #"{"jsonrpc":"2.0","id":1,"method":"cache.stats"}"#)
            #expect(stats["result"]?["entries"]?.intValue == 0)
            await redis.close()
        }
    }

    /// Issue #23, item 2, fleet-wide: host A's fetch is in flight when host B invalidates the
    /// contact (by id, a key A did not claim) and the contact changes at the API. What A fetched
    /// reaches A's waiting caller but is stored nowhere: not in Redis, not on A, not on C.
    @Test func aFetchInFlightDoesNotUndoAnotherHostsInvalidation() async throws {
        try await withFleet { fleet in
            let (a, b, c) = (fleet.hosts[0], fleet.hosts[1], fleet.hosts[2])
            let number = "+14155557001"
            func version(_ n: Int) -> String {
                #"{"id":"race-1","phone_number":"\#(number)","name":"Version \#(n)"}"#
            }
            fleet.api.addContact(version(1))
            fleet.api.hold()
            let onA = Task { try await get(a, number) }
            try await fleet.api.waitForCalls(1)
            let invalidated = try await call(
                b,
                #"{"jsonrpc":"2.0","id":1,"method":"contact.invalidate","params":{"contact_id":"race-1"}}"#
            )
            #expect(invalidated["result"]?["shared"] == .bool(true), "\(invalidated.jsonString)")
            fleet.api.addContact(version(2))
            fleet.api.release()
            let first = try await onA.value
            #expect(first["result"]?["contact"]?["name"]?.stringValue == "Version 1", "A's waiting caller hears it")
            // Nothing A brought back may be answered from now on, by any host.
            for host in [c, b, a, c] {
                let reply = try await get(host, number)
                #expect(
                    reply["result"]?["contact"]?["name"]?.stringValue == "Version 2",
                    "a version fetched before the invalidation was answered: \(reply.jsonString)"
                )
            }
        }
    }

    /// Issue #23, item 2: an invalidation made while Redis is unreachable is not reported as
    /// fleet-wide (`"shared": false` and a warning), and a host that comes back to a Redis whose
    /// invalidation count moved while it was away (here: restarted empty) empties its cache
    /// instead of serving what it held.
    @Test func invalidationsRedisMissedAreSaidAndAHostThatMissedSomeEmptiesItsCache() async throws {
        try await withFleet(count: 2) { fleet in
            let (a, b) = (fleet.hosts[0], fleet.hosts[1])
            _ = try await get(a, "+14155551234")
            // One invalidation through Redis: both hosts know the fleet's count is 1.
            let first = try await call(
                b,
                #"{"jsonrpc":"2.0","id":1,"method":"contact.invalidate","params":{"phone_number":"+15550000000"}}"#
            )
            #expect(first["result"]?["shared"] == .bool(true))
            #expect(try await get(a, "+14155551234")["result"]?["cache"]?["tier"]?.stringValue == "local")
            await fleet.redis.kill()
            try await waitForSharedCache(b, state: "down")
            let cutOff = try await call(
                b,
                #"{"jsonrpc":"2.0","id":1,"method":"contact.invalidate","params":{"phone_number":"+14155551234"}}"#
            )
            #expect(cutOff["result"]?["shared"] == .bool(false), "\(cutOff.jsonString)")
            #expect(b.log.contains("was made on this host only"), "\(b.log)")
            try await fleet.redis.start()
            try await waitForSharedCache(a, state: "up")
            // Redis came back empty: its count (0) is not the 1 host A knew, so A emptied its cache.
            try await eventually("host A empties its cache", within: .seconds(20)) {
                a.log.contains("emptied this host's cache")
            }
            let again = try await get(a, "+14155551234")
            #expect(again["result"]?["cache"]?["tier"]?.stringValue != "local", "\(again.jsonString)")
        }
    }

    /// Redis killed under steady lookups, then started again: no lookup fails, none waits much
    /// longer than the API takes, and the hosts reconnect.
    @Test func redisDyingUnderLoadFailsNoLookup() async throws {
        try await withFleet { fleet in
            let host = fleet.hosts[1]
            let client = try await RawSocketClient.connect(host.socketPath)
            var failures: [String] = []
            var slowest: Duration = .zero
            let numbers = (0..<30).map { String(format: "+1415555%04d", 1000 + $0) }
            for number in numbers {
                fleet.api.addContact(#"{"id":"id-\#(number.dropFirst())","phone_number":"\#(number)","name":"N"}"#)
            }
            for round in 0..<90 {
                if round == 30 { await fleet.redis.kill() }
                if round == 60 { try await fleet.redis.start() }
                let number = numbers[round % numbers.count]
                let started = ContinuousClock.now
                try await client.send(
                    #"{"jsonrpc":"2.0","id":\#(round),"method":"contact.get","params":{"phone_number":"\#(number)","max_age":0}}"#
                        + "\n"
                )
                let reply = try await client.readLine() ?? "closed"
                slowest = max(slowest, ContinuousClock.now - started)
                if !reply.contains(#""result""#) { failures.append(reply) }
                try await Task.sleep(for: .milliseconds(10))
            }
            await client.close()
            #expect(failures.isEmpty, "\(failures)")
            print("slowest lookup through the Redis outage: \(slowest)")
            #expect(slowest < .seconds(1))
            try await waitForSharedCache(host, state: "up")
            let log = host.log
            #expect(log.components(separatedBy: "shared cache unavailable").count - 1 == 1, "\(log)")
            #expect(log.components(separatedBy: "shared cache up").count - 1 == 2, "\(log)")
        }
    }

    /// With a key, Redis holds neither numbers nor contacts in clear, and only hosts with the key
    /// can use what is there.
    @Test func withAKeyRedisHoldsNothingReadable() async throws {
        let key = String(repeating: "3f", count: 32)
        let other = String(repeating: "a1", count: 32)
        try await withFleet(hostKeys: [key, key, other]) { fleet in
            _ = try await get(fleet.hosts[0], "+14155551234")
            try await fleet.api.waitForCalls(1)
            let onB = try await get(fleet.hosts[1], "+14155551234")
            #expect(onB["result"]?["cache"]?["tier"]?.stringValue == "shared", "\(onB.jsonString)")
            let onC = try await get(fleet.hosts[2], "+14155551234")
            #expect(onC["result"]?["cache"]?["tier"]?.stringValue == "api", "another key reads nothing")
            let redis = try await RedisConnection.connect(
                to: try RedisAddress(parsing: fleet.redis.url),
                password: nil,
                timeout: .seconds(2)
            )
            let keys = try await redis.send(["KEYS", "*"], timeout: .seconds(1))
            var stored = ""
            if case .array(let names) = keys {
                for name in names.compactMap(\.string) {
                    stored += name + "\n"
                    if case .simpleString("set") = try await redis.send(["TYPE", .text(name)], timeout: .seconds(1)) {
                        if case .array(let members) = try await redis.send(
                            ["SMEMBERS", .text(name)],
                            timeout: .seconds(1)
                        ) {
                            stored += members.compactMap(\.string).joined(separator: "\n")
                        }
                        continue
                    }
                    if case .bulkString(let value) = try await redis.send(["GET", .text(name)], timeout: .seconds(1)) {
                        stored += String(decoding: value.readableBytesView, as: UTF8.self) + "\n"
                    }
                }
            }
            await redis.close()
            #expect(stored.contains("contactd:h:"), "\(stored)")
            for secret in ["14155551234", "John", "Smith", "c1d2e3f4"] {
                #expect(!stored.contains(secret), "\(secret) is readable in Redis")
            }
        }
    }

    /// Redis stops answering (SIGSTOP) while connected: each lookup waits at most the shared
    /// cache's timeout (20 ms) before going on without it; afterwards it comes back.
    @Test func aStalledRedisCostsALookupAtMostTheTimeout() async throws {
        try await withFleet(count: 1) { fleet in
            let host = fleet.hosts[0]
            fleet.redis.pause()
            var slowest: Duration = .zero
            for round in 0..<20 {
                let started = ContinuousClock.now
                let reply = try await get(host, "+1415555\(2000 + round)")
                slowest = max(slowest, ContinuousClock.now - started)
                #expect(reply["result"] != nil || reply["error"]?["data"]?["reason"]?.stringValue == "not_found")
            }
            print("slowest lookup with Redis stalled: \(slowest)")
            #expect(slowest < .milliseconds(500))
            #expect(try await sharedState(host) == "down")
            fleet.redis.resume()
            try await waitForSharedCache(host, state: "up")
        }
    }

    /// Redis full (`maxmemory`, `noeviction`): its writes are refused; lookups go on through the
    /// API, reads from Redis go on, and the shared cache is not taken for down.
    @Test func aFullRedisRefusesWritesAndLookupsGoOn() async throws {
        try await withFleet(count: 2, redisArguments: ["--maxmemory", "1", "--maxmemory-policy", "noeviction"]) {
            fleet in
            let (a, b) = (fleet.hosts[0], fleet.hosts[1])
            for round in 0..<5 {
                let reply = try await get(a, "+1415555\(3000 + round)")
                #expect(reply["result"] != nil || reply["error"]?["data"]?["reason"]?.stringValue == "not_found")
            }
            let onB = try await get(b, "+14155551234")
            #expect(onB["result"]?["cache"]?["tier"]?.stringValue == "api", "nothing could be stored")
            let stats = try await call(a, #"{"jsonrpc":"2.0","id":1,"method":"cache.stats"}"#)["result"]?["shared"]
            #expect((stats?["errors"]?.intValue ?? 0) > 0, "\(stats?.jsonString ?? "")")
            #expect(try await sharedState(a) == "up")
            #expect(!a.log.contains("shared cache unavailable"), "\(a.log)")
        }
    }

    /// A "Redis" that answers garbage: one log line, and the host serves without it.
    @Test func aServerAnsweringGarbageIsLeftAlone() async throws {
        try await withTemporaryDirectory { directory in
            let garbage = try GarbageServer()
            defer { garbage.stop() }
            try await withFakeAPI { api in
                let host = try SpawnedDaemon(
                    directory: directory,
                    arguments: ["--api-url", api.baseURL, "--shared-cache", "redis://127.0.0.1:\(garbage.port)"],
                    environment: ["CONTACTD_API_TOKEN": "test-token"]
                )
                defer { Task { await host.stop() } }
                _ = try await host.notify.waitFor("READY=1") { $0.contains("READY=1") }
                try await waitForSharedCache(host, state: "down")
                let reply = try await get(host, "+14155551234")
                #expect(reply["result"]?["cache"]?["tier"]?.stringValue == "api")
                let lines = host.log.split(separator: "\n").filter { $0.contains("shared cache unavailable") }
                #expect(lines.count == 1, "\(host.log)")
                #expect(lines.first?.contains("Redis sent a reply that is not RESP") == true, "\(host.log)")
            }
        }
    }

    /// A wrong password: one clear log line, and the host serves without the shared cache. At
    /// debug level, where each attempt is logged, so that the test can wait for the retries and
    /// check that not even the most verbose log names the password.
    @Test func aWrongPasswordIsOneClearLineAndTheHostServesWithoutIt() async throws {
        let debug: @Sendable (FakeContactAPI) -> [String] = { _ in ["--log-level", "debug"] }
        try await withFleet(count: 1, redisPassword: "right", hostPassword: "wrong", hostArguments: debug) { fleet in
            let host = fleet.hosts[0]
            try await waitForSharedCache(host, state: "down")
            let reply = try await get(host, "+14155551234")
            #expect(reply["result"]?["contact"]?["name"]?.stringValue == "John Smith")
            #expect(reply["result"]?["cache"]?["tier"]?.stringValue == "api")
            // The service keeps trying (0.25 s, 0.5 s, 1 s …): two more attempts, still one line.
            try await eventually("two more attempts") {
                host.log.components(separatedBy: "shared cache: connecting failed").count - 1 >= 3
            }
            let lines = host.log.split(separator: "\n").filter { $0.contains("shared cache unavailable") }
            #expect(lines.count == 1, "\(host.log)")
            #expect(lines.first?.contains("Redis refused the user name or password") == true)
            #expect(!host.log.contains("wrong"), "the password is never logged")
        }
    }
}

/// A TCP server on loopback that answers whatever a connection sends with an HTTP error, then
/// closes it.
final class GarbageServer: Sendable {
    private let listener: LoopbackListener
    var port: Int { listener.port }

    init() throws {
        let listener = try LoopbackListener()
        self.listener = listener
        let thread = Thread {
            while true {
                let client = accept(listener.fd, nil, nil)
                if client < 0 { return }
                // Read the client's first command, so the answer is what it meets, not a reset.
                var request = [UInt8](repeating: 0, count: 4096)
                _ = request.withUnsafeMutableBytes { Glibc.read(client, $0.baseAddress, $0.count) }
                let answer = Array("HTTP/1.1 400 Bad Request\r\n\r\n".utf8)
                _ = answer.withUnsafeBytes { Glibc.write(client, $0.baseAddress, $0.count) }
                close(client)
            }
        }
        thread.start()
    }

    func stop() { listener.close() }
}
