import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import PlainErrors

// No Swift Redis client is among the packages this project may use (RediStack and valkey-swift
// are not mirrored), so this is a small one of its own: RESP3 over SwiftNIO, only the commands
// contactd sends, pipelined on one connection. contactd sends through its
// `SharedCacheConnection` protocol, which a maintained client can take over; connecting and the
// sentinel calls are in `SharedCacheService`, the one other place such a client would change.

/// Where a Redis server listens, read from a URL: `redis://host[:port][/db]`,
/// `rediss://host[:port][/db]` (TLS) or `unix:/path[?db=N]`.
package struct RedisAddress: Sendable, Equatable, CustomStringConvertible {
    package enum Endpoint: Sendable, Equatable {
        case tcp(host: String, port: Int)
        case unix(path: String)
    }

    package var endpoint: Endpoint
    package var tls: Bool
    package var database: Int
    /// An ACL user name from the URL (`redis://user@host`); the password never comes from a URL.
    package var user: String?

    /// - Throws: a message naming what is wrong with `text`, in plain words.
    package init(parsing text: String) throws(RedisAddressError) {
        if text.hasPrefix("unix:") {
            var rest = String(text.dropFirst(5))
            var database = 0
            if let query = rest.firstIndex(of: "?") {
                let option = rest[rest.index(after: query)...]
                guard option.hasPrefix("db="), let number = Int(option.dropFirst(3)), number >= 0 else {
                    throw RedisAddressError("'\(text)': the only option after ? is db=N")
                }
                database = number
                rest = String(rest[..<query])
            }
            guard rest.hasPrefix("/") else { throw RedisAddressError("'\(text)' needs an absolute path after unix:") }
            self.init(endpoint: .unix(path: rest), tls: false, database: database, user: nil)
            return
        }
        let tls: Bool
        var rest: Substring
        if text.hasPrefix("redis://") {
            tls = false
            rest = text.dropFirst(8)
        } else if text.hasPrefix("rediss://") {
            tls = true
            rest = text.dropFirst(9)
        } else {
            throw RedisAddressError("'\(text)' is not a redis://, rediss:// or unix: address")
        }
        var user: String?
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            guard !credentials.contains(":") else {
                throw RedisAddressError(
                    "'\(text)' has a password in it; passwords never come from a URL"
                )
            }
            user = String(credentials)
            rest = rest[rest.index(after: at)...]
        }
        var database = 0
        if let slash = rest.firstIndex(of: "/") {
            let path = rest[rest.index(after: slash)...]
            if !path.isEmpty {
                guard let number = Int(path), number >= 0 else {
                    throw RedisAddressError("'\(text)': the path must be a database number, e.g. /0")
                }
                database = number
            }
            rest = rest[..<slash]
        }
        var host = String(rest)
        var port = 6379
        if let colon = rest.lastIndex(of: ":"), !rest.hasSuffix("]") {
            guard let number = Int(rest[rest.index(after: colon)...]), (1...65535).contains(number) else {
                throw RedisAddressError("'\(text)' has a port that is not a number from 1 to 65535")
            }
            port = number
            host = String(rest[..<colon])
        }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw RedisAddressError("'\(text)' has no host") }
        self.init(endpoint: .tcp(host: host, port: port), tls: tls, database: database, user: user)
    }

    package init(endpoint: Endpoint, tls: Bool = false, database: Int = 0, user: String? = nil) {
        self.endpoint = endpoint
        self.tls = tls
        self.database = database
        self.user = user
    }

    package var description: String {
        switch endpoint {
        case .tcp(let host, let port):
            let shownHost = host.contains(":") ? "[\(host)]" : host
            return "\(tls ? "rediss" : "redis")://\(user.map { "\($0)@" } ?? "")\(shownHost):\(port)/\(database)"
        case .unix(let path):
            return "unix:\(path)" + (database == 0 ? "" : "?db=\(database)")
        }
    }
}

package struct RedisAddressError: Error, CustomStringConvertible {
    package let description: String
    init(_ description: String) { self.description = description }
}

/// Why a command got no reply, in plain words.
package enum RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The server refused the command (`-ERR …`, `-WRONGPASS …`).
    case refused(String)
    case timedOut
    case connectionClosed
    case cannotConnect(String)
    case badReply(String)

    package var description: String {
        switch self {
        case .refused(let message):
            if message.hasPrefix("WRONGPASS") { return "Redis refused the user name or password" }
            if message.hasPrefix("NOAUTH") { return "Redis wants a password and none was given" }
            return "Redis refused the command: \(message)"
        case .timedOut: return "Redis did not answer in time"
        case .connectionClosed: return "the connection to Redis closed"
        case .cannotConnect(let why): return "cannot connect to Redis: \(why)"
        case .badReply(let why): return "Redis sent \(why)"
        }
    }
}

