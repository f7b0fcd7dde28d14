import Histogram
import Logging
import NIOConcurrencyHelpers
import Synchronization

/// How a contact was served.
package enum CacheStatus: String, Sendable {
    case hit
    case miss
    case stale
}

/// Why an answer was stale (`cache.stale_reason`), so an outage never hides behind a hit ratio.
package enum StaleReason: String, Sendable {
    /// Past its TTL, within `stale_ttl`; a background refresh is running.
    case refreshing
    /// The API failed (or failed the last refresh of this entry).
    case upstreamUnavailable = "upstream_unavailable"
    /// The API said 429, or contactd's own API budget is spent.
    case rateLimited = "rate_limited"
    /// The circuit breaker is open: the API is not being called.
    case circuitOpen = "circuit_open"
}

/// A contact and how it was served.
package struct LookupResult: Sendable, Equatable {
    package let contact: Contact
    package let status: CacheStatus
    /// Seconds since the API sent this contact.
    package let age: Double
    /// Set exactly when `status` is `.stale`.
    package let staleReason: StaleReason?

    package init(contact: Contact, status: CacheStatus, age: Double, staleReason: StaleReason? = nil) {
        self.contact = contact
        self.status = status
        self.age = age
        self.staleReason = staleReason
    }
}

/// Gets contacts from the cache or, on a miss, from the source, under the `UpstreamPolicy`.
///
/// Hits (fresh, and stale ones served while revalidating) are answered synchronously by
/// `cached(_:maxAge:)` so the server can serve them on its event loop without a task. Misses for
/// the same key share one fetch (`get(_:maxAge:)`): the fetch runs in its own task, so a waiter
/// that goes away never cancels it; every waiter keeps its own deadline; the result fills the
/// cache for everyone. A fetch retries transient failures with full-jitter backoff within one
/// deadline, asks the circuit breaker before each call and holds an `APIBudget` slot during it.
package final class ContactLookup: Sendable {
    package let cache: ContactCache
    package let policy: UpstreamPolicy
    package let breaker: CircuitBreaker
    package let budget: APIBudget
    private let source: any ContactSource
    private let clock: MonotonicClock
    private let logger: Logger
    private let flights = NIOLockedValueBox(FlightTable())
    private let counters = Counters()
    private let health = NIOLockedValueBox(Health())
    /// API call durations in microseconds.
    private let latency = NIOLockedValueBox(
        Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .two)
    )

    /// Fetches in progress. A first miss is tracked by the key asked for (the daemon cannot know
    /// yet that two keys are one contact); a background refresh also by the entry it refreshes,
    /// so an entry read by its number and by its id at once is refreshed by one API call.
    private struct FlightTable {
        var byKey: [ContactKey: Flight] = [:]
        /// Entries (by contact id) with a background refresh in flight.
        var refreshing: Set<ContactID> = []
    }

    /// Most keys with a remembered hold (429 or failed refresh); older ones are dropped first.
    private static let maximumHolds = 10_000

    /// What the API has told us lately, beyond single entries.
    private struct Health {
        /// The last API failure (other than not-found); cleared by the next answer.
        var lastFailure: LookupError?
        /// Bumped when the token changes; not-found entries and the token-rejected state carry it.
        var generation = 0
        /// Set by a 401/403 with the current token: when it began and when the API was last tried.
        var tokenRejected: (since: Double, lastTry: Double)?
        /// Per key: no background refresh (and after a 429, no fetch at all) before `until`.
        var holds: [ContactKey: Hold] = [:]
        /// After a 429 with `rateLimitAllKeys`: no fetch for any key before this.
        var globalHoldUntil = 0.0
        /// Since when answers have been stale because the API failed; cleared by a good answer.
        var staleSince: Double?
    }

    private struct Hold {
        var until: Double
        var reason: StaleReason
        /// Whether foreground fetches wait too (429), or only background refreshes (a failure).
        var blocksFetches: Bool
    }

    package init(
        cache: ContactCache,
        source: any ContactSource,
        policy: UpstreamPolicy = UpstreamPolicy(),
        clock: MonotonicClock = .system,
        logger: Logger = Logger(label: "contactd", factory: { _ in SwiftLogNoOpLogHandler() })
    ) {
        self.cache = cache
        self.source = source
        self.policy = policy
        self.clock = clock
        self.logger = logger
        self.breaker = CircuitBreaker(
            failureThreshold: policy.breakerFailures,
            cooldown: policy.breakerCooldown,
            clock: clock
        )
        self.budget = APIBudget(
            maxConcurrent: policy.maxConcurrent,
            ratePerSecond: policy.ratePerSecond,
            burst: policy.rateBurst,
            queueLimit: policy.queueLimit,
            clock: .system  // its waits are real time
        )
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
        let ttl = cache.configuration.ttl
        if entry.isFresh {
            counters.hits.add(1, ordering: .relaxed)
            switch entry.value {
            case .contact(let contact):
                if refreshAheadDue(reads: entry.reads, age: entry.age) { refreshAhead(key, entry: contact.id) }
                return .success(LookupResult(contact: contact, status: .hit, age: entry.age))
            case .notFound:
                return .failure(.notFound)
            }
        }
        guard case .contact(let contact) = entry.value, entry.age < ttl + policy.staleTTL,
            let reason = revalidate(key, entry: contact.id)
        else { return nil }
        counters.staleHits.add(1, ordering: .relaxed)
        return .success(LookupResult(contact: contact, status: .stale, age: entry.age, staleReason: reason))
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
    /// Waits at most `policy.deadline` seconds from `since` (when the request was received, on
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
        let result =
            await flight.wait(timeout: policy.deadline - (MonotonicClock.system.now() - since))
            ?? .failure(.unavailable(detail: "no answer within the \(policy.deadline)s deadline", retryAfter: nil))
        switch result {
        case .success(let contact):
            return .success(LookupResult(contact: contact, status: .miss, age: 0))
        case .failure(let error):
            if let stale = staleIfError(key, maxAge: maxAge, error: error) { return .success(stale) }
            return .failure(error)
        }
    }

    /// The reason a stale entry may be served now, starting a background refresh if one is due;
    /// `nil` when it may not (the token is rejected: the caller should hear that).
    private func revalidate(_ key: ContactKey, entry: ContactID) -> StaleReason? {
        let now = clock.now()
        let hold: StaleReason?? = health.withLockedValue { health in
            if health.tokenRejected != nil { return .some(nil) }
            if health.globalHoldUntil > now {
                health.staleSince = health.staleSince ?? now
                return .rateLimited
            }
            if let hold = health.holds[key], hold.until > now {
                health.staleSince = health.staleSince ?? now
                return hold.reason
            }
            return nil
        }
        if let hold { return hold }
        if breaker.isRefusing {
            health.withLockedValue { $0.staleSince = $0.staleSince ?? now }
            return .circuitOpen
        }
        flights.withLockedValue { flights in
            _ = startRefresh(key, entry: entry, in: &flights)
        }
        return .refreshing
    }

    /// Starts a background refresh of a hot entry unless one runs or the API should be left alone.
    /// Whether a fresh entry read `reads` times at `age` seconds is hot and near enough its TTL to
    /// be refreshed ahead (`cached` and `writeHit` decide alike).
    private func refreshAheadDue(reads: Int, age: Double) -> Bool {
        policy.refreshAhead > 0 && reads >= policy.refreshAheadReads
            && age >= cache.configuration.ttl * policy.refreshAhead
    }

    private func refreshAhead(_ key: ContactKey, entry: ContactID) {
        let now = clock.now()
        let heldBack = health.withLockedValue { health in
            health.tokenRejected != nil || health.globalHoldUntil > now || (health.holds[key]?.until ?? 0) > now
        }
        guard !heldBack, !breaker.isRefusing else { return }
        flights.withLockedValue { flights in
            if startRefresh(key, entry: entry, in: &flights) { counters.refreshAheads.add(1, ordering: .relaxed) }
        }
    }

    /// Starts a background refresh of `entry`, fetched by `key`, unless a fetch for that key or
    /// a refresh of that entry (through any of its keys) is in flight; the caller holds the
    /// flights lock. Returns whether it started one.
    private func startRefresh(_ key: ContactKey, entry: ContactID, in flights: inout FlightTable) -> Bool {
        guard flights.byKey[key] == nil, !flights.refreshing.contains(entry) else { return false }
        _ = startFlight(key, in: &flights, refreshing: entry, started: MonotonicClock.system.now())
        return true
    }

    private func staleIfError(_ key: ContactKey, maxAge: Double?, error: LookupError) -> LookupResult? {
        let reason: StaleReason
        switch error {
        case .unavailable: reason = breaker.isRefusing ? .circuitOpen : .upstreamUnavailable
        case .rateLimited, .overloaded: reason = .rateLimited
        default: return nil
        }
        guard let entry = cache.read(key), case .contact(let contact) = entry.value,
            entry.age < cache.configuration.ttl + policy.staleIfError
        else { return nil }
        if let maxAge, maxAge <= 0 || entry.age > maxAge { return nil }
        counters.staleIfError.add(1, ordering: .relaxed)
        let now = clock.now()
        health.withLockedValue { $0.staleSince = $0.staleSince ?? now }
        return LookupResult(contact: contact, status: .stale, age: entry.age, staleReason: reason)
    }

    // MARK: - Fetching

    /// Registers and starts a fetch for `key`, a background refresh when `refreshing` names the
    /// entry it refreshes; the caller holds the flights lock.
    private func startFlight(
        _ key: ContactKey,
        in flights: inout FlightTable,
        refreshing entry: ContactID?,
        started: Double
    ) -> Flight {
        let generation = health.withLockedValue { $0.generation }
        let flight = Flight()
        flights.byKey[key] = flight
        if let entry {
            flights.refreshing.insert(entry)
            counters.refreshes.add(1, ordering: .relaxed)
        }
        // The fetch's deadline counts from when the request was received (`started`), as the
        // waiter's does, not from when a task first runs: on a loaded machine a task can start
        // hundreds of milliseconds later. Tests saw waiters time out before the fetch answered,
        // and two misses received together start their fetches more than the 0.25 s
        // "shortest attempt" apart, so the second got the API slot instead of giving up.
        Task { await self.run(flight, key: key, generation: generation, refreshing: entry, started: started) }
        return flight
    }

    private func run(_ flight: Flight, key: ContactKey, generation: Int, refreshing entry: ContactID?, started: Double)
        async
    {
        let fetched = await fetch(key, generation: generation, started: started)
        settle(key, fetched, generation: generation, background: entry != nil)
        flights.withLockedValue { flights in
            if flights.byKey[key] === flight { flights.byKey[key] = nil }
            if let entry { flights.refreshing.remove(entry) }
        }
        flight.finish(fetched.result)
    }

    /// How a fetch ended, and the last answer the API itself gave during it.
    ///
    /// Only an answer from the API may change what the daemon believes about it (holds, the token,
    /// the last failure): a fetch refused here (a 429 hold, the circuit, the API budget, a rejected
    /// token) learned nothing new. Recording a hold's own refusal as a fresh 429 renewed the hold
    /// on every lookup, so a contact asked for steadily never reached the API again.
    private struct Fetched {
        /// What the waiters hear.
        var result: Result<Contact, LookupError>
        /// The API's last answer in this fetch; `nil` when it was not called.
        var apiAnswer: Result<Contact, LookupError>?
    }

    /// One fetch: up to `retryAttempts` API calls within one deadline, each allowed by the
    /// breaker and holding a budget slot.
    private func fetch(_ key: ContactKey, generation: Int, started: Double) async -> Fetched {
        // Deadlines are real time (they bound real waits), not the cache's injectable clock.
        let real = MonotonicClock.system
        // End a little before the waiters' deadline so they hear the real outcome, not a timeout.
        let deadline = started + policy.deadline - min(0.1, policy.deadline * 0.1)
        // An attempt with less time than this left is not worth starting (nor queueing for).
        let shortest = min(0.25, policy.deadline * 0.25)
        var attempt = 0
        var apiAnswer: Result<Contact, LookupError>?
        func refused(_ error: LookupError) -> Fetched { Fetched(result: .failure(error), apiAnswer: apiAnswer) }
        while true {
            if let refusal = refusal(for: key) { return refused(refusal) }
            let permit = breaker.permit()
            if case .refused(let retryAfter) = permit {
                counters.circuitRefusals.add(1, ordering: .relaxed)
                return refused(
                    .unavailable(detail: "circuit open: the API keeps failing", retryAfter: retryAfter.rounded(.up))
                )
            }
            switch await budget.acquire(timeout: deadline - shortest - real.now()) {
            case .granted:
                break
            case .queueFull:
                breaker.record(.neutral, permit: permit)
                counters.overloaded.add(1, ordering: .relaxed)
                return refused(.overloaded(detail: "too many lookups are waiting for the API"))
            case .timedOut:
                breaker.record(.neutral, permit: permit)
                counters.overloaded.add(1, ordering: .relaxed)
                return refused(.overloaded(detail: "no API slot came free within the deadline"))
            }
            let result = await call(key, timeout: max(0.001, deadline - real.now()))
            budget.release()
            breaker.record(Self.breakerOutcome(result), permit: permit)

            apiAnswer = result
            let answer = Fetched(result: result, apiAnswer: result)
            guard case .failure(let error) = result, error.isRetryable, attempt + 1 < policy.retryAttempts else {
                return answer
            }
            var delay = policy.backoff(attempt: attempt, random: Double.random(in: 0...1))
            if case .unavailable(_, let retryAfter?, _) = error { delay = max(delay, retryAfter) }
            guard real.now() + delay + shortest < deadline else { return answer }
            counters.retries.add(1, ordering: .relaxed)
            try? await Task.sleep(for: .seconds(delay))
            attempt += 1
        }
    }

    /// Why `key` must not be fetched now: a 429 hold, or a rejected token not yet due a retry.
    private func refusal(for key: ContactKey) -> LookupError? {
        let now = clock.now()
        return health.withLockedValue { health -> LookupError? in
            let until = max(
                health.globalHoldUntil,
                health.holds[key].flatMap { $0.blocksFetches ? $0.until : nil } ?? 0
            )
            if until > now { return .rateLimited(retryAfter: (until - now).rounded(.up)) }
            if let rejected = health.tokenRejected {
                // One call per cooldown tries the token again; everything else fails fast.
                guard now - rejected.lastTry >= policy.breakerCooldown else { return .unauthorized }
                health.tokenRejected = (rejected.since, now)
            }
            return nil
        }
    }

    /// One API call, timed.
    private func call(_ key: ContactKey, timeout: Double) async -> Result<Contact, LookupError> {
        counters.upstreamRequests.add(1, ordering: .relaxed)
        counters.upstreamInFlight.add(1, ordering: .relaxed)
        let started = ContinuousClock.now
        let result: Result<Contact, LookupError>
        do {
            result = .success(try await source.fetch(key, timeout: timeout))
        } catch {
            result = .failure(error)
        }
        let elapsed = started.duration(to: .now)
        counters.upstreamInFlight.subtract(1, ordering: .relaxed)
        let micros =
            UInt64(max(0, elapsed.components.seconds)) * 1_000_000
            + UInt64(elapsed.components.attoseconds / 1_000_000_000_000)
        _ = latency.withLockedValue { $0.record(min(micros, 600_000_000)) }
        switch result {
        case .success, .failure(.notFound), .failure(.rejectedByAPI): break
        case .failure: counters.upstreamErrors.add(1, ordering: .relaxed)
        }
        return result
    }

    private static func breakerOutcome(_ result: Result<Contact, LookupError>) -> CircuitBreaker.Outcome {
        switch result {
        case .success, .failure(.notFound), .failure(.rejectedByAPI): .success
        case .failure(.unavailable), .failure(.badResponse): .failure
        case .failure(.unauthorized), .failure(.rateLimited), .failure(.overloaded): .neutral
        }
    }

    /// Records what a finished fetch taught: the cache entry, holds, the token state, health.
    private func settle(_ key: ContactKey, _ fetched: Fetched, generation: Int, background: Bool) {
        guard let result = fetched.apiAnswer else { return }
        let now = clock.now()
        switch result {
        case .success(let contact):
            cache.insert(.contact(contact), for: key)
        case .failure(.notFound):
            // Learned with an older token: the new one may see the contact.
            if health.withLockedValue({ $0.generation }) == generation { cache.insert(.notFound, for: key) }
        default:
            break
        }
        var announceRejection = false
        health.withLockedValue { health in
            let current = health.generation == generation
            switch result {
            case .success, .failure(.notFound), .failure(.rejectedByAPI):
                health.lastFailure = nil
                health.staleSince = nil
                health.holds[key] = nil
                if current { health.tokenRejected = nil }
            case .failure(.unauthorized):
                health.lastFailure = .unauthorized
                if current, health.tokenRejected == nil {
                    health.tokenRejected = (now, now)
                    announceRejection = true
                }
            case .failure(.rateLimited(let retryAfter)):
                health.lastFailure = result.failure
                let until = now + (retryAfter ?? policy.defaultRetryAfter)
                if policy.rateLimitAllKeys {
                    health.globalHoldUntil = max(health.globalHoldUntil, until)
                } else {
                    Self.hold(key, Hold(until: until, reason: .rateLimited, blocksFetches: true), in: &health, now: now)
                }
            case .failure(.unavailable), .failure(.badResponse):
                health.lastFailure = result.failure
                if background {
                    let hold = Hold(
                        until: now + policy.retryMaxDelay,
                        reason: .upstreamUnavailable,
                        blocksFetches: false
                    )
                    Self.hold(key, hold, in: &health, now: now)
                }
            case .failure(.overloaded):
                break
            }
        }
        if announceRejection {
            logger.error(
                "the API rejects the token: lookups that need the API fail with upstream_unauthorized until the token is reloaded (SIGHUP) or a call succeeds"
            )
        }
    }

    private static func hold(_ key: ContactKey, _ hold: Hold, in health: inout Health, now: Double) {
        if health.holds.count >= maximumHolds {
            health.holds = health.holds.filter { $0.value.until > now }
            if health.holds.count >= maximumHolds { health.holds.removeAll(keepingCapacity: true) }
        }
        health.holds[key] = hold
    }

    // MARK: - Administration

    /// Removes the entry for `key`; returns the number of entries removed.
    package func invalidate(_ key: ContactKey) -> Int { cache.remove(key) }

    /// Removes every entry; returns the number of entries removed.
    package func invalidateAll() -> Int { cache.removeAll() }

    /// Called after the token is read again (SIGHUP). Ends the token-rejected state; when the
    /// token really changed, also drops the not-found entries learned with the old one.
    package func tokenReloaded(changed: Bool) {
        health.withLockedValue { health in
            health.tokenRejected = nil
            if changed {
                health.generation += 1
                if health.lastFailure == .unauthorized { health.lastFailure = nil }
            }
        }
        if changed { _ = cache.removeNotFound() }
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
            (h.tokenRejected != nil, h.staleSince.map { now - $0 })
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
        stats.staleHits = counters.staleHits.load(ordering: .relaxed)
        stats.staleIfError = counters.staleIfError.load(ordering: .relaxed)
        stats.refreshes = counters.refreshes.load(ordering: .relaxed)
        stats.refreshAheads = counters.refreshAheads.load(ordering: .relaxed)
        stats.retries = counters.retries.load(ordering: .relaxed)
        stats.circuitState = breakerState.state.rawValue
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

/// One fetch in progress and the callers waiting for it, each with its own deadline.
private final class Flight: Sendable {
    private let state = NIOLockedValueBox(State())

    private struct State {
        var result: Result<Contact, LookupError>?
        var waiters: [Int: Waiter] = [:]
        var nextID = 0
    }

    private struct Waiter {
        let continuation: CheckedContinuation<Result<Contact, LookupError>?, Never>
        var deadline: DeadlineScheduler.Token?
    }

    /// The fetch's result, or `nil` when `timeout` seconds pass first or the caller is cancelled.
    /// Leaving early never cancels the fetch.
    func wait(timeout: Double) async -> Result<Contact, LookupError>? {
        // An instant, fixed now: however late the scheduler runs, the wait ends when it was due.
        let until = ContinuousClock.now + .seconds(timeout)
        let id = state.withLockedValue { s in
            s.nextID += 1
            return s.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let done: Result<Contact, LookupError>? = state.withLockedValue { s in
                    if let result = s.result { return result }
                    s.waiters[id] = Waiter(continuation: continuation, deadline: nil)
                    return nil
                }
                if let done {
                    continuation.resume(returning: done)
                    return
                }
                // One shared scheduler, not a sleeping task per waiter (see DeadlineScheduler).
                let deadline = DeadlineScheduler.shared.schedule(at: until) { [self] in leave(id) }
                let gone = state.withLockedValue { s -> Bool in
                    guard s.waiters[id] != nil else { return true }
                    s.waiters[id]?.deadline = deadline
                    return false
                }
                if gone { DeadlineScheduler.shared.cancel(deadline) }
            }
        } onCancel: {
            leave(id)
        }
    }

    private func leave(_ id: Int) {
        guard let waiter = state.withLockedValue({ $0.waiters.removeValue(forKey: id) }) else { return }
        if let deadline = waiter.deadline { DeadlineScheduler.shared.cancel(deadline) }
        waiter.continuation.resume(returning: nil)
    }

    /// Hands `result` to every waiter still here.
    func finish(_ result: Result<Contact, LookupError>) {
        let waiters = state.withLockedValue { s in
            s.result = result
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        for waiter in waiters {
            if let deadline = waiter.deadline { DeadlineScheduler.shared.cancel(deadline) }
            waiter.continuation.resume(returning: result)
        }
    }
}

extension Result {
    fileprivate var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}

/// Cache and upstream counters, as `cache.stats` reports them.
package struct LookupStats: Sendable, Equatable {
    /// API call durations.
    package struct Latency: Sendable, Equatable {
        package var p50 = 0.0
        package var p90 = 0.0
        package var p99 = 0.0
        package var max = 0.0

        package init(p50: Double = 0, p90: Double = 0, p99: Double = 0, max: Double = 0) {
            self.p50 = p50
            self.p90 = p90
            self.p99 = p99
            self.max = max
        }
    }

    package var entries: Int
    package var bytes: Int
    /// Fresh answers from the cache.
    package var hits: Int
    package var misses: Int
    package var evictions: Int
    package var upstreamRequests: Int
    /// Upstream calls that failed other than with not-found.
    package var upstreamErrors: Int
    package var upstreamInFlight: Int
    /// Stale answers given at once while a refresh runs or the API is held back.
    package var staleHits = 0
    /// Stale answers given because a fetch failed (stale-if-error).
    package var staleIfError = 0
    /// Background refreshes started (stale-while-revalidate and refresh-ahead).
    package var refreshes = 0
    /// Of those, refreshes of hot entries before they went stale.
    package var refreshAheads = 0
    /// API calls repeated after a transient failure.
    package var retries = 0
    /// `closed`, `open` or `half_open`.
    package var circuitState = "closed"
    /// Times the circuit opened since start.
    package var circuitOpened = 0
    /// Fetches refused because the circuit was open.
    package var circuitRefusals = 0
    /// Fetches refused by the API budget (queue full or no slot within the deadline).
    package var overloaded = 0
    /// Fetches waiting for an API slot now.
    package var queueDepth = 0
    /// Whether the API rejects the current token.
    package var tokenRejected = false
    /// Seconds since answers became stale because the API failed; `nil` when they are not.
    package var servingStaleFor: Double?
    package var latencyMilliseconds = Latency()

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

    /// Hits (fresh and stale) over all lookups, 0 when there were none.
    package var hitRatio: Double {
        let served = hits + staleHits
        return served + misses == 0 ? 0 : Double(served) / Double(served + misses)
    }
}

private final class Counters: Sendable {
    let hits = Atomic<Int>(0)
    let misses = Atomic<Int>(0)
    let staleHits = Atomic<Int>(0)
    let staleIfError = Atomic<Int>(0)
    let refreshes = Atomic<Int>(0)
    let refreshAheads = Atomic<Int>(0)
    let retries = Atomic<Int>(0)
    let circuitRefusals = Atomic<Int>(0)
    let overloaded = Atomic<Int>(0)
    let upstreamRequests = Atomic<Int>(0)
    let upstreamErrors = Atomic<Int>(0)
    let upstreamInFlight = Atomic<Int>(0)
}
