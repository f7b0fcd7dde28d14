/// Every reason an error carries (SPEC §3, docs/protocol.md "Errors"), with what goes with it:
/// the JSON-RPC code contactd sends it with, whether and when to ask again, and the exit status
/// contactctl gives it. One table:
/// the daemon's `RPCError`, the Swift client's `ContactdClientError.Reason`, contactctl's exit
/// statuses and the failed-lookup metric all read it, and a test holds docs/protocol.md to it.
///
/// The last five are the client's own (no code): what a client says when it gets no answer.
public enum ErrorReason: String, Sendable, CaseIterable {
    case parseError = "parse_error"
    case invalidRequest = "invalid_request"
    case requestTooLarge = "request_too_large"
    case batchTooLarge = "batch_too_large"
    case methodNotFound = "method_not_found"
    case invalidParams = "invalid_params"
    case invalidPhoneNumber = "invalid_phone_number"
    case invalidContactID = "invalid_contact_id"
    case rejectedByAPI = "rejected_by_api"
    case internalError = "internal_error"
    case notFound = "not_found"
    case upstreamUnavailable = "upstream_unavailable"
    case upstreamUnauthorized = "upstream_unauthorized"
    case rateLimited = "rate_limited"
    case overloaded
    case shuttingDown = "shutting_down"
    case forbidden
    case upstreamBadResponse = "upstream_bad_response"
    case connectionFailed = "connection_failed"
    case permissionDenied = "permission_denied"
    case timedOut = "timed_out"
    case connectionClosed = "connection_closed"
    case badResponse = "bad_response"

    /// The JSON-RPC error code contactd sends it with; `nil` for the client's own reasons.
    public var code: Int? {
        switch self {
        case .parseError: -32700
        case .invalidRequest, .requestTooLarge, .batchTooLarge: -32600
        case .methodNotFound: -32601
        case .invalidParams, .invalidPhoneNumber, .invalidContactID, .rejectedByAPI: -32602
        case .internalError: -32603
        case .notFound: -32001
        case .upstreamUnavailable: -32002
        case .upstreamUnauthorized: -32003
        case .rateLimited: -32004
        case .overloaded, .shuttingDown, .forbidden: -32005
        case .upstreamBadResponse: -32006
        case .connectionFailed, .permissionDenied, .timedOut, .connectionClosed, .badResponse: nil
        }
    }

    /// Whether contactd itself sends it (else it is a client's own).
    public var sentByServer: Bool { code != nil }

    /// What contactctl exits with (SPEC §5; the sysexits.h numbers where one fits): 1 not found,
    /// 2 the caller's input, 69 unavailable, 70 a bug, 75 try again later, 77 not allowed.
    public var exitStatus: Int32 {
        switch self {
        case .notFound: 1
        case .invalidParams, .invalidPhoneNumber, .invalidContactID, .rejectedByAPI, .invalidRequest, .parseError,
            .methodNotFound, .requestTooLarge, .batchTooLarge:
            2
        case .upstreamUnavailable, .upstreamBadResponse, .connectionFailed, .connectionClosed, .shuttingDown: 69
        case .internalError, .badResponse: 70
        case .rateLimited, .overloaded, .timedOut: 75
        case .upstreamUnauthorized, .forbidden, .permissionDenied: 77
        }
    }

    /// Whether the same request may be answered otherwise if asked again, and when: the errors
    /// table's "retry?" column.
    public var retry: RetryHint {
        switch self {
        case .parseError, .invalidRequest, .requestTooLarge, .batchTooLarge, .methodNotFound, .invalidParams,
            .invalidPhoneNumber, .invalidContactID, .rejectedByAPI, .upstreamUnauthorized, .forbidden,
            .permissionDenied, .badResponse:
            .no
        case .internalError: .maybe
        case .notFound: .afterNegativeTTL
        case .upstreamUnavailable, .shuttingDown, .upstreamBadResponse, .timedOut, .connectionClosed: .yes
        case .rateLimited: .afterRetryAfter
        case .overloaded, .connectionFailed: .withBackoff
        }
    }

    /// The reasons a `contact.get` can be answered with (what the failed-lookup metric counts):
    /// a request the daemon knows to be a lookup, refused or failed.
    public static let lookupFailures: [ErrorReason] = [
        .notFound, .invalidParams, .invalidPhoneNumber, .invalidContactID, .rejectedByAPI, .upstreamUnavailable,
        .upstreamUnauthorized, .rateLimited, .upstreamBadResponse, .overloaded, .shuttingDown, .forbidden,
        .internalError,
    ]
}

/// Whether a request that failed may be answered otherwise if asked again, and when.
public enum RetryHint: String, Sendable, CaseIterable, CustomStringConvertible {
    /// The same request gets the same answer: the request, or the daemon's set-up, must change.
    case no
    /// A bug: perhaps once, to see whether it holds.
    case maybe
    /// The contact may exist by then: not-found answers are cached for `--negative-ttl`.
    case afterNegativeTTL
    /// Yes (after a short pause, on a new connection where the old one ended).
    case yes
    /// After the `retry_after` seconds the error carries, when it carries them.
    case afterRetryAfter
    /// Yes, with a growing pause: a limit was reached.
    case withBackoff

    /// As docs/protocol.md's errors table says it.
    public var description: String {
        switch self {
        case .no: "no"
        case .maybe: "maybe"
        case .afterNegativeTTL: "after `--negative-ttl`"
        case .yes: "yes"
        case .afterRetryAfter: "after `retry_after`"
        case .withBackoff: "yes, with backoff"
        }
    }
}
