import Histogram
import Logging
import NIOConcurrencyHelpers
import Synchronization

// MARK: - Fetching: one shared fetch per key, under the breaker, the API budget and the retry policy

extension ContactLookup {
    /// Registers and starts a fetch for `key`, a background refresh when `refreshing` names the
    /// entry it refreshes; the caller holds the flights lock.
    func startFlight(
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
        flight.finish(
            fetched.result.map { contact in
                Fetch(contact: contact, age: fetched.shared?.age ?? 0, tier: fetched.shared == nil ? .api : .shared)
            }
        )
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
        /// What another host had fetched, when the shared cache answered instead of the API.
        var shared: SharedEntry?
        /// The fleet's claim on fetching this key, held by this fetch (released when it shares).
        var claim: String?
    }

    /// One fetch: up to `retryAttempts` API calls within one deadline, each allowed by the
    /// breaker and holding a budget slot.
    private func fetch(_ key: ContactKey, generation: Int, started: Double) async -> Fetched {
        // One policy for the whole fetch, whatever a reload does meanwhile.
        let policy = self.policy
        // Deadlines are real time (they bound real waits), not the cache's injectable clock.
        let real = MonotonicClock.system
        // End a little before the waiters' deadline so they hear the real outcome, not a timeout.
        let deadline = started + policy.deadline.seconds - min(0.1, policy.deadline.seconds * 0.1)
        // An attempt with less time than this left is not worth starting (nor queueing for).
        let shortest = min(0.25, policy.deadline.seconds * 0.25)
        var attempt = 0
        var apiAnswer: Result<Contact, LookupError>?
        var claim: String?
        func refused(_ error: LookupError) -> Fetched {
            Fetched(result: .failure(error), apiAnswer: apiAnswer, claim: claim)
        }
        if let shared {
            // Another host's answer, or the fleet's claim on asking the API (issue: one API call
            // however many hosts miss at once). A claim lasts half the deadline: a host that dies
            // holding one delays the others by that, not by their whole deadline.
            let lease = policy.deadline.seconds / 2
            switch await shared.lookUp(key, lease: lease) {
            case .found(let entry):
                if let usable = usable(entry) { return usable }
            case .claimed(let token):
                claim = token
            case .fetchedElsewhere:
                let until = min(started + lease, deadline - shortest)
                if let entry = await shared.awaitPeer(key, until: until), let usable = usable(entry) {
                    return usable
                }
            case .unavailable:
                break
            }
        }
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
            // An attempt that is not the last gets half of what is left: an API that accepts and
            // never answers then costs two or three attempts, each counted by the breaker, not
            // one that eats the whole deadline; a slow one still has most of it.
            let remaining = deadline - real.now()
            let isLast = attempt + 1 >= policy.retryAttempts
            let result = await call(key, timeout: max(0.001, isLast ? remaining : max(shortest, remaining / 2)))
            budget.release()
            breaker.record(Self.breakerOutcome(result), permit: permit)

            apiAnswer = result
            let answer = Fetched(result: result, apiAnswer: apiAnswer, claim: claim)
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

    /// Another host's entry as this fetch's answer, if it is still fresh by this host's TTLs.
    private func usable(_ entry: SharedEntry) -> Fetched? {
        let ttls = cache.ttls
        switch entry.value {
        case .contact(let contact) where entry.age < ttls.contact:
            return Fetched(result: .success(contact), apiAnswer: nil, shared: entry)
        case .notFound where entry.age < ttls.notFound:
            return Fetched(result: .failure(.notFound), apiAnswer: nil, shared: entry)
        default:
            return nil
        }
    }

    /// Why `key` must not be fetched now: a 429 hold, or a rejected token not yet due a retry.
    private func refusal(for key: ContactKey) -> LookupError? {
        let now = clock.now()
        return health.withLockedValue {
            $0.fetchRefusal(for: key, now: now, tokenRetryAfter: policy.breakerCooldown.seconds)
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
        observer?.apiCallFinished(APICallOutcome(result), after: elapsed)
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

    /// Records what a finished fetch taught: the cache entry, and what the API said (holds, the
    /// token's state, its last failure) in `UpstreamHealth`.
    private func settle(_ key: ContactKey, _ fetched: Fetched, generation: Int, background: Bool) {
        if let entry = fetched.shared {
            // Its true age, so freshness, stale serving and `cache.age` agree across the fleet.
            cache.insert(entry.value, for: key, age: entry.age)
            return
        }
        guard let answer = fetched.apiAnswer else {
            if let claim = fetched.claim { shared?.release(claim, for: key) }
            return
        }
        let now = clock.now()
        let policy = self.policy
        let ttls = cache.ttls
        switch answer {
        case .success(let contact):
            cache.insert(.contact(contact), for: key)
            // Kept in the shared cache as long as any host could still answer from it.
            let lifetime = ttls.contact + max(policy.staleTTL.seconds, policy.staleIfError.seconds)
            shared?.store(.contact(contact), for: key, lifetime: lifetime, claim: fetched.claim)
        case .failure(.notFound):
            // Learned with an older token: the new one may see the contact.
            if health.withLockedValue({ $0.generation }) == generation {
                cache.insert(.notFound, for: key)
                shared?.store(.notFound, for: key, lifetime: ttls.notFound, claim: fetched.claim)
            } else if let claim = fetched.claim {
                shared?.release(claim, for: key)
            }
        default:
            if let claim = fetched.claim { shared?.release(claim, for: key) }
        }
        let action = health.withLockedValue {
            $0.learn(answer, for: key, generation: generation, background: background, policy: policy, now: now)
        }
        perform(action)
    }

    func perform(_ action: UpstreamHealth.Action) {
        switch action {
        case .none:
            break
        case .announceTokenRejected:
            logger.error(
                "the API rejects the token: lookups that need the API fail with upstream_unauthorized until the token is reloaded (SIGHUP) or a call succeeds"
            )
        case .dropNotFoundEntries:
            _ = cache.removeNotFound()
        }
    }
}
