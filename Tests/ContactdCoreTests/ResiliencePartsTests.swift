import ContactdCore
import ContactdTestSupport
import Testing

@Suite struct CircuitBreakerTests {
    @Test func opensAfterConsecutiveFailuresAndProbesOneAtATime() {
        let clock = ManualClock()
        let breaker = CircuitBreaker(failureThreshold: 3, cooldown: 10, clock: clock.clock)
        for _ in 0..<2 { breaker.record(.failure, permit: breaker.permit()) }
        #expect(breaker.permit() == .allowed)
        breaker.record(.success, permit: .allowed)  // a success resets the run
        for _ in 0..<3 { breaker.record(.failure, permit: breaker.permit()) }
        #expect(breaker.permit() == .refused(retryAfter: 10))
        clock.advance(by: 4)
        #expect(breaker.permit() == .refused(retryAfter: 6))
        clock.advance(by: 6)
        #expect(breaker.permit() == .probe)
        #expect(breaker.permit() == .refused(retryAfter: 1))  // one probe at a time
        breaker.record(.failure, permit: .probe)  // failed probe: open again
        #expect(breaker.snapshot.state == .open)
        #expect(breaker.snapshot.opened == 2)
        clock.advance(by: 10)
        #expect(breaker.permit() == .probe)
        breaker.record(.success, permit: .probe)
        #expect(breaker.snapshot.state == .closed)
        #expect(breaker.permit() == .allowed)
    }

    /// A reload's new threshold counts from the next failure; the new cooldown from the next opening.
    @Test func reconfiguredLimitsHoldFromTheNextFailure() {
        let clock = ManualClock()
        let breaker = CircuitBreaker(failureThreshold: 5, cooldown: 10, clock: clock.clock)
        breaker.record(.failure, permit: breaker.permit())
        #expect(breaker.snapshot.state == .closed)
        breaker.reconfigure(failureThreshold: 2, cooldown: 3)
        breaker.record(.failure, permit: breaker.permit())
        #expect(breaker.snapshot.state == .open)
        #expect(breaker.permit() == .refused(retryAfter: 3))
    }

    @Test func aProbeThatSaidNothingLetsTheNextCallerProbe() {
        let clock = ManualClock()
        let breaker = CircuitBreaker(failureThreshold: 1, cooldown: 1, clock: clock.clock)
        breaker.record(.failure, permit: breaker.permit())
        clock.advance(by: 1)
        #expect(breaker.permit() == .probe)
        breaker.record(.neutral, permit: .probe)
        #expect(breaker.permit() == .probe)
    }
}

@Suite(.timeLimit(.minutes(1))) struct APIBudgetTests {
    @Test func capsConcurrencyAndQueuesInOrder() async {
        let budget = APIBudget(maxConcurrent: 2, ratePerSecond: 0, burst: 0, queueLimit: 2, clock: .system)
        #expect(await budget.acquire(timeout: 1) == .granted)
        #expect(await budget.acquire(timeout: 1) == .granted)
        let first = Task { await budget.acquire(timeout: 10) }
        while budget.queued < 1 { await Task.yield() }
        let second = Task { await budget.acquire(timeout: 10) }
        while budget.queued < 2 { await Task.yield() }
        #expect(await budget.acquire(timeout: 10) == .queueFull)
        budget.release()
        #expect(await first.value == .granted)
        #expect(budget.queued == 1)
        budget.release()
        #expect(await second.value == .granted)
        #expect(budget.inFlight == 2)
    }

    /// A higher cap from a reload lets a queued waiter start at once; a lower one starts no new
    /// call until enough have ended; a smaller queue refuses sooner.
    @Test func reconfiguredCapsApplyToWaitersAndNewCalls() async {
        let budget = APIBudget(maxConcurrent: 1, ratePerSecond: 0, burst: 0, queueLimit: 10, clock: .system)
        #expect(await budget.acquire(timeout: 1) == .granted)
        let waiter = Task { await budget.acquire(timeout: 30) }
        while budget.queued < 1 { await Task.yield() }
        budget.reconfigure(maxConcurrent: 2, ratePerSecond: 0, burst: 0, queueLimit: 10)
        #expect(await waiter.value == .granted)
        #expect(budget.inFlight == 2)
        budget.reconfigure(maxConcurrent: 1, ratePerSecond: 0, burst: 0, queueLimit: 0)
        budget.release()
        #expect(await budget.acquire(timeout: 1) == .queueFull, "one in flight at a cap of 1, no queue")
        budget.release()
        #expect(await budget.acquire(timeout: 1) == .granted)
    }

    @Test func aWaiterGivesUpAtItsTimeout() async {
        let budget = APIBudget(maxConcurrent: 1, ratePerSecond: 0, burst: 0, queueLimit: 10, clock: .system)
        #expect(await budget.acquire(timeout: 1) == .granted)
        let start = ContinuousClock.now
        #expect(await budget.acquire(timeout: 0.1) == .timedOut)
        #expect(ContinuousClock.now - start >= .milliseconds(100))
        #expect(budget.queued == 0)
        budget.release()
        #expect(await budget.acquire(timeout: 0.1) == .granted)
    }

    @Test func tokenBucketAllowsABurstThenSpacesStarts() async {
        let budget = APIBudget(maxConcurrent: 100, ratePerSecond: 20, burst: 3, queueLimit: 100, clock: .system)
        let start = ContinuousClock.now
        // The burst: three at once (a zero timeout would refuse any that had to wait).
        for _ in 0..<3 { #expect(await budget.acquire(timeout: 0) == .granted) }
        // A generous bound: what is checked is the spacing below, not how soon a loaded test run
        // schedules the refill (a 1 s bound timed out once with 37 suites running at once).
        for _ in 0..<2 { #expect(await budget.acquire(timeout: 10) == .granted) }
        // Two more tokens at 20/s: at least 100 ms after the burst.
        #expect(ContinuousClock.now - start >= .milliseconds(90))
    }
}

@Suite struct BackoffTests {
    @Test func fullJitterStaysWithinTheCappedExponential() {
        var policy = UpstreamPolicy()
        policy.retryBaseDelay = .seconds(0.1)
        policy.retryMaxDelay = .seconds(1)
        #expect(policy.backoff(attempt: 0, random: 1) == 0.1)
        #expect(policy.backoff(attempt: 2, random: 1) == 0.4)
        #expect(policy.backoff(attempt: 10, random: 1) == 1)
        #expect(policy.backoff(attempt: 3, random: 0) == 0)
        #expect(policy.backoff(attempt: 3, random: 0.5) == 0.4)
        #expect(policy.backoff(attempt: 1000, random: 1) == 1)
    }
}
