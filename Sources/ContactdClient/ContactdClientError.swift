import ContactdProtocol

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

    /// ``reason`` as a value to switch on; reasons this client does not know are `.unknown`.
    public var kind: Reason { Reason(reason) }

    /// Whether asking again may help, and when (docs/protocol.md, "Errors"); `nil` for a reason
    /// this client does not know.
    public var retry: RetryHint? { ErrorReason(rawValue: reason)?.retry }

    /// Every reason contactd or this client gives, and one for reasons a newer contactd may add.
    public enum Reason: Sendable, Hashable, CustomStringConvertible, WireSpelling {
        /// The line was not JSON (`-32700`).
        case parseError
        /// Not a JSON-RPC request (`-32600`).
        case invalidRequest
        /// The line was longer than the daemon allows; it closed the connection (`-32600`).
        case requestTooLarge
        /// More requests in one batch than the daemon allows (`-32600`).
        case batchTooLarge
        /// No such method (`-32601`).
        case methodNotFound
        /// Missing, unknown or malformed parameters (`-32602`).
        case invalidParams
        /// Not an E.164 number after normalisation (`-32602`).
        case invalidPhoneNumber
        /// An empty, too long or malformed contact id (`-32602`).
        case invalidContactID
        /// The API refused the key (400 or 422) (`-32602`).
        case rejectedByAPI
        /// A bug in contactd (`-32603`).
        case internalError
        /// The API has no such contact (`-32001`).
        case notFound
        /// The API failed: network, timeout, 5xx (`-32002`); worth retrying later.
        case upstreamUnavailable
        /// The API rejected contactd's token: an operator must act (`-32003`).
        case upstreamUnauthorized
        /// The API is rate limiting; see ``ContactdClientError/retryAfter`` (`-32004`).
        case rateLimited
        /// A contactd limit (connections, requests in flight) (`-32005`).
        case overloaded
        /// contactd is draining to stop; its successor takes new connections (`-32005`).
        case shuttingDown
        /// This user or group may not use contactd (`-32005`).
        case forbidden
        /// The API answered with something that is not a contact (`-32006`).
        case upstreamBadResponse
        /// No socket, or nobody listening (this client's own).
        case connectionFailed
        /// The socket may not be opened by this user (this client's own).
        case permissionDenied
        /// No answer in time (this client's own).
        case timedOut
        /// The connection closed before the answer (this client's own).
        case connectionClosed
        /// A reply this client cannot read (this client's own).
        case badResponse
        /// A reason this client does not know, as sent.
        case unknown(String)

        /// The reason named in `ErrorReason`, the one table of reasons.
        public init(_ reason: ErrorReason) {
            switch reason {
            case .parseError: self = .parseError
            case .invalidRequest: self = .invalidRequest
            case .requestTooLarge: self = .requestTooLarge
            case .batchTooLarge: self = .batchTooLarge
            case .methodNotFound: self = .methodNotFound
            case .invalidParams: self = .invalidParams
            case .invalidPhoneNumber: self = .invalidPhoneNumber
            case .invalidContactID: self = .invalidContactID
            case .rejectedByAPI: self = .rejectedByAPI
            case .internalError: self = .internalError
            case .notFound: self = .notFound
            case .upstreamUnavailable: self = .upstreamUnavailable
            case .upstreamUnauthorized: self = .upstreamUnauthorized
            case .rateLimited: self = .rateLimited
            case .overloaded: self = .overloaded
            case .shuttingDown: self = .shuttingDown
            case .forbidden: self = .forbidden
            case .upstreamBadResponse: self = .upstreamBadResponse
            case .connectionFailed: self = .connectionFailed
            case .permissionDenied: self = .permissionDenied
            case .timedOut: self = .timedOut
            case .connectionClosed: self = .connectionClosed
            case .badResponse: self = .badResponse
            }
        }

        public static let spellings: [(Reason, String)] = ErrorReason.allCases.map { (Reason($0), $0.rawValue) }

        /// Every reason contactd itself sends (the rest are this client's own).
        public static let serverReasons: [String] = ErrorReason.allCases.filter(\.sentByServer).map(\.rawValue)

        /// The reason as spelled on the wire (`not_found`).
        public init(_ text: String) { self.init(spelling: text) }

        public var unknownSpelling: String? { if case .unknown(let text) = self { text } else { nil } }
    }

    /// The message, with the wait the server asked for, if any.
    public var description: String {
        var text = message
        if let retryAfter { text += " (retry after \(retryAfter)s)" }
        return text
    }

    /// The daemon's socket could not be reached.
    public static func connectionFailed(_ path: String, _ detail: String) -> ContactdClientError {
        ContactdClientError(
            code: nil,
            reason: ErrorReason.connectionFailed.rawValue,
            message: "cannot connect to \(path): \(detail)"
        )
    }

    /// The daemon's socket exists, but this user may not open it.
    public static func permissionDenied(_ path: String) -> ContactdClientError {
        ContactdClientError(
            code: nil,
            reason: ErrorReason.permissionDenied.rawValue,
            message: "permission denied on \(path): your user must be in the contactd-clients group"
        )
    }

    /// No answer came within the time allowed.
    public static func timedOut(_ timeout: Duration) -> ContactdClientError {
        ContactdClientError(
            code: nil,
            reason: ErrorReason.timedOut.rawValue,
            message: "contactd did not answer within \(Self.text(timeout))"
        )
    }

    /// The connection closed before the answer came.
    public static let connectionClosed = ContactdClientError(
        code: nil,
        reason: ErrorReason.connectionClosed.rawValue,
        message: "the connection to contactd closed before the answer arrived"
    )

    /// The daemon sent something that is not a JSON-RPC response.
    public static func badResponse(_ detail: String) -> ContactdClientError {
        ContactdClientError(
            code: nil,
            reason: ErrorReason.badResponse.rawValue,
            message: "contactd sent an unreadable reply: \(detail)"
        )
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
