import ContactdJSON
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Calls to the local daemon that ride through its restarts: it connects on first use, and when
/// the connection is lost (the daemon stopped, restarted or was upgraded) it connects again,
/// backing off, and retries the call once on the new connection.
///
/// Every method of `ContactdCalls` is safe to repeat (a lookup, an invalidation, the counters), so
/// they are all retried; `call(_:params:timeout:retry:)` lets a caller say otherwise for a method
/// that is not.
///
/// ```swift
/// let contacts = ContactdSession()
/// let found = try await contacts.contact(phoneNumber: "+14155551234")
/// ```
public final class ContactdSession: ContactdCalls {
    /// The daemon's socket.
    public let socketPath: String
    /// How long connecting, then each call, may take (per attempt); `nil`: no limit.
    public let timeout: Duration?
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    private let connection = NIOLockedValueBox<ContactdConnection?>(nil)

    /// A session; it connects on its first call.
    ///
    /// - Parameters:
    ///   - socketPath: the daemon's Unix socket.
    ///   - timeout: how long connecting, then each call, may take; `nil`: no limit.
    ///   - eventLoopGroup: where the connection's I/O runs; SwiftNIO's shared group by default.
    ///   - logger: connects and reconnects are logged at `debug`, a lost connection at `info`.
    public init(
        socketPath: String = ContactdConnection.defaultSocketPath,
        timeout: Duration? = .seconds(10),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "contactd.client", factory: { _ in SwiftLogNoOpLogHandler() })
    ) {
        self.socketPath = socketPath
        self.timeout = timeout
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
    }

    /// Calls `method`; a call the connection's loss cut off is made once more on a new one.
    public func call(_ method: String, params: JSONValue?, timeout: Duration?) async throws -> JSONValue {
        try await call(method, params: params, timeout: timeout, retry: true)
    }

    /// Calls `method`; when the connection turns out to be lost, reconnects and, if `retry`,
    /// makes the call once more.
    public func call(_ method: String, params: JSONValue?, timeout: Duration?, retry: Bool) async throws -> JSONValue {
        let current = try await connected()
        do {
            return try await current.call(method, params: params, timeout: timeout)
        } catch let error as ContactdClientError
            where error.reason == "connection_closed" || error.reason == "shutting_down"
        {
            // The daemon went away, or is draining to stop: the next one answers.
            logger.info(
                "connection to contactd lost; reconnecting",
                metadata: ["contactd.socket": "\(socketPath)", "reason": "\(error.reason)"]
            )
            forget(current)
            guard retry else { throw error }
            return try await connected().call(method, params: params, timeout: timeout)
        }
    }

    /// Closes the connection, if there is one; the next call opens a new one.
    public func close() async {
        await connection.withLockedValue { current in
            defer { current = nil }
            return current
        }?.close()
    }

    /// The open connection, or a new one: tried a few times with growing pauses (the daemon may
    /// be starting: socket activation queues connections, a plain restart leaves a gap).
    private func connected() async throws -> ContactdConnection {
        // A connection the daemon closed (after a refusal or a line too long for it) is replaced.
        if let current = connection.withLockedValue({ $0 }) {
            if current.isOpen { return current }
            forget(current)
        }
        var pause = Duration.milliseconds(20)
        let giveUp = timeout.map { ContinuousClock.now + $0 }
        while true {
            do {
                let fresh = try await ContactdConnection.connect(
                    socketPath: socketPath,
                    timeout: timeout,
                    eventLoopGroup: eventLoopGroup
                )
                logger.debug("connected to contactd", metadata: ["contactd.socket": "\(socketPath)"])
                let kept = connection.withLockedValue { current -> ContactdConnection in
                    if let current { return current }
                    current = fresh
                    return fresh
                }
                if kept !== fresh { await fresh.close() }
                return kept
            } catch let error as ContactdClientError where error.reason == "connection_failed" {
                guard let giveUp, ContinuousClock.now + pause < giveUp else { throw error }
                logger.debug(
                    "contactd not there yet; trying again",
                    metadata: ["contactd.socket": "\(socketPath)", "pause_ms": "\(pause / .milliseconds(1))"]
                )
                try await Task.sleep(for: pause)
                pause = min(pause * 2, .milliseconds(500))
            }
        }
    }

    private func forget(_ lost: ContactdConnection) {
        connection.withLockedValue { current in
            if current === lost { current = nil }
        }
    }
}
