import ChildProcess
import ContactdTestSupport
import Foundation
import NIOCore
import RedisClient
import Testing

/// The RESP3 client against a real `redis-server`, on its loopback port and its Unix socket.
@Suite(
    .timeLimit(.minutes(1)),
    .enabled(if: RedisServer.isAvailable, "needs /usr/bin/redis-server (apt-get install redis-server)")
)
struct RedisConnectionTests {
    func withRedis(password: String? = nil, _ body: (RedisServer) async throws -> Void) async throws {
        try await withTemporaryDirectory { directory in
            let server = try RedisServer(directory: directory, password: password)
            try await server.start()
            do {
                try await body(server)
            } catch {
                await server.kill()
                throw error
            }
            await server.kill()
        }
    }

    @Test(arguments: [false, true])
    func commandsRoundTripOnTCPAndUnixSockets(unix: Bool) async throws {
        try await withRedis { server in
            let address = try RedisAddress(parsing: unix ? "unix:\(server.socketPath)?db=2" : server.url)
            let connection = try await RedisConnection.connect(to: address, password: nil, timeout: .seconds(2))
            #expect(
                try await connection.send(["SET", "k", "v", "PX", "60000"], timeout: .seconds(1)) == .simpleString("OK")
            )
            #expect(try await connection.send(["GET", "k"], timeout: .seconds(1)).string == "v")
            #expect(try await connection.send(["GET", "absent"], timeout: .seconds(1)) == .null)
            #expect(try await connection.send(["SET", "k", "w", "NX", "PX", "1000"], timeout: .seconds(1)) == .null)
            let binary = ByteBuffer(bytes: [0, 13, 10, 255, 36])
            _ = try await connection.send(["SET", "b", .bytes(binary)], timeout: .seconds(1))
            #expect(try await connection.send(["GET", "b"], timeout: .seconds(1)) == .bulkString(binary))
            // Pipelined: replies in order.
            let replies = try await connection.send(
                [["INCR", "n"], ["INCR", "n"], ["DEL", "n", "k"]],
                timeout: .seconds(1)
            )
            #expect(replies == [.integer(1), .integer(2), .integer(2)])
            // RESP3 shapes: a map (HELLO's answer) and a double.
            #expect(try await connection.send(["HELLO", "3"], timeout: .seconds(1)).isMap)
            #expect(try await connection.send(["INCRBYFLOAT", "f", "1.5"], timeout: .seconds(1)).string == "1.5")
            await connection.close()
        }
    }

    @Test func anErrorReplyIsThrownAndTheConnectionGoesOn() async throws {
        try await withRedis { server in
            let connection = try await RedisConnection.connect(
                to: try RedisAddress(parsing: server.url),
                password: nil,
                timeout: .seconds(2)
            )
            await #expect(throws: RedisError.self) {
                try await connection.send(["NOSUCHCOMMAND"], timeout: .seconds(1))
            }
            #expect(try await connection.send(["PING"], timeout: .seconds(1)) == .simpleString("PONG"))
            await connection.close()
        }
    }

    @Test func publishedMessagesArriveAsPushes() async throws {
        try await withRedis { server in
            let address = try RedisAddress(parsing: server.url)
            let (pushes, continuation) = AsyncStream.makeStream(of: RESPValue.self)
            let subscriber = try await RedisConnection.connect(to: address, password: nil, timeout: .seconds(2)) {
                continuation.yield($0)
            }
            _ = try await subscriber.send(["SUBSCRIBE", "news"], timeout: .seconds(1))
            let publisher = try await RedisConnection.connect(to: address, password: nil, timeout: .seconds(2))
            #expect(try await publisher.send(["PUBLISH", "news", "hello"], timeout: .seconds(1)) == .integer(1))
            var iterator = pushes.makeAsyncIterator()
            let push = await iterator.next()
            guard case .push(let parts)? = push else {
                Issue.record("no push: \(String(describing: push))")
                return
            }
            #expect(parts.map(\.string) == ["message", "news", "hello"])
            // RESP3 lets a subscribed connection send ordinary commands too.
            #expect(try await subscriber.send(["PING"], timeout: .seconds(1)) == .simpleString("PONG"))
            await subscriber.close()
            await publisher.close()
        }
    }

    @Test func aWrongPasswordIsSaidPlainly() async throws {
        try await withRedis(password: "right") { server in
            let address = try RedisAddress(parsing: server.url)
            await #expect {
                _ = try await RedisConnection.connect(to: address, password: "wrong", timeout: .seconds(2))
            } throws: { error in
                "\(error)" == "Redis refused the user name or password"
            }
            await #expect {
                let connection = try await RedisConnection.connect(to: address, password: nil, timeout: .seconds(2))
                _ = try await connection.send(["GET", "k"], timeout: .seconds(1))
            } throws: { error in
                "\(error)" == "Redis wants a password and none was given"
            }
            let connection = try await RedisConnection.connect(to: address, password: "right", timeout: .seconds(2))
            #expect(try await connection.send(["PING"], timeout: .seconds(1)) == .simpleString("PONG"))
            await connection.close()
        }
    }

    /// A server that stops answering (SIGSTOP) costs a command its timeout, no more; one that is
    /// gone fails the next command at once and a new connection is refused plainly.
    @Test func aStalledOrDeadServerCostsAtMostTheTimeout() async throws {
        try await withRedis { server in
            let connection = try await RedisConnection.connect(
                to: try RedisAddress(parsing: server.url),
                password: nil,
                timeout: .seconds(2)
            )
            await server.kill()
            await #expect(throws: RedisError.self) { try await connection.send(["PING"], timeout: .milliseconds(200)) }
            await #expect {
                // A refused connect fails at once; the timeout is only there for a loaded machine,
                // where 200 ms once ran out before the refusal was read.
                _ = try await RedisConnection.connect(
                    to: try RedisAddress(parsing: server.url),
                    password: nil,
                    timeout: .seconds(5)
                )
            } throws: { error in
                "\(error)" == "cannot connect to Redis: connection refused"
            }
        }
    }

    /// `rediss://`: TLS with swift-nio-ssl against redis-server's TLS port, trusting a CA made
    /// for the test; without that CA the handshake is refused, said plainly.
    @Test(.enabled(if: TestTools.hasOpenSSL, "needs /usr/bin/openssl to make the test's CA"))
    func rediss() async throws {
        try await withTemporaryDirectory { directory in
            let certificates = try await TestCertificates.make(in: directory)
            let port = try freeLoopbackPort()
            let server = try ChildProcess(
                RedisServer.executable,
                [
                    "--port", "0", "--bind", "127.0.0.1", "--tls-port", String(port), "--tls-cert-file",
                    certificates.certificate, "--tls-key-file", certificates.key, "--tls-ca-cert-file",
                    certificates.authority, "--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--dir",
                    directory,
                ],
                environment: [:],
                stdout: .file(directory + "/redis.log"),
                stderr: .file(directory + "/redis.log")
            )
            defer { server.signal(SIGKILL) }
            let address = try RedisAddress(parsing: "rediss://localhost:\(port)/0")
            let connection = try? await eventually("a TLS connection to redis-server") {
                try await RedisConnection.connect(
                    to: address,
                    password: nil,
                    timeout: .seconds(2),
                    certificateAuthorities: certificates.authority
                )
            }
            let secure = try #require(
                connection,
                "no TLS connection: \((try? String(contentsOfFile: directory + "/redis.log", encoding: .utf8)) ?? "")"
            )
            #expect(try await secure.send(["PING"], timeout: .seconds(1)) == .simpleString("PONG"))
            await secure.close()
            await #expect {
                _ = try await RedisConnection.connect(to: address, password: nil, timeout: .seconds(2))
            } throws: { error in
                "\(error)".contains("the TLS handshake failed")
            }
        }
    }

    @Test(arguments: [
        ("redis://127.0.0.1:6380/2", "redis://127.0.0.1:6380/2"),
        ("redis://cache.internal", "redis://cache.internal:6379/0"),
        ("rediss://ops@cache:6390/1", "rediss://ops@cache:6390/1"),
        ("unix:/run/redis/redis.sock", "unix:/run/redis/redis.sock"),
        ("unix:/run/redis.sock?db=3", "unix:/run/redis.sock?db=3"), ("redis://[::1]:7000", "redis://[::1]:7000/0"),
    ])
    func addressesAreRead(text: String, shown: String) throws {
        #expect(try RedisAddress(parsing: text).description == shown)
    }

    @Test(arguments: [
        ("redis://u:secret@host", "has a password in it"), ("http://host", "is not a redis://"),
        ("redis://host:0", "port"), ("redis://host/x", "database number"), ("unix:relative", "absolute path"),
        ("redis://", "has no host"),
    ])
    func badAddressesAreRefusedPlainly(text: String, message: String) {
        #expect { _ = try RedisAddress(parsing: text) } throws: { "\($0)".contains(message) }
    }

    /// Replies split at every byte boundary parse the same; garbage is refused, not guessed at.
    @Test func theParserTakesRepliesInPiecesAndRefusesGarbage() throws {
        let reply = Array("%1\r\n+a\r\n:1\r\n$4\r\nb\r\nc\r\n*2\r\n_\r\n,1.5\r\n>2\r\n+x\r\n#t\r\n".utf8)
        let whole = try parseAll([reply])
        #expect(whole.count == 4)
        #expect(whole.last == .push([.simpleString("x"), .boolean(true)]))
        for split in 1..<reply.count {
            #expect(try parseAll([Array(reply[..<split]), Array(reply[split...])]) == whole)
        }
        #expect(throws: RESPParseError.self) { try parseAll([Array("?what\r\n".utf8)]) }
    }

    /// Issue #23, item 9: the reader is bounded. A string longer than 4 MiB, or an array of more
    /// than 100,000 elements, is refused from its header, before its bytes arrive (the limit was
    /// 512 MiB, held in memory).
    @Test(arguments: ["$\(5 << 20)\r\n", "*1000000\r\n", "%1000000\r\n"])
    func oversizedRepliesAreRefusedFromTheirHeader(header: String) {
        #expect(throws: RESPParseError.self) { try parseAll([Array(header.utf8)]) }
    }

    /// A large value that arrives in many reads is parsed once, when it is whole: the parser
    /// says how many bytes it needs, and the caller waits for them.
    @Test func aLargeValueSaysHowManyBytesItNeeds() throws {
        let value = [UInt8](repeating: UInt8(ascii: "x"), count: 1 << 20)
        var buffer = ByteBuffer(string: "*2\r\n:7\r\n$\(value.count)\r\n")
        buffer.writeBytes(value.prefix(1000))
        var needed = 0
        #expect(try RESPParser.parse(&buffer, needed: &needed) == nil)
        let header = "*2\r\n:7\r\n$\(value.count)\r\n".utf8.count
        #expect(needed == header + value.count + 2)
        buffer.writeBytes(value.dropFirst(1000))
        buffer.writeString("\r\n")
        #expect(buffer.readableBytes == needed)
        #expect(
            try RESPParser.parse(&buffer, needed: &needed)
                == .array([.integer(7), .bulkString(ByteBuffer(bytes: value))])
        )
    }

    /// Feeds `pieces` one after another, as reads would deliver them.
    func parseAll(_ pieces: [[UInt8]]) throws -> [RESPValue] {
        var buffer = ByteBuffer()
        var values: [RESPValue] = []
        for piece in pieces {
            buffer.writeBytes(piece)
            while let value = try RESPParser.parse(&buffer) { values.append(value) }
        }
        return values
    }
}

extension RESPValue {
    var isMap: Bool {
        if case .map = self { return true }
        return false
    }
}
