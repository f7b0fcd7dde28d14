import ChildProcess
import Foundation
import Glibc
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import RedisClient

/// Real Redis with Redis Sentinel for a test: a primary, a replica of it, and three sentinels
/// (`redis-server --sentinel`) that watch it as `cache` (quorum 2, down after 1 s), all on
/// loopback. `start` returns once the replica copies the primary and every sentinel knows the
/// replica and the two other sentinels, so a failover can happen.
package final class SentinelGroup: Sendable {
    package static let primaryName = "cache"
    package let primary: RedisServer
    package let replica: RedisServer
    package let sentinels: [SentinelProcess]
    /// The sentinels' own password (`requirepass`, and `sentinel-pass` among themselves).
    package let sentinelPassword: String?
    /// With certificates, every server and sentinel speaks TLS only.
    package let tls: TestCertificates?

    package init(directory: String, sentinelPassword: String? = nil, tls: TestCertificates? = nil) throws {
        self.sentinelPassword = sentinelPassword
        self.tls = tls
        for name in ["primary", "replica", "s0", "s1", "s2"] {
            try FileManager.default.createDirectory(atPath: directory + "/" + name, withIntermediateDirectories: true)
        }
        primary = try RedisServer(directory: directory + "/primary", tls: tls)
        replica = try RedisServer(
            directory: directory + "/replica",
            extraArguments: ["--replicaof", "127.0.0.1", String(primary.port)],
            tls: tls
        )
        sentinels = try (0..<3).map {
            try SentinelProcess(directory: directory + "/s\($0)", password: sentinelPassword, tls: tls)
        }
    }

    /// `sentinel://` for the sentinels, `before` (e.g. a dead or lying one) listed first.
    package func url(before: [Int] = []) -> String {
        let all = before + sentinels.map(\.port)
        return (tls == nil ? "sentinel://" : "sentinels://") + all.map { "127.0.0.1:\($0)" }.joined(separator: ",")
            + "/" + Self.primaryName
    }

    package func start() async throws {
        try await primary.start()
        try await replica.start()
        try await eventually("the replica copies the primary", within: .seconds(20)) {
            let role = try await Self.ask(replica.port, ["ROLE"], tls: tls).array ?? []
            return role.count > 3 && role[3].string == "connected"
        }
        for sentinel in sentinels { try await sentinel.start(watching: primary.port, name: Self.primaryName) }
        for sentinel in sentinels {
            try await eventually(
                "sentinel \(sentinel.port) knows the replica and the other sentinels",
                within: .seconds(30)
            ) {
                let replicas = try await sentinel.ask(["SENTINEL", "REPLICAS", .text(Self.primaryName)])
                let others = try await sentinel.ask(["SENTINEL", "SENTINELS", .text(Self.primaryName)])
                return replicas.array?.count == 1 && others.array?.count == 2
            }
        }
    }

    /// Listens on a sentinel for `+switch-master`; `heard` completes with when it came.
    package func listenForSwitch() async throws -> (
        connection: RedisConnection, heard: EventLoopFuture<ContinuousClock.Instant>
    ) {
        let promise = MultiThreadedEventLoopGroup.singleton.next().makePromise(of: ContinuousClock.Instant.self)
        let connection = try await RedisConnection.connect(
            to: RedisAddress(endpoint: .tcp(host: "127.0.0.1", port: sentinels[1].port), tls: tls != nil),
            password: sentinelPassword,
            timeout: .seconds(5),
            certificateAuthorities: tls?.authority
        ) { push in
            if RedisSentinel.switchedPrimary(push, primaryName: Self.primaryName) != nil {
                promise.succeed(.now)
            }
        }
        _ = try await connection.send(["SUBSCRIBE", "+switch-master"], timeout: .seconds(5))
        return (connection, promise.futureResult)
    }

    package func stop() async {
        for sentinel in sentinels { await sentinel.kill() }
        replica.resume()
        primary.resume()
        await replica.kill()
        await primary.kill()
    }

    /// One command to the server or sentinel at `port` on loopback, on a connection of its own.
    package static func ask(
        _ port: Int,
        _ command: [RedisArgument],
        password: String? = nil,
        tls: TestCertificates? = nil
    ) async throws -> RESPValue {
        let connection = try await RedisConnection.connect(
            to: RedisAddress(endpoint: .tcp(host: "127.0.0.1", port: port), tls: tls != nil),
            password: password,
            timeout: .seconds(2),
            certificateAuthorities: tls?.authority
        )
        defer { Task { await connection.close() } }
        return try await connection.send(command, timeout: .seconds(2))
    }
}

