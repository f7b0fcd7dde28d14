import ContactdClient
import ContactdJSON
import ContactdTestSupport
import FakeContactAPI
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import RedisClient
import Testing

/// The shared tier through a Redis failover (issue #27): a real primary, a real replica and three
/// real sentinels on loopback, three contactd following them with `sentinel://`, under steady
/// lookups.
@Suite(
    .timeLimit(.minutes(3)),
    .serialized,
    .enabled(if: RedisServer.isAvailable, "needs \(RedisServer.executable) (apt-get install redis-server)")
)
struct SentinelFailoverTests {
    struct Fleet {
        let group: SentinelGroup
        let hosts: [SpawnedDaemon]
        let api: FakeContactAPI
        let url: String
        let directory: String
    }

    /// The sentinel group, the API and three hosts following it; all stopped afterwards. With
    /// `doubtfulSentinels`, the hosts' list starts with a sentinel that names the replica (a liar)
    /// and one that is not there, and the first real sentinel is killed before they start. With
    /// `sentinelPassword`, the sentinels want it and the hosts have it as a credential. With
    /// `tls`, every server and sentinel speaks TLS only, with a CA made for the test.
    func withFleet(
        doubtfulSentinels: Bool = false,
        sentinelPassword: String? = nil,
        tls: Bool = false,
        _ body: (Fleet) async throws -> Void
    ) async throws {
        try await withTemporaryDirectory { directory in
            let certificates = tls ? try await TestCertificates.make(in: directory) : nil
            let group = try SentinelGroup(
                directory: directory + "/redis",
                sentinelPassword: sentinelPassword,
                tls: certificates
            )
            try await withFakeAPI { api in
                var hosts: [SpawnedDaemon] = []
                let liar = try ScriptedSentinel(naming: group.replica.port)
                defer { liar.stop() }
                do {
                    try await group.start()
                    var url = group.url()
                    if doubtfulSentinels {
                        await group.sentinels[0].kill()
                        url = group.url(before: [liar.port, try freeLoopbackPort()])
                    }
                    var credentials: [String: String] = [:]
                    if let sentinelPassword { credentials["shared-cache-sentinel-password"] = sentinelPassword }
                    try await startHosts(
                        &hosts,
                        url: url,
                        api: api,
                        directory: directory,
                        credentials: credentials,
                        arguments: certificates.map { ["--shared-cache-ca-file", $0.authority] } ?? []
                    )
                    for host in hosts { try await waitForPrimary(host, port: group.primary.port) }
                    try await body(Fleet(group: group, hosts: hosts, api: api, url: url, directory: directory))
                } catch {
                    for host in hosts { await host.stop() }
                    await group.stop()
                    throw error
                }
                for host in hosts { await host.stop() }
                await group.stop()
            }
        }
    }

    /// Three hosts following `url`, each ready (appended to `hosts` as they start, for the caller
    /// to stop), with `credentials` (name: value) in a credentials directory as systemd gives them.
    func startHosts(
        _ hosts: inout [SpawnedDaemon],
        url: String,
        api: FakeContactAPI,
        directory: String,
        credentials: [String: String] = [:],
        arguments: [String] = []
    ) async throws {
        for index in 0..<3 {
            let hostDirectory = directory + "/h\(index)"
            try FileManager.default.createDirectory(
                atPath: hostDirectory + "/credentials",
                withIntermediateDirectories: true
            )
            for (name, value) in credentials {
                try value.write(toFile: hostDirectory + "/credentials/" + name, atomically: true, encoding: .utf8)
            }
            let host = try SpawnedDaemon(
                directory: hostDirectory,
                arguments: ["--api-url", api.baseURL, "--log-level", "trace", "--shared-cache", url] + arguments,
                environment: [
                    "CONTACTD_API_TOKEN": "test-token", "CREDENTIALS_DIRECTORY": hostDirectory + "/credentials",
                ]
            )
            hosts.append(host)
            _ = try await host.notify.waitFor("READY=1") { $0.contains("READY=1") }
        }
    }

