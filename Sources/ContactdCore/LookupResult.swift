/// How a contact was served.
package enum CacheStatus: String, Sendable, CaseIterable {
    case hit
    case miss
    case stale
}

/// Why an answer was stale (`cache.stale_reason`), so an outage never hides behind a hit ratio.
package enum StaleReason: String, Sendable, CaseIterable {
    /// Past its TTL, within `stale_ttl`; a background refresh is running.
    case refreshing
    /// The API failed (or failed the last refresh of this entry).
    case upstreamUnavailable = "upstream_unavailable"
    /// The API said 429, or contactd's own API budget is spent.
    case rateLimited = "rate_limited"
    /// The circuit breaker is open: the API is not being called.
    case circuitOpen = "circuit_open"
    /// The API has not answered within `--stale-if-error-wait`; the fetch goes on behind.
    case upstreamSlow = "upstream_slow"
}

/// A contact and how it was served.
package struct LookupResult: Sendable, Equatable {
    package let contact: Contact
    package let status: CacheStatus
    /// Seconds since the API sent this contact.
    package let age: Double
    /// Set exactly when `status` is `.stale`.
    package let staleReason: StaleReason?
    /// Which cache answered; `nil` when no shared cache is configured (the reply then has none).
    package let tier: CacheTier?

    package init(
        contact: Contact,
        status: CacheStatus,
        age: Double,
        staleReason: StaleReason? = nil,
        tier: CacheTier? = nil
    ) {
        self.contact = contact
        self.status = status
        self.age = age
        self.staleReason = staleReason
        self.tier = tier
    }
}
