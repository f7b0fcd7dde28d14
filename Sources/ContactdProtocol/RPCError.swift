import ContactdJSON

/// A JSON-RPC error as contactd sends it: code, snake_case `data.reason`, a message for people.
public struct RPCError: Error, Sendable, Hashable {
    /// The JSON-RPC error code (SPEC §3).
    public var code: Int
    /// The machine-readable reason, `data.reason`.
    public var reason: String
    /// A sentence for people.
    public var message: String
    /// Seconds to wait before retrying, `data.retry_after`, when known.
    public var retryAfter: Double?

    public init(code: Int, reason: String, message: String, retryAfter: Double? = nil) {
        self.code = code
        self.reason = reason
        self.message = message
        self.retryAfter = retryAfter
    }

    /// The `error` member's value.
    /// An error of `reason` (its code from `ErrorReason`, the one table of reasons).
    public init(_ reason: ErrorReason, message: String, retryAfter: Double? = nil) {
        precondition(reason.sentByServer, "\(reason.rawValue) is a client's own reason")
        self.init(code: reason.code ?? -32603, reason: reason.rawValue, message: message, retryAfter: retryAfter)
    }

    public var json: JSONValue {
        var data: JSONObject = ["reason": .string(reason)]
        if let retryAfter { data["retry_after"] = .double(retryAfter) }
        return .object(["code": .int(code), "message": .string(message), "data": .object(data)])
    }

    public static func parseError(_ detail: String) -> RPCError {
        RPCError(.parseError, message: "Parse error: \(detail)")
    }
    public static func invalidRequest(_ detail: String) -> RPCError {
        RPCError(.invalidRequest, message: "Invalid request: \(detail)")
    }
    public static func requestTooLarge(limit: Int) -> RPCError {
        RPCError(.requestTooLarge, message: "Request line longer than \(limit) bytes")
    }
    public static func batchTooLarge(limit: Int) -> RPCError {
        RPCError(.batchTooLarge, message: "Batch holds more than \(limit) requests")
    }
    /// The replies to a batch would pass `limit` bytes: the requests past it are answered with this.
    public static func batchReplyTooLarge(limit: Int) -> RPCError {
        RPCError(
            .batchTooLarge,
            message: "The batch's replies would pass \(limit) bytes; ask for fewer contacts in one batch"
        )
    }
    public static func methodNotFound(_ method: String) -> RPCError {
        RPCError(.methodNotFound, message: "Method not found: \(method)")
    }
    public static func invalidParams(_ detail: String) -> RPCError {
        RPCError(.invalidParams, message: "Invalid params: \(detail)")
    }
    public static let invalidPhoneNumber = RPCError(
        .invalidPhoneNumber,
        message: "Invalid phone number: expected E.164, '+' then 2 to 15 digits"
    )
    public static let invalidContactID = RPCError(
        .invalidContactID,
        message: "Invalid contact_id: expected 1 to 128 bytes without whitespace"
    )
    public static let rejectedByAPI = RPCError(
        .rejectedByAPI,
        message: "The API rejected this key"
    )
    public static let internalError = RPCError(.internalError, message: "Internal error")
    public static let notFound = RPCError(.notFound, message: "Contact not found")
    public static func upstreamUnavailable(_ detail: String, retryAfter: Double? = nil) -> RPCError {
        RPCError(
            .upstreamUnavailable,
            message: "The contacts API is unavailable: \(detail)",
            retryAfter: retryAfter
        )
    }
    public static let upstreamUnauthorized = RPCError(
        .upstreamUnauthorized,
        message: "The contacts API rejected the daemon's token"
    )
    public static func rateLimited(retryAfter: Double?) -> RPCError {
        RPCError(
            .rateLimited,
            message: "The contacts API is rate limiting requests",
            retryAfter: retryAfter
        )
    }
    public static func overloaded(_ detail: String) -> RPCError {
        RPCError(.overloaded, message: "Server overloaded: \(detail)")
    }
    public static let shuttingDown = RPCError(
        .shuttingDown,
        message: "The daemon is shutting down"
    )
    public static let forbidden = RPCError(.forbidden, message: "This peer may not use contactd")
    public static func upstreamBadResponse(_ detail: String) -> RPCError {
        RPCError(
            .upstreamBadResponse,
            message: "The contacts API answered with something that is not a contact: \(detail)"
        )
    }
}
