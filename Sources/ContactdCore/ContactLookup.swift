import Synchronization

/// How a contact was served.
package enum CacheStatus: String, Sendable {
    case hit
    case miss
    case stale
}

/// A contact and how it was served.
package struct LookupResult: Sendable, Equatable {
    package let contact: Contact
    package let status: CacheStatus
    /// Seconds since the API sent this contact.
    package let age: Double
}

/// Gets contacts from the cache or, on a miss, from the source: one fetch per key at a time.
///
/// Hits are answered synchronously (`cached(_:maxAge:)`) so the server can serve them on its event
/// loop without a task. Misses for the same key share one fetch (`get(_:maxAge:)`); the fetch runs
/// in its own task, so a waiter that goes away never cancels it, and the result fills the cache
/// for everyone.
package final class ContactLookup: Sendable {
    package let cache: ContactCache
    private let source: any ContactSource
    private let flights = Mutex<[ContactKey: Flight]>([:])
    private let counters = Counters()
    /// The last upstream failure (other than not-found), cleared by the next answer; for STATUS=.
    private let lastUpstreamFailure = Mutex<LookupError?>(nil)

    private struct Flight: Sendable {
        let number: Int
        let task: Task<Result<Contact, LookupError>, Never>
    }

    package init(cache: ContactCache, source: any ContactSource) {
        self.cache = cache
        self.source = source
    }

    /// The answer from the cache alone, or `nil` when the source must be asked.
    ///
    /// `maxAge` (seconds) rejects entries older than it; 0 rejects every entry. A fresh not-found
    /// entry answers `.failure(.notFound)`. Counts a hit when it answers.
    package func cached(_ key: ContactKey, maxAge: Double?) -> Result<LookupResult, LookupError>? {
        guard let answer = Self.answer(cache.probe(key), maxAge: maxAge) else { return nil }
        counters.hits.add(1, ordering: .relaxed)
        return answer
    }

    private static func answer(_ probe: CacheProbe, maxAge: Double?) -> Result<LookupResult, LookupError>? {
        guard case .fresh(let value, let age) = probe else { return nil }
        if let maxAge, maxAge <= 0 || age > maxAge { return nil }
        switch value {
        case .contact(let contact): return .success(LookupResult(contact: contact, status: .hit, age: age))
        case .notFound: return .failure(.notFound)
        }
    }

    /// The contact for `key`, from the cache when it can, else from one shared fetch.
    package func get(_ key: ContactKey, maxAge: Double?) async -> Result<LookupResult, LookupError> {
        if let answer = cached(key, maxAge: maxAge) { return answer }
        counters.misses.add(1, ordering: .relaxed)
        let task: Task<Result<Contact, LookupError>, Never>? = flights.withLock { flights in
            if let flight = flights[key] { return flight.task }
            // Re-check under the flights lock: a fetch that just finished filled the cache before
            // it left `flights`, so this sees either its flight or its result, never neither.
            if maxAge == nil, case .fresh = cache.probe(key) { return nil }
            let number = counters.flightNumbers.add(1, ordering: .relaxed).newValue
            let task = Task { await self.fetch(key, flight: number) }
            flights[key] = Flight(number: number, task: task)
            return task
        }
        guard let task else {
            return cached(key, maxAge: maxAge) ?? .failure(.unavailable(detail: "entry vanished", retryAfter: nil))
        }
        switch await task.value {
        case .success(let contact): return .success(LookupResult(contact: contact, status: .miss, age: 0))
        case .failure(let error): return .failure(error)
        }
    }

    private func fetch(_ key: ContactKey, flight number: Int) async -> Result<Contact, LookupError> {
        counters.upstreamRequests.add(1, ordering: .relaxed)
        counters.upstreamInFlight.add(1, ordering: .relaxed)
        let result: Result<Contact, LookupError>
        do {
            result = .success(try await source.fetch(key))
        } catch {
            result = .failure(error)
        }
        counters.upstreamInFlight.subtract(1, ordering: .relaxed)
        switch result {
        case .success(let contact):
            cache.insert(.contact(contact), for: key)
            lastUpstreamFailure.withLock { $0 = nil }
        case .failure(.notFound):
            cache.insert(.notFound, for: key)
            lastUpstreamFailure.withLock { $0 = nil }
        case .failure(let error):
            counters.upstreamErrors.add(1, ordering: .relaxed)
            lastUpstreamFailure.withLock { $0 = error }
        }
        flights.withLock { flights in
            if flights[key]?.number == number { flights[key] = nil }
        }
        return result
    }

    /// Removes the entry for `key`; returns the number of entries removed.
    package func invalidate(_ key: ContactKey) -> Int { cache.remove(key) }

    /// Removes every entry; returns the number of entries removed.
    package func invalidateAll() -> Int { cache.removeAll() }

    /// How the API answered last: `nil` if its last answer was a contact or not-found (or it was
    /// never asked), else the error.
    package var upstreamFailure: LookupError? {
        lastUpstreamFailure.withLock { $0 }
    }

    /// Counters since start.
    package var stats: LookupStats {
        let (entries, bytes, evictions) = cache.counts
        return LookupStats(
            entries: entries,
            bytes: bytes,
            hits: counters.hits.load(ordering: .relaxed),
            misses: counters.misses.load(ordering: .relaxed),
            evictions: evictions,
            upstreamRequests: counters.upstreamRequests.load(ordering: .relaxed),
            upstreamErrors: counters.upstreamErrors.load(ordering: .relaxed),
            upstreamInFlight: counters.upstreamInFlight.load(ordering: .relaxed)
        )
    }
}

/// Cache and upstream counters, as `cache.stats` reports them.
package struct LookupStats: Sendable, Equatable {
    package var entries: Int
    package var bytes: Int
    package var hits: Int
    package var misses: Int
    package var evictions: Int
    package var upstreamRequests: Int
    /// Upstream calls that failed other than with not-found.
    package var upstreamErrors: Int
    package var upstreamInFlight: Int

    package init(
        entries: Int,
        bytes: Int,
        hits: Int,
        misses: Int,
        evictions: Int,
        upstreamRequests: Int,
        upstreamErrors: Int,
        upstreamInFlight: Int
    ) {
        self.entries = entries
        self.bytes = bytes
        self.hits = hits
        self.misses = misses
        self.evictions = evictions
        self.upstreamRequests = upstreamRequests
        self.upstreamErrors = upstreamErrors
        self.upstreamInFlight = upstreamInFlight
    }

    /// Hits over all lookups, 0 when there were none.
    package var hitRatio: Double {
        hits + misses == 0 ? 0 : Double(hits) / Double(hits + misses)
    }
}

private final class Counters: Sendable {
    let hits = Atomic<Int>(0)
    let misses = Atomic<Int>(0)
    let upstreamRequests = Atomic<Int>(0)
    let upstreamErrors = Atomic<Int>(0)
    let upstreamInFlight = Atomic<Int>(0)
    let flightNumbers = Atomic<Int>(0)
}