    func call(_ host: SpawnedDaemon, _ method: String, _ params: String = "{}") async throws -> JSONValue {
        let client = try await RawSocketClient.connect(host.socketPath)
        defer { Task { await client.close() } }
        try await client.send(#"{"jsonrpc":"2.0","id":1,"method":"\#(method)","params":\#(params)}"# + "\n")
        let reply = try #require(try await client.readLine())
        return try JSONParser.parse(Array(reply.utf8))
    }

    func sharedStatus(_ host: SpawnedDaemon) async throws -> JSONValue? {
        try await call(host, "daemon.status")["result"]?["shared_cache"]
    }

    /// Waits until `host`'s shared tier is up on the server at `port`.
    func waitForPrimary(_ host: SpawnedDaemon, port: Int, within limit: Duration = .seconds(30)) async throws {
        do {
            try await eventually("the shared cache up on 127.0.0.1:\(port)", within: limit) {
                let status = try await sharedStatus(host)
                return status?["state"]?.stringValue == "up" && status?["primary"]?.stringValue == "127.0.0.1:\(port)"
            }
        } catch {
            Issue.record(
                "\(error); last status: \(String(describing: try? await sharedStatus(host))); log:\n\(host.log)"
            )
            throw error
        }
    }

    /// Lookups on every host, one after another with no pause, until `stop()`: each with max_age 0, so each
    /// goes to the shared tier (and the API); counts them, the failed ones and the slowest.
    final class SteadyLoad: Sendable {
        private let state = NIOLockedValueBox((done: 0, failures: [String](), slowest: Duration.zero, stopped: false))
        private let tasks = NIOLockedValueBox([Task<Void, Never>]())

        init(hosts: [SpawnedDaemon], numbers: [String]) {
            for (index, host) in hosts.enumerated() {
                let state = self.state
                let task = Task {
                    guard let client = try? await RawSocketClient.connect(host.socketPath) else {
                        state.withLockedValue { $0.failures.append("host \(index): cannot connect") }
                        return
                    }
                    var round = 0
                    while !state.withLockedValue({ $0.stopped }) {
                        let number = numbers[(round * 7 + index) % numbers.count]
                        round += 1
                        let started = ContinuousClock.now
                        let reply: String
                        do {
                            try await client.send(
                                #"{"jsonrpc":"2.0","id":\#(round),"method":"contact.get","params":{"phone_number":"\#(number)","max_age":0}}"#
                                    + "\n"
                            )
                            reply = try await client.readLine() ?? "closed"
                        } catch {
                            reply = "\(error)"
                        }
                        let elapsed = ContinuousClock.now - started
                        state.withLockedValue {
                            $0.done += 1
                            $0.slowest = max($0.slowest, elapsed)
                            if !reply.contains(#""result""#) { $0.failures.append("host \(index): \(reply)") }
                        }
                    }
                    await client.close()
                }
                tasks.withLockedValue { $0.append(task) }
            }
        }

        var done: Int { state.withLockedValue { $0.done } }

        func stop() async -> (done: Int, failures: [String], slowest: Duration) {
            state.withLockedValue { $0.stopped = true }
            for task in tasks.withLockedValue({ $0 }) { await task.value }
            return state.withLockedValue { ($0.done, $0.failures, $0.slowest) }
        }
    }

    static let numbers = (0..<30).map { String(format: "+1415556%04d", 1000 + $0) }

    func addContacts(_ api: FakeContactAPI) {
        for number in Self.numbers {
            api.addContact(#"{"id":"id-\#(number.dropFirst())","phone_number":"\#(number)","name":"N"}"#)
        }
    }

    /// The primary killed (SIGKILL) or frozen (SIGSTOP) under steady lookups on three hosts: no
    /// lookup fails; every host is up on the promoted replica within the sentinels' failover time
    /// plus one second; a contact fetched afterwards on one host is a shared hit on the others.
    @Test(arguments: ["SIGKILL", "SIGSTOP"])
    func thePrimaryLostUnderLoadFailsNoLookupAndTheFleetFollowsTheNewOne(how: String) async throws {
        try await withFleet { fleet in
            addContacts(fleet.api)
            let (listener, heard) = try await fleet.group.listenForSwitch()
            let load = SteadyLoad(hosts: fleet.hosts, numbers: Self.numbers)
            try await eventually("lookups under way") { load.done >= 60 }
            let lost = ContinuousClock.now
            if how == "SIGKILL" { await fleet.group.primary.kill() } else { fleet.group.primary.pause() }
            let switched = try await heard.get()
            var up: [Duration] = []
            for host in fleet.hosts {
                try await waitForPrimary(host, port: fleet.group.replica.port)
                up.append(ContinuousClock.now - lost)
            }
            let failover = switched - lost
            let doneAtFailover = load.done
            try await eventually("lookups after the failover") { load.done >= doneAtFailover + 60 }
            let (done, failures, slowest) = await load.stop()
            await listener.close()
            print(
                "\(how): the sentinels switched after \(failover); the hosts were up on the new primary after \(up.map(\.description).joined(separator: ", ")); \(done) lookups, \(failures.count) failed, slowest \(slowest)"
            )
            #expect(failures.isEmpty, "\(failures.prefix(5))")
            #expect(up.max()! <= failover + .seconds(1), "up within the failover time plus one second")
            // A lookup waits at most --shared-cache-timeout (20 ms) per call on Redis, and the API
            // answers at once: nothing near two seconds unless a lookup waited on a dead Redis.
            #expect(slowest < .seconds(2))

            let number = "+14155569999"
            fleet.api.addContact(#"{"id":"after","phone_number":"\#(number)","name":"After"}"#)
            let first = try await call(fleet.hosts[0], "contact.get", #"{"phone_number":"\#(number)"}"#)
            #expect(first["result"]?["cache"]?["tier"]?.stringValue == "api")
            for host in fleet.hosts.dropFirst() {
                let reply = try await call(host, "contact.get", #"{"phone_number":"\#(number)"}"#)
                #expect(reply["result"]?["cache"]?["tier"]?.stringValue == "shared", "\(reply)")
            }
            for host in fleet.hosts {
                let status = try #require(try await sharedStatus(host))
                #expect(status["failovers"]?.intValue == 1, "\(status)")
                #expect(status["moved_at"]?.stringValue != nil)
                #expect(host.log.contains("shared cache up on a new primary (127.0.0.1:\(fleet.group.replica.port))"))
            }
            let stats = try await call(fleet.hosts[0], "cache.stats")
            #expect(stats["result"]?["shared"]?["state"]?.stringValue == "up")
            let metrics = try await call(fleet.hosts[0], "daemon.metrics")["result"]?["text"]?.stringValue ?? ""
            #expect(metrics.contains("\ncontactd_shared_cache_failovers_total 1\n"), "\(metrics)")
        }
    }

    /// A sentinel that names a replica (a liar) and one that is not there are listed before the
    /// real ones, and a real one is killed: every host still finds the primary, checked with
    /// ROLE, and follows a failover.
    @Test func aSentinelThatLiesOrIsDownIsPassedOver() async throws {
        try await withFleet(doubtfulSentinels: true) { fleet in
            for host in fleet.hosts {
                let status = try #require(try await sharedStatus(host))
                #expect(status["primary"]?.stringValue == "127.0.0.1:\(fleet.group.primary.port)", "\(status)")
            }
            let (listener, heard) = try await fleet.group.listenForSwitch()
            await fleet.group.primary.kill()
            _ = try await heard.get()
            await listener.close()
            for host in fleet.hosts { try await waitForPrimary(host, port: fleet.group.replica.port) }
            let reply = try await call(fleet.hosts[1], "contact.get", #"{"phone_number":"+14155551234"}"#)
            #expect(reply["result"] != nil, "\(reply)")
            // The typed client reads the same.
            let connection = try await ContactdConnection.connect(socketPath: fleet.hosts[0].socketPath)
            let shared = try await connection.status().sharedCache
            await connection.close()
            #expect(shared?.state == .up && shared?.primary == "127.0.0.1:\(fleet.group.replica.port)")
            #expect(
                shared?.failovers == 1 && shared?.movedAt != nil && shared?.address.hasPrefix("sentinel://") == true
            )
        }
    }

    /// `sentinels://`: TLS to the sentinels and to the servers they name, trusting the test's CA
    /// (`--shared-cache-ca-file`), through a failover.
    @Test(.enabled(if: TestTools.hasOpenSSL, "needs /usr/bin/openssl to make the test's CA"))
    func sentinelsOverTLSAreFollowedThroughAFailover() async throws {
        try await withFleet(tls: true) { fleet in
            #expect(fleet.url.hasPrefix("sentinels://"))
            let (listener, heard) = try await fleet.group.listenForSwitch()
            await fleet.group.primary.kill()
            _ = try await heard.get()
            await listener.close()
            for host in fleet.hosts { try await waitForPrimary(host, port: fleet.group.replica.port) }
            let reply = try await call(fleet.hosts[2], "contact.get", #"{"phone_number":"+14155551234"}"#)
            #expect(reply["result"] != nil, "\(reply)")
        }
    }

    /// The sentinels' own password comes from the `shared-cache-sentinel-password` credential:
    /// hosts given it find the primary (the fleet came up) and never log it; a host without it
    /// says why in plain words and serves without the shared tier.
    @Test func theSentinelsPasswordComesFromItsCredential() async throws {
        let password = "sentinel-secret-\(UInt32.random(in: 1...UInt32.max))"
        try await withFleet(sentinelPassword: password) { fleet in
            let reply = try await call(fleet.hosts[0], "contact.get", #"{"phone_number":"+14155551234"}"#)
            #expect(reply["result"] != nil, "\(reply)")
            for host in fleet.hosts { #expect(!host.log.contains(password)) }
            try await withTemporaryDirectory { directory in
                try await withSpawnedDaemon(
                    directory: directory,
                    arguments: ["--api-url", fleet.api.baseURL, "--shared-cache", fleet.url],
                    environment: ["CONTACTD_API_TOKEN": "test-token"]
                ) { lone in
                    try await eventually("the host without the password says why") {
                        lone.log.contains("shared cache unavailable")
                    }
                    #expect(lone.log.contains(": Redis wants a password and none was given"), "\(lone.log)")
                    #expect(lone.log.contains("sentinel 127.0.0.1:"), "the sentinel it asked is named")
                    let reply = try await call(lone, "contact.get", #"{"phone_number":"+14155551234"}"#)
                    #expect(reply["result"]?["contact"]?["name"]?.stringValue == "John Smith", "\(reply)")
                }
            }
        }
    }

    /// Two real servers, `old` and `new` (a replica of `old` when `newReplicates`), a sentinel
    /// played by the test naming `old`, and three hosts up on `old`; all stopped afterwards.
    func withScriptedFailover(
        newReplicates: Bool,
        _ body: (_ old: RedisServer, _ new: RedisServer, ScriptedSentinel, [SpawnedDaemon], FakeContactAPI)
            async throws -> Void
    ) async throws {
        try await withTemporaryDirectory { directory in
            for name in ["old", "new"] {
                try FileManager.default.createDirectory(
                    atPath: directory + "/" + name,
                    withIntermediateDirectories: true
                )
            }
            let old = try RedisServer(directory: directory + "/old")
            let new = try RedisServer(
                directory: directory + "/new",
                extraArguments: newReplicates ? ["--replicaof", "127.0.0.1", String(old.port)] : []
            )
            let sentinel = try ScriptedSentinel(naming: old.port)
            // Stopped however the test ends: a failed expectation must not leave servers behind.
            func stopServers() async {
                sentinel.stop()
                await new.kill()
                await old.kill()
            }
            do {
                try await old.start()
                try await new.start()
                try await withFakeAPI { api in
                    var hosts: [SpawnedDaemon] = []
                    do {
                        try await startHosts(
                            &hosts,
                            url: "sentinel://127.0.0.1:\(sentinel.port)/\(SentinelGroup.primaryName)",
                            api: api,
                            directory: directory
                        )
                        for host in hosts { try await waitForPrimary(host, port: old.port) }
                        try await body(old, new, sentinel, hosts, api)
                    } catch {
                        for host in hosts { await host.stop() }
                        throw error
                    }
                    for host in hosts { await host.stop() }
                }
            } catch {
                await stopServers()
                throw error
            }
            await stopServers()
        }
    }

    /// A primary made a replica under the hosts, with no announcement (a sentinel that missed it):
    /// the first write it refuses (`READONLY`) ends the connection, the sentinel still names it
    /// and ROLE says it is a replica, so nothing more is written to it; once the sentinel names
    /// the new primary the hosts are up on it. Lookups never fail meanwhile.
    @Test func aPrimaryDemotedUnderTheHostsGetsNoMoreWrites() async throws {
        try await withScriptedFailover(newReplicates: false) { old, new, sentinel, hosts, _ in
            _ = try await SentinelGroup.ask(old.port, ["REPLICAOF", "127.0.0.1", .text(String(new.port))])
            let reply = try await call(hosts[0], "contact.get", #"{"phone_number":"+14155551234"}"#)
            #expect(reply["result"]?["contact"] != nil, "\(reply)")
            try await eventually("host 0 leaves the demoted primary") {
                try await sharedStatus(hosts[0])?["state"]?.stringValue == "down"
            }
            let log = hosts[0].log
            #expect(log.contains("READONLY"), "\(log)")
            try await eventually("host 0 refuses the replica the sentinel still names") {
                hosts[0].log.contains("which is not a primary (slave)")
            }
            sentinel.name(new.port)
            try await waitForPrimary(hosts[0], port: new.port)
            let after = try await call(hosts[0], "contact.get", #"{"phone_number":"+442079460958"}"#)
            #expect(after["result"]?["cache"]?["tier"]?.stringValue == "api", "\(after)")
            try await eventually("the fill lands on the new primary") {
                try await SentinelGroup.ask(new.port, ["EXISTS", "contactd:p:+442079460958"]) == .integer(1)
            }
        }
    }

    /// A failover that loses invalidations (issue #27, item 2): the new primary is a server that
    /// stopped copying the old one before an invalidation was made there, so it still holds the
    /// entry that invalidation removed, and an older epoch. The sentinel is played by the test, so
    /// the loss is certain. Every host finds the epoch behind what it knew, empties its cache and
    /// the shared one: no host answers the invalidated contact from the new primary.
    @Test func invalidationsLostInAFailoverAreNotUndone() async throws {
        try await withScriptedFailover(newReplicates: true) { old, new, sentinel, hosts, api in
            let params = #"{"phone_number":"+14155551234"}"#
            api.addContact(#"{"id":"lost","phone_number":"+14155551234","name":"Before"}"#)
            _ = try await call(hosts[0], "contact.get", params)
            try await eventually("the entry copied to the replica") {
                try await SentinelGroup.ask(new.port, ["DBSIZE"]) != .integer(0)
            }
            // The replica stops copying: what follows on the old primary is what a failover loses.
            _ = try await SentinelGroup.ask(new.port, ["REPLICAOF", "NO", "ONE"])
            api.addContact(#"{"id":"lost","phone_number":"+14155551234","name":"After"}"#)
            let invalidated = try await call(hosts[1], "contact.invalidate", params)
            #expect(invalidated["result"]?["shared"] == .bool(true), "\(invalidated)")
            sentinel.announce(from: old.port, to: new.port)
            for host in hosts { try await waitForPrimary(host, port: new.port) }
            for host in hosts {
                let reply = try await call(host, "contact.get", params)
                #expect(reply["result"]?["contact"]?["name"]?.stringValue == "After", "\(reply)")
            }
            #expect(hosts.contains { $0.log.contains("the shared cache lost invalidations in a failover") })
        }
    }
}
