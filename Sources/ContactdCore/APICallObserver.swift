/// How one call to the API ended, as the daemon's metrics count it.
package enum APICallOutcome: String, Sendable, CaseIterable {
    /// A contact.
    case ok
    /// The API has no such contact.
    case notFound = "not_found"
    /// The API refused the key itself (400/422).
    case rejectedKey = "rejected_key"
    /// The API refused the token (401/403).
    case unauthorized
    /// 429.
    case rateLimited = "rate_limited"
    /// No usable answer: a connect failure, reset, timeout or 5xx.
    case unavailable
    /// An answer that is not a contact.
    case badResponse = "bad_response"

    package init(_ result: Result<APIContact, LookupError>) {
        switch result {
        case .success: self = .ok
        case .failure(.notFound): self = .notFound
        case .failure(.rejectedByAPI): self = .rejectedKey
        case .failure(.unauthorized): self = .unauthorized
        case .failure(.rateLimited): self = .rateLimited
        case .failure(.unavailable), .failure(.overloaded): self = .unavailable
        case .failure(.badResponse): self = .badResponse
        }
    }
}

/// Told of every API call as it ends: the daemon's metrics (`DaemonMetrics`) count and time
/// them. Called on the fetching task, never on the hit path.
package protocol APICallObserver: Sendable {
    func apiCallFinished(_ outcome: APICallOutcome, after duration: Duration)
}
