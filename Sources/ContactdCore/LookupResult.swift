import ContactdProtocol

/// A contact and how it was served.
package struct LookupResult: Sendable, Equatable {
    package let contact: APIContact
    package let status: CacheStatus
    /// Seconds since the API sent this contact.
    package let age: Double
    /// Set exactly when `status` is `.stale`.
    package let staleReason: StaleReason?
    /// Which cache answered; `nil` when no shared cache is configured (the reply then has none).
    package let tier: CacheTier?

    package init(
        contact: APIContact,
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
