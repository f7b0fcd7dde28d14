/// Why a lookup produced no contact. Mapped to a wire error in exactly one place (the server).
package enum LookupError: Error, Sendable, Equatable {
    /// The API says there is no such contact.
    case notFound
    /// The API rejected the token (401/403).
    case unauthorized
    /// The API said 429; `retryAfter` in seconds when it said how long.
    case rateLimited(retryAfter: Double?)
    /// Network error, timeout, reset or 5xx.
    case unavailable(detail: String, retryAfter: Double?)
    /// The API answered with something that is not a contact (or an unexpected status).
    case badResponse(detail: String)
    /// The API rejected the key itself (400/422).
    case rejectedByAPI
}
