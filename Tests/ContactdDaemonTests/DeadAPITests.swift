import ContactdCore
import ContactdDaemon
import ContactdJSON
import ContactdTestSupport
import FakeContactAPI
import Foundation
import Glibc
import NIOCore
import NIOPosix
import NIOSSL
import Testing

/// An API that cannot be reached costs a lookup little time, is retried and counted by the
/// breaker, and is named in plain words (issue #14, item 1).
@Suite(.timeLimit(.minutes(1))) struct DeadAPITests {
    /// A TCP socket bound to a free port on 127.0.0.1, not listening yet.
    struct LoopbackSocket {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        var port: Int { Int(UInt16(bigEndian: address.sin_port)) }

        init() throws {
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let fd = self.fd
            let bound = withUnsafeMutablePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
                }
            }
            guard bound else { throw TestSupportError("cannot bind a loopback port") }
        }

        /// Starts connecting a new non-blocking socket to this one; returns the new socket.
        func connectOne() -> Int32 {
            let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            var address = self.address
            _ = withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            return client
        }
    }

    /// Runs `body` with a daemon whose API is `url` and a client connected to it.
    func withDaemon(
        apiURL url: String,
        connectTimeout: Duration? = nil,
        _ body: @escaping @Sendable (RawSocketClient) async throws -> Void
    ) async throws {
        try await withFakeAPI { api in
            try await ContactdTestSupport.withDaemon(
                api: api,
                configure: {
                    $0.upstream.url = url
                    $0.policy.retryBaseDelay = .milliseconds(20)
                    if let connectTimeout { $0.upstream.connectTimeout = connectTimeout }
                }
            ) { daemon in
                let client = try await RawSocketClient.connect(daemon.socketPath)
                try await body(client)
                await client.close()
            }
        }
    }

    /// The error's message, checked for what a message to a person must not hold.
    static func plainMessage(_ reply: JSONValue) -> String {
        let message = reply["error"]?["message"]?.stringValue ?? ""
        for internals in ["errno", "NIO", "IOError", "HTTPClientError", "error set", "(", "BoringSSL"] {
            #expect(!message.contains(internals), "'\(message)' shows \(internals)")
        }
        return message
    }

    func stats(_ client: RawSocketClient) async throws -> JSONValue {
        try #require(try await roundTrip(client, #"{"id":"s","method":"cache.stats"}"#)["result"])
    }

    /// A closed port: each attempt is refused at once and retried with backoff, the breaker
    /// counts every call and opens, and then a miss is answered without trying.
    @Test func aClosedPortIsRetriedCountedAndThenAnsweredAtOnce() async throws {
        // Bound, never listening, closed: a port nobody listens on.
        let port = try {
            let socket = try LoopbackSocket()
            close(socket.fd)
            return socket.port
        }()
        try await withDaemon(apiURL: "http://127.0.0.1:\(port)") { client in
            let first = try await roundTrip(client, getPhone(johnPhone))
            #expect(first.errorReason == "upstream_unavailable")
            // The answer is the refused attempts' own, not the 5 s deadline's ("no answer within
            // the 5s deadline"): said by what it says, not by a wall-clock bound a loaded machine
            // can miss (4 s was missed by 0.37 s with a build running beside the suite).
            #expect(Self.plainMessage(first).hasSuffix("connection refused"), "\(first)")
            var upstream = try await stats(client)["upstream"]
            #expect(upstream?["requests"]?.intValue == 3)
            #expect(upstream?["retries"]?.intValue == 2)
            // Five failed calls in a row open the circuit (the sixth is made, then refused).
            _ = try await roundTrip(client, getPhone("+442079460958", id: 2))
            upstream = try await stats(client)["upstream"]
            #expect(upstream?["circuit"]?["state"]?.stringValue == "open")
            // Answered without trying: the breaker's own answer, and no new call made.
            let refused = try await roundTrip(client, getPhone("+4930901820", id: 3))
            #expect(refused.errorReason == "upstream_unavailable")
            #expect(Self.plainMessage(refused).contains("circuit open"), "\(refused)")
            #expect(try await stats(client)["upstream"]?["requests"]?.intValue == upstream?["requests"]?.intValue)
        }
    }

    /// A listener whose accept queue is full: the connect is never answered, and the connect
    /// timeout, not the lookup's deadline, ends each attempt.
    @Test func aListenerThatNeverAcceptsTimesOutOnConnect() async throws {
        let listener = try LoopbackSocket()
        defer { close(listener.fd) }
        #expect(listen(listener.fd, 0) == 0)
        // Fill the accept queue: later SYNs are dropped, so connects hang.
        let fillers = (0..<4).map { _ in listener.connectOne() }
        defer { for fd in fillers { close(fd) } }
        try await withDaemon(
            apiURL: "http://127.0.0.1:\(listener.port)",
            connectTimeout: .milliseconds(300)
        ) { client in
            let reply = try await roundTrip(client, getPhone(johnPhone))
            #expect(reply.errorReason == "upstream_unavailable")
            // Three 0.3 s connects and two short backoffs, not the 5 s deadline: the answer is the
            // connect timeout's own and all three attempts were made (a wall-clock bound said it
            // less well, and a loaded machine missed it).
            #expect(Self.plainMessage(reply).hasSuffix("timed out connecting to the API"), "\(reply)")
            #expect(try await stats(client)["upstream"]?["retries"]?.intValue == 2)
        }
    }

    /// A peer that accepts and never answers: when an attempt has not answered after half of
    /// what is left of the deadline, another starts beside it, so the lookup makes more than one
    /// attempt within it. 4 s, so that the hedge at about 2 s still has time to start when a
    /// loaded machine runs its timer late.
    @Test func aPeerThatNeverAnswersIsTriedMoreThanOnceWithinTheDeadline() async throws {
        try await withFakeAPI { api in
            api.hold()
            try await ContactdTestSupport.withDaemon(api: api, configure: { $0.policy.deadline = .seconds(4) }) {
                daemon in
                let client = try await RawSocketClient.connect(daemon.socketPath)
                let reply = try await roundTrip(client, getPhone(johnPhone))
                #expect(reply.errorReason == "upstream_unavailable")
                // The last attempt's own timeout, or on a loaded machine the lookup's deadline just before it.
                let message = Self.plainMessage(reply)
                #expect(message.contains("timed out") || message.contains("deadline"), "\(reply)")
                #expect(api.calls >= 2, "the API was called \(api.calls) times")
                api.release()
                await client.close()
            }
        }
    }

    /// A TLS endpoint whose certificate does not verify (self-signed): named as such.
    @Test(
        .enabled(
            if: FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl"),
            "needs /usr/bin/openssl (Debian package openssl) to make a certificate"
        )
    )
    func aCertificateThatDoesNotVerifyIsNamed() async throws {
        try await withTemporaryDirectory { dir in
            let made = try await runCommand(
                URL(fileURLWithPath: "/usr/bin/openssl"),
                [
                    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", dir + "/key.pem", "-out", dir + "/cert.pem", "-days", "1", "-subj", "/CN=127.0.0.1",
                ]
            )
            #expect(made.status == 0, "\(made.stderr)")
            let context = try NIOSSLContext(
                configuration: .makeServerConfiguration(
                    certificateChain: try NIOSSLCertificate.fromPEMFile(dir + "/cert.pem").map { .certificate($0) },
                    privateKey: .privateKey(try NIOSSLPrivateKey(file: dir + "/key.pem", format: .pem))
                )
            )
            let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                    }
                }
                .bind(host: "127.0.0.1", port: 0).get()
            let port = try #require(server.localAddress?.port)
            try await withDaemon(apiURL: "https://127.0.0.1:\(port)") { client in
                let reply = try await roundTrip(client, getPhone(johnPhone))
                #expect(reply.errorReason == "upstream_unavailable")
                #expect(
                    Self.plainMessage(reply).hasSuffix("the API's TLS certificate could not be verified"),
                    "\(reply)"
                )
            }
            try await server.close()
        }
    }
}