/// One `redis-server --sentinel`, with a config file of its own (a sentinel rewrites it).
package final class SentinelProcess: Sendable {
    package let port: Int
    private let directory: String
    private let password: String?
    private let tls: TestCertificates?
    private let process = LockedProcess()

    init(directory: String, password: String?, tls: TestCertificates?) throws {
        self.directory = directory
        self.password = password
        self.tls = tls
        self.port = try freeLoopbackPort()
    }

    /// One command to this sentinel, with its password.
    package func ask(_ command: [RedisArgument]) async throws -> RESPValue {
        try await SentinelGroup.ask(port, command, password: password, tls: tls)
    }

    func start(watching primaryPort: Int, name: String) async throws {
        let listen =
            tls.map { "port 0\ntls-port \(port)\ntls-replication yes\n" + $0.sentinelConfig } ?? "port \(port)\n"
        let config =
            listen + """
                bind 127.0.0.1
                dir \(directory)
                loglevel notice
                sentinel monitor \(name) 127.0.0.1 \(primaryPort) 2
                sentinel down-after-milliseconds \(name) 1000
                sentinel failover-timeout \(name) 2000
                sentinel parallel-syncs \(name) 1

                """ + (password.map { "requirepass \($0)\nsentinel sentinel-pass \($0)\n" } ?? "")
        try config.write(toFile: directory + "/sentinel.conf", atomically: true, encoding: .utf8)
        let child = try ChildProcess(
            RedisServer.executable,
            [directory + "/sentinel.conf", "--sentinel"],
            environment: [:],
            stdout: .file(directory + "/sentinel.log"),
            stderr: .file(directory + "/sentinel.log")
        )
        process.set(child)
        try await eventually("sentinel \(port) answers", within: .seconds(10)) {
            (try? await ask(["PING"])) != nil
        }
    }

    /// Kills the sentinel at once (SIGKILL) and waits for it to be gone.
    package func kill() async {
        guard let child = process.take() else { return }
        child.signal(SIGKILL)
        _ = await child.status()
    }

    package var log: String { (try? String(contentsOfFile: directory + "/sentinel.log", encoding: .utf8)) ?? "" }
}

/// A sentinel played by the test: it names whichever server the test says as the primary of
/// every name (a liar when that is a replica), and announces a move (`+switch-master`) when told.
/// Speaks just enough RESP for a client that asks one command at a time.
package final class ScriptedSentinel: Sendable {
    private let listener: LoopbackListener
    /// The port it names, and the connections subscribed to its announcements.
    private let state: NIOLockedValueBox<(named: Int, subscribers: Set<Int32>)>
    package var port: Int { listener.port }

    package init(naming namedPort: Int) throws {
        let listener = try LoopbackListener()
        let state = NIOLockedValueBox((named: namedPort, subscribers: Set<Int32>()))
        self.listener = listener
        self.state = state
        Thread {
            while true {
                let client = accept(listener.fd, nil, nil)
                if client < 0 { return }
                Thread { Self.serve(client, state) }.start()
            }
        }.start()
    }

    /// Names `port` from now on, without announcing it (a sentinel that has not caught up, or
    /// whose announcement was lost).
    package func name(_ port: Int) {
        state.withLockedValue { $0.named = port }
    }

    /// Names `port` from now on and announces the move from `old` to every subscriber.
    package func announce(from old: Int, to port: Int) {
        let subscribers = state.withLockedValue { state in
            state.named = port
            return state.subscribers
        }
        let text = "\(SentinelGroup.primaryName) 127.0.0.1 \(old) 127.0.0.1 \(port)"
        let push = ">3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n$\(text.utf8.count)\r\n\(text)\r\n"
        for client in subscribers { Self.write(push, to: client) }
    }

    private static func serve(_ client: Int32, _ state: NIOLockedValueBox<(named: Int, subscribers: Set<Int32>)>) {
        defer {
            state.withLockedValue { _ = $0.subscribers.remove(client) }
            close(client)
        }
        var request = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = request.withUnsafeMutableBytes { Glibc.read(client, $0.baseAddress, $0.count) }
            if count <= 0 { return }
            let text = String(decoding: request[0..<count], as: UTF8.self).uppercased()
            let port = String(state.withLockedValue { $0.named })
            let answer: String
            if text.contains("GET-MASTER-ADDR-BY-NAME") {
                answer = "*2\r\n$9\r\n127.0.0.1\r\n$\(port.utf8.count)\r\n\(port)\r\n"
            } else if text.contains("SUBSCRIBE") {
                state.withLockedValue { _ = $0.subscribers.insert(client) }
                answer = ">3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n:1\r\n"
            } else if text.contains("HELLO") || text.contains("AUTH") || text.contains("PING") {
                answer = "+OK\r\n"
            } else {
                answer = "-ERR not a command this sentinel knows\r\n"
            }
            write(answer, to: client)
        }
    }

    private static func write(_ text: String, to client: Int32) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { Glibc.write(client, $0.baseAddress, $0.count) }
    }

    package func stop() { listener.close() }
}