/// One connection to Redis, speaking RESP3. Commands are pipelined: each waits only for its own
/// reply. Pushes (published messages) go to `onPush`, on the connection's event loop.
package final class RedisConnection: Sendable {
    private let channel: any Channel
    /// Why the connection failed, when the handler knew (a TLS handshake, garbage).
    private let failure: NIOLockedValueBox<RedisError?>

    private init(channel: any Channel, failure: NIOLockedValueBox<RedisError?>) {
        self.channel = channel
        self.failure = failure
    }

    /// Connects, says `HELLO 3` (with `AUTH` when a password is given) and selects the database.
    ///
    /// - Parameters:
    ///   - timeout: bounds the connect and each of those commands.
    ///   - certificateAuthorities: for `rediss://`, a PEM file of the CAs to trust instead of the
    ///     system's.
    package static func connect(
        to address: RedisAddress,
        password: String?,
        timeout: TimeAmount,
        certificateAuthorities: String? = nil,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        onPush: @escaping @Sendable (RESPValue) -> Void = { _ in }
    ) async throws(RedisError) -> RedisConnection {
        let tlsContext: NIOSSLContext?
        if address.tls {
            var configuration = TLSConfiguration.makeClientConfiguration()
            if let certificateAuthorities { configuration.trustRoots = .file(certificateAuthorities) }
            do {
                tlsContext = try NIOSSLContext(configuration: configuration)
            } catch {
                throw .cannotConnect("TLS cannot be set up (\(certificateAuthorities ?? "the system's CAs"))")
            }
        } else {
            tlsContext = nil
        }
        // SNI and the certificate check need a name; an address literal is checked as one.
        let serverName: String? =
            if case .tcp(let host, _) = address.endpoint, !host.contains(":"),
                !host.allSatisfy({ $0.isNumber || $0 == "." })
            {
                host
            } else {
                nil
            }
        let failure = NIOLockedValueBox<RedisError?>(nil)
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tlsContext {
                        let handler = try NIOSSLClientHandler(context: tlsContext, serverHostname: serverName)
                        try channel.pipeline.syncOperations.addHandler(handler)
                    }
                    try channel.pipeline.syncOperations.addHandler(RedisHandler(onPush: onPush, failure: failure))
                }
            }
        let channel: any Channel
        do {
            switch address.endpoint {
            case .tcp(let host, let port): channel = try await bootstrap.connect(host: host, port: port).get()
            case .unix(let path): channel = try await bootstrap.connect(unixDomainSocketPath: path).get()
            }
        } catch {
            throw .cannotConnect(Self.plain(error))
        }
        let connection = RedisConnection(channel: channel, failure: failure)
        do {
            var hello: [RedisArgument] = ["HELLO", "3"]
            if let password { hello += ["AUTH", .text(address.user ?? "default"), .text(password)] }
            _ = try await connection.send(hello, timeout: timeout)
            if address.database != 0 {
                _ = try await connection.send(["SELECT", .text(String(address.database))], timeout: timeout)
            }
        } catch {
            await connection.close()
            throw error
        }
        return connection
    }

    /// Sends one command; its reply, or why there is none within `timeout`. A reply that comes
    /// later is read and dropped.
    package func send(_ command: [RedisArgument], timeout: TimeAmount) async throws(RedisError) -> RESPValue {
        try await send([command], timeout: timeout)[0]
    }

    /// Sends commands in one write; their replies in order, all within `timeout`.
    package func send(_ commands: [[RedisArgument]], timeout: TimeAmount) async throws(RedisError) -> [RESPValue] {
        let loop = channel.eventLoop
        let promises = commands.map { _ in loop.makePromise(of: RESPValue.self) }
        let timer = loop.scheduleTask(in: timeout) {
            for promise in promises { promise.fail(RedisError.timedOut) }
        }
        let written = loop.makePromise(of: Void.self)
        let failure = self.failure
        written.futureResult.whenFailure { _ in
            // Closed before the write got out: nothing will answer.
            let reason = failure.withLockedValue { $0 } ?? .connectionClosed
            for promise in promises { promise.fail(reason) }
        }
        channel.writeAndFlush(RedisHandler.Outbound(commands: commands, promises: promises), promise: written)
        var replies: [RESPValue] = []
        do {
            for promise in promises {
                let reply = try await promise.futureResult.get()
                if case .error(let message) = reply { throw RedisError.refused(message) }
                replies.append(reply)
            }
        } catch let error as RedisError {
            timer.cancel()
            throw error
        } catch {
            timer.cancel()
            throw .connectionClosed
        }
        timer.cancel()
        return replies
    }

    /// Whether the connection is still open.
    package var isOpen: Bool { channel.isActive }

    /// Completes when the connection has closed, for whatever reason.
    package var closed: EventLoopFuture<Void> { channel.closeFuture }

    package func close() async {
        try? await channel.close()
    }

    static func plain(_ error: any Error) -> String {
        if let error = error as? IOError { return ErrnoText.plain(error.errnoCode) }
        if error is ChannelError { return "timed out" }
        if error is NIOSSLError || error is BoringSSLError {
            return "the TLS handshake failed (is the server's certificate signed by a trusted CA, for this name?)"
        }
        if let error = error as? NIOConnectionError {
            return error.connectionErrors.first.map { plain($0.error) } ?? "no address to connect to"
        }
        return "\(error)"
    }
}

