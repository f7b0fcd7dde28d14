import ContactdProtocol
import Histogram
import Logging
import NIOConcurrencyHelpers
import Synchronization

// MARK: - Fetching: one shared fetch per key, under the breaker, the API budget and the retry policy

extension ContactResolver {
    /// Registers and starts a fetch for `key`, a background refresh when `refreshing` names the
    /// entry it refreshes; the caller holds the flights lock.
    func startFlight(
        _ key: ContactKey,
        in flights: inout FlightTable,
        refreshing entry: ContactID?,
        started: Double
    ) -> Flight {
        let generation = health.withLockedValue { $0.generation }
        // Taken before anything is asked: an invalidation from here on voids this fetch's fill.
        let ticket = cache.beginFill()
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
        Task {
            await self.run(
                flight,
                key: key,
                ticket: ticket,
                generation: generation,
                refreshing: entry,
                started: started
            )
        }
        return flight
    }

    private func run(
        _ flight: Flight,
        key: ContactKey,
        ticket: FillTicket,
        generation: Int,
        refreshing entry: ContactID?,
        started: Double
    ) async {
        // Traced in a call of its own: with tracing off, a fetch is what it was without it (a
        // closure around each step cost the miss path memory per fetch in flight).
        let fetched =
            tracing.isOn
            ? await tracedFetch(key, generation: generation, started: started, refresh: entry != nil)
            : await fetch(key, generation: generation, started: started)
        settle(key, fetched, ticket: ticket, generation: generation, background: entry != nil)
        cache.endFill(ticket)
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
    struct Fetched {
        /// What the waiters hear.
        var result: Result<APIContact, LookupError>
        /// The API's last answer in this fetch; `nil` when it was not called.
        var apiAnswer: Result<APIContact, LookupError>?
        /// What another host had fetched, when the shared cache answered instead of the API.
        var shared: SharedEntry?
        /// The fleet's claim on fetching this key, held by this fetch (released when it shares).
        var claim: String?
    }

    /// One fetch: up to `retryAttempts` API calls within one deadline, each allowed by the
    /// breaker and holding a budget slot.
    func fetch(_ key: ContactKey, generation: Int, started: Double) async -> Fetched {
        // One policy for the whole fetch, whatever a reload does meanwhile.
        let policy = self.policy
        // End a little before the waiters' deadline so they hear the real outcome, not a timeout.
        let deadline = started + policy.deadline.seconds - min(0.1, policy.deadline.seconds * 0.1)
        // An attempt with less time than this left is not worth starting (nor queueing for).
        let shortest = min(0.25, policy.deadline.seconds * 0.25)
        var claim: String?
        if let shared {
            // Another host's answer, or the fleet's claim on asking the API (issue: one API call
            // however many hosts miss at once). A claim lasts half the deadline: a host that dies
            // holding one delays the others by that, not by their whole deadline.
            let lease = policy.deadline.seconds / 2
            let answer =
                tracing.isOn ? await tracedLookUp(shared, key, lease: lease) : await shared.lookUp(key, lease: lease)
            switch answer {
            case .found(let entry):
                if let usable = usable(entry) { return usable }
            case .claimed(let token):
                claim = token
            case .fetchedElsewhere:
                let until = min(started + lease, deadline - shortest)
                // Another host holds the fleet's claim on this key: wait for what it fetches.
                let peer =
                    tracing.isOn
                    ? await tracedAwaitPeer(shared, key, until: until) : await shared.awaitPeer(key, until: until)
                if let entry = peer, let usable = usable(entry) { return usable }
            case .unavailable:
                break
            }
        }
        return await attempts(key, policy: policy, deadline: deadline, shortest: shortest, claim: claim)
    }

    /// What one attempt came to: refused before the API was called, or the API's answer.
    enum Attempt: Sendable {
        case refused(LookupError)
        case answered(Result<APIContact, LookupError>)
    }

    /// What the attempts loop hears.
    private enum AttemptEvent: Sendable {
        case finished(Attempt)
        /// Attempt `n` has not answered in its share of the time: start another beside it.
        case hedgeDue(Int)
        /// The backoff after a failed attempt has passed.
        case retryDue
    }

    /// Up to `retryAttempts` API calls within the deadline. Every call may take all the time
    /// left: an answer that arrives before the deadline is taken, however slow (SPEC §8). An API
    /// that accepts and never answers is met by hedging, not by cutting: when an attempt has not
    /// answered after half of what was left, another starts beside it (if the breaker and the
    /// API budget allow), and the first answer wins. A failed attempt is retried after a
    /// full-jitter backoff.
    private func attempts(
        _ key: ContactKey,
        policy: UpstreamPolicy,
        deadline: Double,
        shortest: Double,
        claim: String?
    ) async -> Fetched {
        let real = MonotonicClock.system
        return await withTaskGroup(of: AttemptEvent.self) { group -> Fetched in
            var started = 0
            var running = 0
            var apiAnswer: Result<APIContact, LookupError>?
            var lastRefusal: LookupError?
            func launch() {
                started += 1
                running += 1
                let number = started
                let hedge = number > 1 && running > 1
                group.addTask {
                    guard self.tracing.isOn else {
                        return .finished(await self.attempt(key, deadline: deadline, shortest: shortest, hedge: hedge))
                    }
                    return .finished(
                        await self.tracedAttempt(
                            key,
                            number: number,
                            deadline: deadline,
                            shortest: shortest,
                            hedge: hedge
                        )
                    )
                }
                if number < policy.retryAttempts {
                    let wait = max(shortest, (deadline - real.now()) / 2)
                    group.addTask {
                        // Almost always cancelled (the attempt answers): a scheduler entry, not
                        // a sleeping task that would keep its memory until `wait` passed.
                        await DeadlineScheduler.shared.sleep(until: .now + .seconds(wait))
                        return .hedgeDue(number)
                    }
                }
            }
            func done(_ result: Result<APIContact, LookupError>) -> Fetched {
                group.cancelAll()
                return Fetched(result: result, apiAnswer: apiAnswer, claim: claim)
            }
            launch()
            while let event = await group.next() {
                switch event {
                case .finished(.refused(let error)):
                    running -= 1
                    lastRefusal = error
                    if running == 0 {
                        group.cancelAll()
                        return Fetched(result: .failure(error), apiAnswer: apiAnswer, claim: claim)
                    }
                case .finished(.answered(let result)):
                    running -= 1
                    apiAnswer = result
                    guard case .failure(let error) = result, error.isRetryable else { return done(result) }
                    guard running == 0 else { continue }  // another attempt may still answer
                    guard started < policy.retryAttempts else { return done(result) }
                    var delay = policy.backoff(attempt: started - 1, random: Double.random(in: 0...1))
                    if case .unavailable(_, let retryAfter?, _) = error { delay = max(delay, retryAfter) }
                    guard real.now() + delay + shortest < deadline else { return done(result) }
                    running += 1  // the retry to come keeps the loop waiting
                    group.addTask {
                        try? await Task.sleep(for: .seconds(delay))
                        return .retryDue
                    }
                case .retryDue:
                    running -= 1
                    counters.retries.add(1, ordering: .relaxed)
                    launch()
                case .hedgeDue(let number):
                    guard number == started, running > 0, started < policy.retryAttempts,
                        deadline - real.now() > shortest
                    else { continue }
                    counters.retries.add(1, ordering: .relaxed)
                    launch()
                }
            }
            return done(
                apiAnswer ?? .failure(lastRefusal ?? .unavailable(detail: "no attempt was made", retryAfter: nil))
            )
        }
    }

    /// One attempt: the holds and the token, the breaker, a budget slot, then the call with all
    /// the time left until `deadline`. A `hedge` (beside an attempt still running) takes a slot
    /// only if one is free now: it never queues behind other lookups' calls, and an attempt that
    /// is itself waiting for a slot is not hedged at all.
    func attempt(_ key: ContactKey, deadline: Double, shortest: Double, hedge: Bool) async -> Attempt {
        let real = MonotonicClock.system
        if let refusal = refusal(for: key) { return .refused(refusal) }
        let permit = breaker.permit()
        if case .refused(let retryAfter) = permit {
            counters.circuitRefusals.add(1, ordering: .relaxed)
            return .refused(
                .unavailable(detail: "circuit open: the API keeps failing", retryAfter: retryAfter.rounded(.up))
            )
        }
        switch await budget.acquire(timeout: hedge ? 0 : deadline - shortest - real.now()) {
        case .granted:
            break
        case .queueFull where hedge, .timedOut where hedge:
            breaker.record(.neutral, permit: permit)
            return .refused(.overloaded(detail: "no API slot free for a second attempt"))
        case .queueFull:
            breaker.record(.neutral, permit: permit)
            counters.overloaded.add(1, ordering: .relaxed)
            return .refused(.overloaded(detail: "too many lookups are waiting for the API"))
        case .timedOut:
            breaker.record(.neutral, permit: permit)
            counters.overloaded.add(1, ordering: .relaxed)
            return .refused(.overloaded(detail: "no API slot came free within the deadline"))
        }
        let result = await call(key, timeout: max(0.001, deadline - real.now()))
        budget.release()
        // An attempt cut short because another answered first says nothing about the API.
        breaker.record(Task.isCancelled ? .neutral : Self.breakerOutcome(result), permit: permit)
        return .answered(result)
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
    private func call(_ key: ContactKey, timeout: Double) async -> Result<APIContact, LookupError> {
        counters.upstreamRequests.add(1, ordering: .relaxed)
        counters.upstreamInFlight.add(1, ordering: .relaxed)
        let started = ContinuousClock.now
        let result: Result<APIContact, LookupError>
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

    private static func breakerOutcome(_ result: Result<APIContact, LookupError>) -> CircuitBreaker.Outcome {
        switch result {
        case .success, .failure(.notFound), .failure(.rejectedByAPI): .success
        case .failure(.unavailable), .failure(.badResponse): .failure
        case .failure(.unauthorized), .failure(.rateLimited), .failure(.overloaded): .neutral
        }
    }

    /// Records what a finished fetch taught: the cache entry, and what the API said (holds, the
    /// token's state, its last failure) in `UpstreamHealth`.
    ///
    /// Nothing is stored, here or in the shared cache, when an invalidation came after the fetch
    /// began (`ticket`): an invalidation is final.
    private func settle(_ key: ContactKey, _ fetched: Fetched, ticket: FillTicket, generation: Int, background: Bool) {
        if let entry = fetched.shared {
            // Its true age, so freshness, stale serving and `cache.age` agree across the fleet.
            cache.insert(entry.value, for: key, age: entry.age, ticket: ticket)
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
            // Kept in the shared cache as long as any host could still answer from it.
            let lifetime = ttls.contact + max(policy.staleTTL.seconds, policy.staleIfError.seconds)
            if cache.insert(.contact(contact), for: key, ticket: ticket), let claim = fetched.claim {
                shared?.store(.contact(contact), for: key, lifetime: lifetime, claim: claim)
            } else if let claim = fetched.claim {
                shared?.release(claim, for: key)
            }
        case .failure(.notFound):
            // Learned with an older token: the new one may see the contact.
            if health.withLockedValue({ $0.generation }) == generation,
                cache.insert(.notFound, for: key, ticket: ticket), let claim = fetched.claim
            {
                shared?.store(.notFound, for: key, lifetime: ttls.notFound, claim: claim)
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
