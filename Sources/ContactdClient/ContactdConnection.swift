import ContactdJSON
import ContactdProtocol
import Logging
import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#endif

/// One connection to contactd; calls on it may overlap (they are pipelined and matched by id).
///
/// ```swift
/// let found = try await ContactdConnection.withConnection { connection in
///     try await connection.contact(phoneNumber: "+14155551234")
/// }
/// print(found.contact["name"]?.stringValue ?? "?", found.cacheStatus)
/// ```
public final class ContactdConnection: ContactdCalls {
    /// The daemon's default socket, `/run/contactd/contactd.sock`.
    public static let defaultSocketPath = "/run/contactd/contactd.sock"

    private let channel: any Channel
    /// What the server said about the connection as a whole, if anything.
    private let refusal: ConnectionRefusal
    /// How long a call waits for its answer unless it says otherwise; `nil`: as long as it takes.
    public let timeout: Duration?

    private init(channel: any Channel, refusal: ConnectionRefusal, timeout: Duration?) {
        self.channel = channel
        self.refusal = refusal
        self.timeout = timeout
    }

    /// Connects to the daemon.
    ///
    /// - Parameters:
    ///   - socketPath: the daemon's Unix socket.
    ///   - maxLineBytes: the longest reply accepted (a contact is a few KiB; the default is 16 MiB).
    ///   - timeout: how long connecting, and then each call, may take (a call can say otherwise);
    ///     the default, 10 s, is twice the daemon's own default deadline for a lookup. `nil`: no limit.
    ///   - eventLoopGroup: where the connection's I/O runs; SwiftNIO's shared group by default.
    /// - Throws: `ContactdClientError` with reason `connection_failed`, `permission_denied` or
    ///   `timed_out`.
    public static func connect(
        socketPath: String = defaultSocketPath,
        maxLineBytes: Int = 16 << 20,
        timeout: Duration? = .seconds(10),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> ContactdConnection {
        let refusal = ConnectionRefusal()
        var bootstrap = ClientBootstrap(group: eventLoopGroup)
        if let timeout { bootstrap = bootstrap.connectTimeout(TimeAmount(timeout)) }
        do {
            let channel =
                try await bootstrap
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            ByteToMessageHandler(LineFramer(maxLineBytes: maxLineBytes))
                        )
                        try channel.pipeline.syncOperations.addHandler(ClientHandler(refusal: refusal))
                    }
                }
                .connect(unixDomainSocketPath: socketPath)
                .get()
            return ContactdConnection(channel: channel, refusal: refusal, timeout: timeout)
        } catch {
            throw Self.connectError(error, socketPath: socketPath, timeout: timeout)
        }
    }

    /// Connects, runs `body`, and closes the connection however `body` ends.
    public static func withConnection<T: Sendable>(
        socketPath: String = defaultSocketPath,
        timeout: Duration? = .seconds(10),
        _ body: (ContactdConnection) async throws -> T
    ) async throws -> T {
        let connection = try await connect(socketPath: socketPath, timeout: timeout)
        do {
            let result = try await body(connection)
            await connection.close()
            return result
        } catch {
            await connection.close()
            throw error
        }
    }

    /// Whether the connection is still open (the daemon closes it after a line too long for it,
    /// or when it stops).
    public var isOpen: Bool { channel.isActive }

    /// Closes the connection; calls still waiting fail with `connection_closed`.
    public func close() async {
        try? await channel.close()
    }

    /// Calls `method` with `params` and returns its `result`.
    ///
    /// Waits at most `timeout` (the connection's unless given); a cancelled task stops waiting
    /// at once. A reply that comes later is dropped.
    ///
    /// - Throws: `ContactdClientError`: the server's error, a connection problem or `timed_out`;
    ///   `CancellationError` when the task is cancelled.
    public func call(_ method: String, params: JSONValue? = nil, timeout: Duration? = nil) async throws -> JSONValue {
        let promise = channel.eventLoop.makePromise(of: JSONValue.self)
        let limit = timeout ?? self.timeout
        let timer = limit.map { limit in
            channel.eventLoop.scheduleTask(in: TimeAmount(limit)) { promise.fail(ContactdClientError.timedOut(limit)) }
        }
        defer { timer?.cancel() }
        channel.writeAndFlush(ClientHandler.Call(method: method, params: params, promise: promise)).whenFailure {
            promise.fail($0)
        }
        do {
            return try await withTaskCancellationHandler {
                try await promise.futureResult.get()
            } onCancel: {
                promise.fail(CancellationError())
            }
        } catch let error as ContactdClientError {
            throw error
        } catch let error as CancellationError {
            throw error
        } catch {
            // The server may have refused the connection (forbidden, overloaded) and closed it
            // before this call was written: report its reason, not a bare "closed".
            throw refusal.error ?? ContactdClientError.connectionClosed
        }
    }

    /// Calls sent on this connection and neither answered nor given up yet.
    package var unansweredCalls: Int {
        get async throws {
            try await channel.pipeline.handler(type: ClientHandler.self).map(\.pendingCount).get()
        }
    }

    /// Sends a notification: no reply, no error (a `contact.get` notification warms the cache).
    public func notify(_ method: String, params: JSONValue? = nil) async throws {
        var line = JSONValue.object(["jsonrpc": "2.0", "method": .string(method)])
        if let params { line = .object(["jsonrpc": "2.0", "method": .string(method), "params": params]) }
        var bytes = line.jsonBytes
        bytes.append(UInt8(ascii: "\n"))
        do {
            try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
        } catch {
            throw ContactdClientError.connectionClosed
        }
    }

    /// A failed connect, said so that a person knows what to do.
    private static func connectError(_ error: any Error, socketPath: String, timeout: Duration?) -> ContactdClientError
    {
        switch (error as? IOError)?.errnoCode {
        case ENOENT?: return .connectionFailed(socketPath, "no such socket: is contactd (or contactd.socket) running?")
        case EACCES?, EPERM?: return .permissionDenied(socketPath)
        case ECONNREFUSED?: return .connectionFailed(socketPath, "nothing listens there: is contactd running?")
        default: break
        }
        if let timeout, case .connectTimeout? = error as? ChannelError {
            return .timedOut(timeout)
        }
        return .connectionFailed(socketPath, "the connection could not be made")
    }
}