/// The connection's one handler: encodes commands, matches replies to them in order, hands
/// pushes on.
final class RedisHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = Outbound
    typealias OutboundOut = ByteBuffer

    struct Outbound {
        let commands: [[RedisArgument]]
        let promises: [EventLoopPromise<RESPValue>]
    }

    /// Replies owed, in order; a subscription is confirmed by a push rather than a reply (RESP3).
    private var waiting = CircularBuffer<(promise: EventLoopPromise<RESPValue>, subscribes: Bool)>()
    private var buffer: ByteBuffer?
    /// Bytes `buffer` must hold before the next value can be whole (`RESPParser.parse`'s hint).
    private var needed = 0
    /// Most bytes held for replies not yet whole: a value may be 4 MiB (`RESPParser`), and a
    /// pipeline's replies arrive together.
    static let maxBufferedBytes = 16 << 20
    private let onPush: @Sendable (RESPValue) -> Void
    private let failure: NIOLockedValueBox<RedisError?>

    init(onPush: @escaping @Sendable (RESPValue) -> Void, failure: NIOLockedValueBox<RedisError?>) {
        self.onPush = onPush
        self.failure = failure
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let outbound = unwrapOutboundIn(data)
        var bytes = context.channel.allocator.buffer(capacity: 64)
        for (command, promise) in zip(outbound.commands, outbound.promises) {
            RESPEncoder.encode(command, into: &bytes)
            let name = if case .text(let text)? = command.first { text.uppercased() } else { "" }
            waiting.append((promise, ["SUBSCRIBE", "UNSUBSCRIBE", "PSUBSCRIBE", "PUNSUBSCRIBE"].contains(name)))
        }
        context.write(wrapOutboundOut(bytes), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if buffer == nil {
            buffer = incoming
        } else {
            buffer!.writeBuffer(&incoming)
        }
        do {
            // Not parsed again until the bytes a value needs are there (a large value arrives in
            // many reads); never more buffered than a value may take.
            if let held = buffer?.readableBytes, held < needed {
                guard held <= Self.maxBufferedBytes else {
                    throw RESPParseError(description: "more than \(Self.maxBufferedBytes) bytes without a whole reply")
                }
                return
            }
            while var pending = buffer, let value = try RESPParser.parse(&pending, needed: &needed) {
                needed = 0
                buffer = pending.readableBytes == 0 ? nil : pending
                if case .push(let parts) = value {
                    let kind = parts.first?.string ?? ""
                    if kind.hasSuffix("subscribe"), waiting.first?.subscribes == true {
                        waiting.removeFirst().promise.succeed(value)
                    } else {
                        onPush(value)
                    }
                } else if let owed = waiting.popFirst() {
                    owed.promise.succeed(value)
                } else {
                    throw RESPParseError(description: "a reply nothing was asked for")
                }
            }
            // What is left is part of one value: never more than a value may take.
            if let held = buffer?.readableBytes, held > Self.maxBufferedBytes {
                throw RESPParseError(description: "more than \(Self.maxBufferedBytes) bytes without a whole reply")
            }
        } catch let error as RESPParseError {
            failure.withLockedValue { $0 = $0 ?? .badReply(error.description) }
            failAll(.badReply(error.description))
            context.close(promise: nil)
        } catch {
            failAll(.badReply("\(error)"))
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(failure.withLockedValue { $0 } ?? .connectionClosed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A failed TLS handshake shows up here, on the first command.
        let isTLS = error is NIOSSLError || error is BoringSSLError
        let reason: RedisError = isTLS ? .cannotConnect(RedisConnection.plain(error)) : .connectionClosed
        failure.withLockedValue { $0 = $0 ?? reason }
        failAll(reason)
        context.close(promise: nil)
    }

    private func failAll(_ error: RedisError) {
        while let owed = waiting.popFirst() { owed.promise.fail(error) }
    }
}
