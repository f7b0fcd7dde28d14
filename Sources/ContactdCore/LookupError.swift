/// Why a lookup produced no contact. Mapped to a wire error in exactly one place (the server).
package enum LookupError: Error, Sendable, Equatable {
    /// The API says there is no such contact.
    case notFound
    /// The API rejected the token (401/403).
    case unauthorized
    /// The API said 429; `retryAfter` in seconds when it said how long.
    case rateLimited(retryAfter: Double?)
    /// Network error, timeout, reset, 5xx or an open circuit. `retryable` marks the failures worth
    /// another attempt (connect errors, resets, timeouts, 502/503/504); a 500 is not one.
    case unavailable(detail: String, retryAfter: Double?, retryable: Bool = false)
    /// The API answered with something that is not a contact (or an unexpected status).
    case badResponse(detail: String)
    /// The API rejected the key itself (400/422).
    case rejectedByAPI
    /// contactd's own API budget is spent: the queue for an API slot is full, or the wait for
    /// one outlasted the request's deadline.
    case overloaded(detail: String)

    /// Whether another attempt within the same deadline may help.
    package var isRetryable: Bool {
        if case .unavailable(_, _, let retryable) = self { return retryable }
        return false
    }
}
