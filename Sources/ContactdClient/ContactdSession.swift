import ContactdJSON
import NIOConcurrencyHelpers

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
    public let socketPath: String
    /// How long connecting, then each call, may take (per attempt); `nil`: no limit.
    public let timeout: Duration?
    private let connection = NIOLockedValueBox<ContactdConnection?>(nil)

    public init(socketPath: String = ContactdConnection.defaultSocketPath, timeout: Duration? = .seconds(10)) {
        self.socketPath = socketPath
        self.timeout = timeout
    }

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
        if let current = connection.withLockedValue({ $0 }) { return current }
        var pause = Duration.milliseconds(20)
        let giveUp = timeout.map { ContinuousClock.now + $0 }
        while true {
            do {
                let fresh = try await ContactdConnection.connect(socketPath: socketPath, timeout: timeout)
                let kept = connection.withLockedValue { current -> ContactdConnection in
                    if let current { return current }
                    current = fresh
                    return fresh
                }
                if kept !== fresh { await fresh.close() }
                return kept
            } catch let error as ContactdClientError where error.reason == "connection_failed" {
                guard let giveUp, ContinuousClock.now + pause < giveUp else { throw error }
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
