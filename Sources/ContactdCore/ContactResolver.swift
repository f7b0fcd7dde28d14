import ContactdProtocol
import Histogram
import Logging
import NIOConcurrencyHelpers
import Synchronization

/// Gets contacts from the cache or, on a miss, from the source, under the `UpstreamPolicy`.
///
/// Hits (fresh, and stale ones served while revalidating) are answered synchronously by
/// `cached(_:maxAge:)` so the server can serve them on its event loop without a task. Misses for
/// the same key share one fetch (`get(_:maxAge:)`): the fetch runs in its own task, so a waiter
/// that goes away never cancels it; every waiter keeps its own deadline; the result fills the
/// cache for everyone. A fetch retries transient failures with full-jitter backoff within one
/// deadline, asks the circuit breaker before each call and holds an `APIBudget` slot during it.
package final class ContactResolver: Sendable {
    package let cache: ContactCache
    /// The policy now: a reload replaces it (`reconfigure`).
    package var policy: UpstreamPolicy { live.withLockedValue { $0.policy } }
    package let breaker: CircuitBreaker
    package let budget: APIBudget
    let source: any ContactSource
    /// The cache other hosts share, asked after this one and before the API; `nil`: none.
    let shared: (any SharedTier)?
    /// `.local` when a shared cache is configured (replies then say which tier answered).
    package let localTier: CacheTier?
    /// Told of every API call's outcome and duration (the daemon's metrics); `nil`: nobody.
    let observer: (any APICallObserver)?
    /// Spans for what leaves the hit path; `.off` unless `--otlp-endpoint` is set.
    package let tracing: LookupTracer
    let clock: MonotonicClock
    let logger: Logger
    let flights = NIOLockedValueBox(FlightTable())
    let counters = Counters()
    let health = NIOLockedValueBox(UpstreamHealth())
    /// The policy and the contact TTL (seconds), replaced together by a reload.
    let live: NIOLockedValueBox<(policy: UpstreamPolicy, ttl: Double)>
    /// What every fresh hit asks (is the entry due a refresh ahead?), as two relaxed atomics: no
    /// lock on the hit path, and no `Duration` arithmetic (128-bit) per hit.
    private let refreshAheadReads = Atomic<Int>(0)
    private let refreshAheadAgeBits = Atomic<UInt64>(0)
    /// API call durations in microseconds.
    let latency = NIOLockedValueBox(
        Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .two)
    )

    /// Fetches in progress. A first miss is tracked by the key asked for (the daemon cannot know
    /// yet that two keys are one contact); a background refresh also by the entry it refreshes,
    /// so an entry read by its number and by its id at once is refreshed by one API call.
    struct FlightTable {
        var byKey: [ContactKey: Flight] = [:]
        /// Entries (by contact id) with a background refresh in flight.
        var refreshing: Set<ContactID> = []
    }

    package init(
        cache: ContactCache,
        source: any ContactSource,
        policy: UpstreamPolicy = UpstreamPolicy(),
        clock: MonotonicClock = .system,
        observer: (any APICallObserver)? = nil,
        shared: (any SharedTier)? = nil,
        tracing: LookupTracer = .off,
        logger: Logger = Logger(label: "contactd", factory: { _ in SwiftLogNoOpLogHandler() })
    ) {
        self.cache = cache
        self.tracing = tracing
        self.source = source
        self.shared = shared
        self.localTier = shared == nil ? nil : .local
        self.observer = observer
        self.live = NIOLockedValueBox((policy, cache.ttls.contact))
        self.clock = clock
        self.logger = logger
        self.breaker = CircuitBreaker(
            failureThreshold: policy.breakerFailures,
            cooldown: policy.breakerCooldown.seconds,
            clock: clock
        )
        self.budget = APIBudget(
            maxConcurrent: policy.maxConcurrent,
            ratePerSecond: policy.ratePerSecond,
            burst: policy.rateBurst,
            queueLimit: policy.queueLimit,
            clock: .system  // its waits are real time
        )
        setRefreshAhead(policy, ttl: cache.ttls.contact)
    }

    /// Applies a reloaded policy and TTLs: the cache's freshness, stale windows, refresh-ahead,
    /// retries, deadline, breaker and API budget follow from the next lookup. Fetches in flight
    /// finish under the policy they started with.
    package func reconfigure(policy: UpstreamPolicy, ttl: Duration, negativeTTL: Duration) {
        cache.setTTLs(contact: ttl, notFound: negativeTTL)
        live.withLockedValue { $0 = (policy, ttl.seconds) }
        setRefreshAhead(policy, ttl: ttl.seconds)
        breaker.reconfigure(failureThreshold: policy.breakerFailures, cooldown: policy.breakerCooldown.seconds)
        budget.reconfigure(
            maxConcurrent: policy.maxConcurrent,
            ratePerSecond: policy.ratePerSecond,
            burst: policy.rateBurst,
            queueLimit: policy.queueLimit
        )
    }

    private func setRefreshAhead(_ policy: UpstreamPolicy, ttl: Double) {
        // Off (0) is a read count no entry reaches.
        refreshAheadReads.store(policy.refreshAhead > 0 ? policy.refreshAheadReads : .max, ordering: .relaxed)
        refreshAheadAgeBits.store((ttl * policy.refreshAhead).bitPattern, ordering: .relaxed)
    }

    // MARK: - Answering

    /// The answer from the cache alone, or `nil` when the source must be asked.
    ///
    /// `maxAge` (seconds) rejects entries older than it; 0 rejects every entry. A fresh not-found
    /// entry answers `.failure(.notFound)`. A contact past its TTL but within `staleTTL` is
    /// answered as stale and refreshed in the background (unless the token is rejected: then the
    /// caller must ask, and learn that). A hot fresh entry near its TTL is refreshed ahead.
    package func cached(_ key: ContactKey, maxAge: Double?) -> Result<LookupResult, LookupError>? {
        guard let entry = cache.read(key) else { return nil }
        if let maxAge, maxAge <= 0 || entry.age > maxAge { return nil }
        if entry.isFresh {
            counters.hits.add(1, ordering: .relaxed)
            switch entry.value {
            case .contact(let contact):
                if refreshAheadDue(reads: entry.reads, age: entry.age) { refreshAhead(key, entry: contact.id) }
                return .success(LookupResult(contact: contact, status: .hit, age: entry.age, tier: localTier))
            case .notFound:
                return .failure(.notFound)
            }
        }
        let (policy, ttl) = live.withLockedValue { $0 }
        guard case .contact(let contact) = entry.value, entry.age < ttl + policy.staleTTL.seconds,
            let reason = revalidate(key, entry: contact.id)
        else { return nil }
        counters.staleHits.add(1, ordering: .relaxed)
        return .success(
            LookupResult(contact: contact, status: .stale, age: entry.age, staleReason: reason, tier: localTier)
        )
    }

    /// What `writeHit(_:maxAge:_:)` found.
    package enum InPlaceHit: Sendable, Equatable {
        /// A fresh contact, handed to the writer.
        case wrote
        /// A fresh not-found entry: the answer is `.failure(.notFound)`.
        case notFound
        /// Nothing `cached(_:maxAge:)` would answer from at once with a plain hit: ask it.
        case none
    }

    /// Hands a fresh cached contact for the key to `write` in place, as `cached(_:maxAge:)` would
    /// answer it with status hit, without copying it out of the cache. The key is given as
    /// `ContactKey.withBytes` gives it (the fast lane has those bytes from the request line).
    ///
    /// `write` runs under the cache's lock and must only copy the bytes. Absent, expired and
    /// too-old (`maxAge`) entries give `.none`; the caller then asks `cached(_:maxAge:)`, which
    /// reads the entry again. This is the hit path: `cached` copies the contact into an array
    /// (the cache keeps no Swift object per contact), which cost an allocation per hit.
    package func writeHit(
        kind: ContactKey.Kind,
        bytes: UnsafeRawBufferPointer,
        maxAge: Double?,
        _ write: (_ json: UnsafeRawBufferPointer, _ age: Double) -> Void
    ) -> InPlaceHit {
        var refreshEntry: ContactID?
        let found =
            cache.read(kind: kind, bytes: bytes) { entry -> InPlaceHit in
                if let maxAge, maxAge <= 0 || entry.age > maxAge { return .none }
                guard entry.isFresh else { return .none }
                guard let json = entry.json else { return .notFound }
                write(json, entry.age)
                // Rare (once an entry is hot and near its TTL): only then is its id copied out.
                if refreshAheadDue(reads: entry.reads, age: entry.age), let id = entry.id,
                    case .id(let contactID)? = ContactKey(kind: .id, bytes: id)
                {
                    refreshEntry = contactID
                }
                return .wrote
            } ?? .none
        if found != .none { counters.hits.add(1, ordering: .relaxed) }
        // Not under the cache's lock: starting a refresh takes the flights lock, which `get`
        // holds while it probes the cache.
        if let refreshEntry, let key = ContactKey(kind: kind, bytes: bytes) { refreshAhead(key, entry: refreshEntry) }
        return found
    }

    /// The contact for `key`, from the cache when it can, else from one shared fetch.
    ///
    /// Waits at most `policy.deadline` from `since` (when the request was received, on
    /// `MonotonicClock.system`; now if not given). When the fetch fails with `upstream_unavailable`,
    /// `rate_limited` or `overloaded` and a contact within `staleIfError` is cached (and `maxAge`
    /// allows it), that contact is the answer, marked stale with the reason.
    package func get(_ key: ContactKey, maxAge: Double?, since: Double? = nil) async -> Result<
        LookupResult, LookupError
    > {
        let since = since ?? MonotonicClock.system.now()
        if let answer = cached(key, maxAge: maxAge) { return answer }
        counters.misses.add(1, ordering: .relaxed)
        let flight: Flight? = flights.withLockedValue { flights in
            if let flight = flights.byKey[key] { return flight }
            // Re-check under the flights lock: a fetch that just finished filled the cache before
            // it left `flights`, so this sees either its flight or its result, never neither.
            // (Looked at in place: `probe` would copy the contact out, under the flights lock.)
            if maxAge == nil, cache.read(key, { $0.isFresh }) == true { return nil }
            return startFlight(key, in: &flights, refreshing: nil, started: since)
        }
        guard let flight else {
            return cached(key, maxAge: maxAge)
                ?? .failure(.unavailable(detail: "entry vanished", retryAfter: nil))
        }
        let policy = self.policy
        let left = policy.deadline.seconds - (MonotonicClock.system.now() - since)
        var answer: Result<Fetch, LookupError>?
        if policy.staleIfErrorWait < policy.deadline, health.withLockedValue({ $0.token == .accepted }),
            staleIfErrorEntry(key, maxAge: maxAge, pastTTL: true) != nil
        {
            // A stale answer is there if the API fails: do not make the caller wait the whole
            // deadline for a slow one (the fetch goes on and fills the cache when it lands).
            answer = await flight.wait(timeout: min(left, policy.staleIfErrorWait.seconds))
            if answer == nil, let stale = staleIfError(key, maxAge: maxAge, reason: .upstreamSlow, pastTTL: true) {
                return .success(stale)
            }
        }
        let result =
            if let answer { answer } else {
                await flight.wait(timeout: policy.deadline.seconds - (MonotonicClock.system.now() - since))
                    ?? .failure(
                        .unavailable(
                            detail: "no answer within the \(policy.deadline.settingText) deadline",
                            retryAfter: nil
                        )
                    )
            }
        switch result {
        case .success(let fetch):
            return .success(
                LookupResult(
                    contact: fetch.contact,
                    status: fetch.tier == .shared ? .hit : .miss,
                    age: fetch.age,
                    tier: shared == nil ? nil : fetch.tier
                )
            )
        case .failure(let error):
            if let stale = staleIfError(key, maxAge: maxAge, error: error) { return .success(stale) }
            return .failure(error)
        }
    }

    /// Whether a fresh entry read `reads` times at `age` seconds is hot and near enough its TTL to
    /// be refreshed ahead (`cached` and `writeHit` decide alike).
    private func refreshAheadDue(reads: Int, age: Double) -> Bool {
        reads >= refreshAheadReads.load(ordering: .relaxed)
            && age >= Double(bitPattern: refreshAheadAgeBits.load(ordering: .relaxed))
    }

    /// Zeroes the counters `cache.stats` reports (hits, misses, API calls, retries, evictions, the
    /// latency percentiles, times the circuit opened); levels (entries, bytes, calls in flight,
    /// queue depth, the circuit's state) stay as they are.
    package func resetStatistics() {
        counters.reset()
        latency.withLockedValue { $0.reset() }
        cache.resetEvictions()
        breaker.resetOpenedCount()
    }

    // MARK: - Administration

    /// Invalidates `key` here and, with a shared cache, in it and on every other host.
    ///
    /// From the moment it returns, no lookup here answers a version fetched before it: the entry
    /// is gone under all its keys, fetches in flight for those keys will not store what they
    /// bring (their waiters still hear it), and new lookups start a fetch of their own
    /// (docs/caching.md, "The invalidation rule"). The fleet part is awaited, within the shared
    /// cache's timeout, so the reply can say whether it happened.
    package func invalidate(_ key: ContactKey) async -> Invalidation {
        // The contact's other keys too: the shared cache holds it under each of them.
        var keys = [key]
        if case .contact(let contact)? = cache.read(key)?.value {
            keys += contact.ownKeys.filter { $0 != key }
        }
        let removed = dropLocally(keys)
        guard let shared else { return Invalidation(removed: removed, fleet: nil) }
        return Invalidation(removed: removed, fleet: await shared.invalidate(keys))
    }

    /// Empties the cache here (it goes on caching as before) and, with a shared cache, on every host.
    package func invalidateAll() async -> Invalidation {
        let removed = dropAllLocally()
        guard let shared else { return Invalidation(removed: removed, fleet: nil) }
        return Invalidation(removed: removed, fleet: await shared.invalidateAll())
    }

    /// Invalidates `keys` on this host only (also what another host's invalidation message does):
    /// removes their entries and detaches every fetch in flight, whose results the cache will
    /// refuse where they touch these keys. Returns the number of entries removed.
    ///
    /// Every fetch, not only those for `keys`: a fetch by phone number may bring the contact an
    /// invalidation by id names, and until it lands nobody can tell. Invalidations are rare; a
    /// lookup joining a fetch begun before one would answer what it voided.
    @discardableResult
    package func dropLocally(_ keys: [ContactKey]) -> Int {
        flights.withLockedValue { $0.byKey = [:] }
        return keys.reduce(0) { $0 + cache.remove($1) }
    }

    /// Empties this host's cache only and detaches every fetch in flight.
    @discardableResult
    package func dropAllLocally() -> Int {
        flights.withLockedValue { $0.byKey = [:] }
        return cache.removeAll()
    }

    /// Called after the token is read again (SIGHUP). Ends the token-rejected state; when the
    /// token really changed, also drops the not-found entries learned with the old one.
    package func tokenReloaded(changed: Bool) {
        perform(health.withLockedValue { $0.tokenReloaded(changed: changed) })
    }

    /// How the API answered last: `nil` if its last answer was a contact or not-found (or it was
    /// never asked), else the error.
    package var upstreamFailure: LookupError? {
        health.withLockedValue { $0.lastFailure }
    }

    /// Counters since start, and the state of the breaker, budget and token.
    package var stats: LookupStats {
        let (entries, bytes, evictions) = cache.counts
        let now = clock.now()
        let breakerState = breaker.snapshot
        let (tokenRejected, staleFor) = health.withLockedValue { h in
            (h.token != .accepted, h.staleSince.map { now - $0 })
        }
        let histogram = latency.withLockedValue { $0 }
        func millis(_ percentile: Double) -> Double {
            histogram.totalCount == 0 ? 0 : Double(histogram.valueAtPercentile(percentile)) / 1000
        }
        var stats = LookupStats(
            entries: entries,
            bytes: bytes,
            hits: counters.hits.load(ordering: .relaxed),
            misses: counters.misses.load(ordering: .relaxed),
            evictions: evictions,
            upstreamRequests: counters.upstreamRequests.load(ordering: .relaxed),
            upstreamErrors: counters.upstreamErrors.load(ordering: .relaxed),
            upstreamInFlight: counters.upstreamInFlight.load(ordering: .relaxed)
        )
        stats.heldBytes = cache.slabBytes
        stats.policy = cache.policy
        stats.staleHits = counters.staleHits.load(ordering: .relaxed)
        stats.staleIfError = counters.staleIfError.load(ordering: .relaxed)
        stats.refreshes = counters.refreshes.load(ordering: .relaxed)
        stats.refreshAheads = counters.refreshAheads.load(ordering: .relaxed)
        stats.retries = counters.retries.load(ordering: .relaxed)
        stats.circuitState = breakerState.state.reported
        stats.circuitOpened = breakerState.opened
        stats.circuitRefusals = counters.circuitRefusals.load(ordering: .relaxed)
        stats.overloaded = counters.overloaded.load(ordering: .relaxed)
        stats.queueDepth = budget.queued
        stats.tokenRejected = tokenRejected
        stats.servingStaleFor = staleFor
        stats.latencyMilliseconds = LookupStats.Latency(
            p50: millis(50),
            p90: millis(90),
            p99: millis(99),
            max: histogram.totalCount == 0 ? 0 : Double(histogram.max) / 1000
        )
        return stats
    }
}
