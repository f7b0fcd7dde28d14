/// An error from contactd or from talking to it.
///
/// A struct rather than an enum so that a new server reason breaks no caller: switch on `reason`
/// (stable, snake_case) and show `description` to people.
public struct ContactdClientError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The JSON-RPC error code for server errors; `nil` for errors on this side.
    public let code: Int?
    /// A stable machine-readable reason: the server's `data.reason`, or one of the client reasons
    /// (`connection_failed`, `connection_closed`, `bad_response`).
    public let reason: String
    /// A sentence for people.
    public let message: String
    /// Seconds to wait before retrying, when the server said.
    public let retryAfter: Double?

    /// Creates an error; clients normally receive these rather than make them.
    public init(code: Int?, reason: String, message: String, retryAfter: Double? = nil) {
        self.code = code
        self.reason = reason
        self.message = message
        self.retryAfter = retryAfter
    }

    public var description: String {
        var text = message
        if let retryAfter { text += " (retry after \(retryAfter)s)" }
        return text
    }

    /// The daemon's socket could not be reached.
    public static func connectionFailed(_ path: String, _ detail: String) -> ContactdClientError {
        ContactdClientError(code: nil, reason: "connection_failed", message: "cannot connect to \(path): \(detail)")
    }

    /// The daemon's socket exists, but this user may not open it.
    public static func permissionDenied(_ path: String) -> ContactdClientError {
        ContactdClientError(
            code: nil,
            reason: "permission_denied",
            message: "permission denied on \(path): your user must be in the contactd-clients group"
        )
    }

    /// No answer came within the time allowed.
    public static func timedOut(_ timeout: Duration) -> ContactdClientError {
        ContactdClientError(
            code: nil,
            reason: "timed_out",
            message: "contactd did not answer within \(Self.text(timeout))"
        )
    }

    /// The connection closed before the answer came.
    public static let connectionClosed = ContactdClientError(
        code: nil,
        reason: "connection_closed",
        message: "the connection to contactd closed before the answer arrived"
    )

    /// The daemon sent something that is not a JSON-RPC response.
    public static func badResponse(_ detail: String) -> ContactdClientError {
        ContactdClientError(code: nil, reason: "bad_response", message: "contactd sent an unreadable reply: \(detail)")
    }

    /// `5s`, `250ms`, `1.5s`.
    private static func text(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let milliseconds = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        if milliseconds % 1000 == 0 { return "\(milliseconds / 1000)s" }
        if milliseconds < 1000 { return "\(milliseconds)ms" }
        return "\(Double(milliseconds) / 1000)s"
    }
}
