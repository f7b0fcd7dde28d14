/// An entry some host stored in the shared cache, and how old its answer is.
package struct SharedEntry: Sendable, Equatable {
    package var value: CachedValue
    /// Seconds since the API gave the answer (wall clock, whichever host it was).
    package var age: Double

    package init(value: CachedValue, age: Double) {
        self.value = value
        self.age = age
    }
}

/// What the shared cache said about a key this host is about to fetch.
package enum SharedLookup: Sendable, Equatable {
    /// Some host stored it.
    case found(SharedEntry)
    /// Nobody has: this host now holds the fleet's claim on fetching it (the token releases it).
    case claimed(token: String)
    /// Nobody has, and another host is fetching it now.
    case fetchedElsewhere
    /// The shared cache did not answer (down, slow, not configured right): go on without it.
    case unavailable

    /// As a trace attribute says it.
    package var name: String {
        switch self {
        case .found: "found"
        case .claimed: "claimed"
        case .fetchedElsewhere: "fetched_elsewhere"
        case .unavailable: "unavailable"
        }
    }
}

/// A cache several hosts share, asked after this host's cache and before the API.
///
/// Every call is bounded by the tier's own timeout and never throws: a shared cache that cannot
/// answer is one that has nothing, and the lookup goes on as it would without one. The store and
/// invalidation calls return at once; their writes go out behind the lookup.
package protocol SharedTier: Sendable {
    /// The entry for `key`, or when there is none, the fleet's claim on fetching it for `lease`
    /// seconds (asked in the same round trip).
    func lookUp(_ key: ContactKey, lease: Double) async -> SharedLookup
    /// Waits until another host's fetch of `key` lands, at most until `deadline`
    /// (`MonotonicClock.system` seconds); `nil` if it did not.
    func awaitPeer(_ key: ContactKey, until deadline: Double) async -> SharedEntry?
    /// Shares what the API answered for `key` (a contact also under its number and id), kept for
    /// `lifetime` seconds, if `claim` is still held: an invalidation since voids the claim, and
    /// the value is then not stored (the lease rule, docs/scale.md). Releases the claim.
    func store(_ value: CachedValue, for key: ContactKey, lifetime: Double, claim: String)
    /// Gives up the claim on fetching `key` without sharing anything (the fetch failed).
    func release(_ claim: String, for key: ContactKey)
    /// Removes `keys` from the shared cache, voids every claim on fetching them, and tells every
    /// host to drop them; whether that was done (Redis answered in time).
    func invalidate(_ keys: [ContactKey]) async -> Bool
    /// Tells every host to empty its cache, and empties the shared one; whether that was done.
    func invalidateAll() async -> Bool
}

/// What `contact.invalidate` did.
package struct Invalidation: Sendable, Equatable {
    /// Entries removed on this host.
    package var removed: Int
    /// With a shared cache, whether the fleet part (Redis and the other hosts) was done; `nil`
    /// without one.
    package var fleet: Bool?

    package init(removed: Int, fleet: Bool?) {
        self.removed = removed
        self.fleet = fleet
    }
}
