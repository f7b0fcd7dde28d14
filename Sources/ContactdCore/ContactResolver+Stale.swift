import ContactdProtocol
import NIOConcurrencyHelpers
import Synchronization

// MARK: - Stale answers: serving an entry past its TTL, refreshing it behind, stale-if-error

extension ContactResolver {
    /// The reason a stale entry may be served now, starting a background refresh if one is due;
    /// `nil` when it may not (the token is rejected: the caller should hear that).
    func revalidate(_ key: ContactKey, entry: ContactID) -> StaleReason? {
        let now = clock.now()
        switch health.withLockedValue({ $0.staleVerdict(for: key, now: now) }) {
        case .refuse: return nil
        case .serveHeld(let reason): return reason
        case .serveAndRefresh: break
        }
        if breaker.isRefusing {
            health.withLockedValue { $0.servedStale(now: now) }
            return .circuitOpen
        }
        flights.withLockedValue { flights in
            _ = startRefresh(key, entry: entry, in: &flights)
        }
        return .refreshing
    }

    /// Starts a background refresh of a hot entry unless one runs or the API should be left alone.
    func refreshAhead(_ key: ContactKey, entry: ContactID) {
        let now = clock.now()
        guard health.withLockedValue({ $0.mayRefreshAhead(key, now: now) }), !breaker.isRefusing else { return }
        flights.withLockedValue { flights in
            if startRefresh(key, entry: entry, in: &flights) { counters.refreshAheads.add(1, ordering: .relaxed) }
        }
    }

    /// Starts a background refresh of `entry`, fetched by `key`, unless a fetch for that key or
    /// a refresh of that entry (through any of its keys) is in flight; the caller holds the
    /// flights lock. Returns whether it started one.
    func startRefresh(_ key: ContactKey, entry: ContactID, in flights: inout FlightTable) -> Bool {
        guard flights.byKey[key] == nil, !flights.refreshing.contains(entry) else { return false }
        _ = startFlight(key, in: &flights, refreshing: entry, started: MonotonicClock.system.now())
        return true
    }

    func staleIfError(_ key: ContactKey, maxAge: Double?, error: LookupError) -> LookupResult? {
        switch error {
        case .unavailable:
            staleIfError(key, maxAge: maxAge, reason: breaker.isRefusing ? .circuitOpen : .upstreamUnavailable)
        case .rateLimited, .overloaded: staleIfError(key, maxAge: maxAge, reason: .rateLimited)
        default: nil
        }
    }

    /// The cached contact for `key` if it may be answered stale-if-error (within its window, as
    /// `maxAge` allows). `pastTTL`: only an entry past its TTL (a fresh one may be one the fetch
    /// being waited for has just stored, and is no stale answer).
    func staleIfErrorEntry(_ key: ContactKey, maxAge: Double?, pastTTL: Bool = false) -> (
        contact: APIContact, age: Double
    )? {
        guard let entry = cache.read(key), case .contact(let contact) = entry.value,
            entry.age < live.withLockedValue({ $0.ttl + $0.policy.staleIfError.seconds }),
            !pastTTL || !entry.isFresh
        else { return nil }
        if let maxAge, maxAge <= 0 || entry.age > maxAge { return nil }
        return (contact, entry.age)
    }

    func staleIfError(
        _ key: ContactKey,
        maxAge: Double?,
        reason: StaleReason,
        pastTTL: Bool = false
    ) -> LookupResult? {
        guard let (contact, age) = staleIfErrorEntry(key, maxAge: maxAge, pastTTL: pastTTL) else { return nil }
        counters.staleIfError.add(1, ordering: .relaxed)
        let now = clock.now()
        health.withLockedValue { $0.servedStale(now: now) }
        return LookupResult(contact: contact, status: .stale, age: age, staleReason: reason, tier: localTier)
    }
}
