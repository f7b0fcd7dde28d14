import NIOConcurrencyHelpers

/// Caps API requests in flight and, optionally, started per second (a token bucket). Callers
/// beyond the caps wait in one bounded FIFO queue, each until its own deadline.
package final class APIBudget: Sendable {
    package enum Grant: Sendable, Equatable {
        /// A slot is held; call `release()` when the request is over.
        case granted
        /// The queue was full.
        case queueFull
        /// No slot came free before the deadline.
        case timedOut
    }

    private struct Waiter {
        let id: Int
        let continuation: CheckedContinuation<Bool, Never>
        var deadline: DeadlineScheduler.Token?
    }

    /// The caps, changed by a reload (`reconfigure`).
    private struct Limits {
        var maxConcurrent: Int
        var ratePerSecond: Double
        var burst: Double
        var queueLimit: Int

        init(maxConcurrent: Int, ratePerSecond: Double, burst: Int, queueLimit: Int) {
            self.maxConcurrent = max(1, maxConcurrent)
            self.ratePerSecond = ratePerSecond
            self.burst = ratePerSecond > 0 ? Double(burst > 0 ? burst : max(1, Int(ratePerSecond))) : 1
            self.queueLimit = max(0, queueLimit)
        }
    }

    private struct State {
        var limits: Limits
        var inFlight = 0
        var tokens: Double
        var refilledAt: Double
        var waiters: [Waiter] = []
        var nextID = 0
        var refillScheduled = false
    }

    private let state: NIOLockedValueBox<State>
    private let clock: MonotonicClock

    package init(maxConcurrent: Int, ratePerSecond: Double, burst: Int, queueLimit: Int, clock: MonotonicClock) {
        let limits = Limits(
            maxConcurrent: maxConcurrent,
            ratePerSecond: ratePerSecond,
            burst: burst,
            queueLimit: queueLimit
        )
        self.clock = clock
        self.state = NIOLockedValueBox(State(limits: limits, tokens: limits.burst, refilledAt: clock.now()))
    }

    /// New caps from a reload. Calls in flight keep their slots (a lower cap lets no new one start
    /// until enough have ended); waiters already queued stay queued; a higher cap lets them start.
    package func reconfigure(maxConcurrent: Int, ratePerSecond: Double, burst: Int, queueLimit: Int) {
        let now = clock.now()
        state.withLockedValue { s in
            refill(&s, now: now)
            s.limits = Limits(
                maxConcurrent: maxConcurrent,
                ratePerSecond: ratePerSecond,
                burst: burst,
                queueLimit: queueLimit
            )
            s.tokens = min(s.tokens, s.limits.burst)
        }
        wakeWaiters()
    }

    /// Requests holding a slot now.
    package var inFlight: Int { state.withLockedValue { $0.inFlight } }

    /// Callers waiting for a slot now.
    package var queued: Int { state.withLockedValue { $0.waiters.count } }

    /// Takes a slot, waiting at most `timeout` seconds in the queue.
    package func acquire(timeout: Double) async -> Grant {
        let now = clock.now()
        let immediate: Grant? = state.withLockedValue { s in
            refill(&s, now: now)
            if s.waiters.isEmpty && canStart(s) {
                take(&s)
                return .granted
            }
            return s.waiters.count >= s.limits.queueLimit || timeout <= 0 ? .queueFull : nil
        }
        if let immediate { return immediate }
        // An instant, not a duration: the wait must end when it was due, before the caller's own
        // deadline (a test saw a queued fetch outlast its waiter's deadline when it was not).
        let until = ContinuousClock.now + .seconds(timeout)
        let granted = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let id = state.withLockedValue { s in
                s.nextID += 1
                s.waiters.append(Waiter(id: s.nextID, continuation: continuation, deadline: nil))
                return s.nextID
            }
            // One shared scheduler, not a sleeping task per waiter (see DeadlineScheduler).
            let deadline = DeadlineScheduler.shared.schedule(at: until) { [self] in expire(id) }
            let orphan = state.withLockedValue { s -> Bool in
                guard let index = s.waiters.firstIndex(where: { $0.id == id }) else { return true }
                s.waiters[index].deadline = deadline
                return false
            }
            // Granted (or expired) before the deadline was stored: it is not needed.
            if orphan { DeadlineScheduler.shared.cancel(deadline) }
            // A slot may have come free between the first check and joining the queue.
            wakeWaiters()
        }
        return granted ? .granted : .timedOut
    }

    /// Gives a slot back and hands it to the next waiter.
    package func release() {
        state.withLockedValue { $0.inFlight -= 1 }
        wakeWaiters()
    }

    private func canStart(_ s: State) -> Bool {
        s.inFlight < s.limits.maxConcurrent && (s.limits.ratePerSecond <= 0 || s.tokens >= 1)
    }

    private func take(_ s: inout State) {
        s.inFlight += 1
        if s.limits.ratePerSecond > 0 { s.tokens -= 1 }
    }

    private func refill(_ s: inout State, now: Double) {
        defer { s.refilledAt = now }
        guard s.limits.ratePerSecond > 0 else { return }
        s.tokens = min(s.limits.burst, s.tokens + (now - s.refilledAt) * s.limits.ratePerSecond)
    }

    private func expire(_ id: Int) {
        let continuation = state.withLockedValue { s -> CheckedContinuation<Bool, Never>? in
            guard let index = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return s.waiters.remove(at: index).continuation
        }
        continuation?.resume(returning: false)
    }

    /// Grants slots to waiters in order while the caps allow; when only the rate holds them
    /// back, schedules one wake-up for the next token.
    private func wakeWaiters() {
        let now = clock.now()
        var refillIn: Double?
        let woken = state.withLockedValue { s -> [Waiter] in
            refill(&s, now: now)
            var woken: [Waiter] = []
            while !s.waiters.isEmpty && canStart(s) {
                take(&s)
                woken.append(s.waiters.removeFirst())
            }
            if !s.waiters.isEmpty, s.inFlight < s.limits.maxConcurrent, s.limits.ratePerSecond > 0, !s.refillScheduled {
                s.refillScheduled = true
                refillIn = (1 - s.tokens) / s.limits.ratePerSecond
            }
            return woken
        }
        for waiter in woken {
            if let deadline = waiter.deadline { DeadlineScheduler.shared.cancel(deadline) }
            waiter.continuation.resume(returning: true)
        }
        if let refillIn {
            Task { [self] in
                try? await Task.sleep(for: .seconds(max(refillIn, 0.001)))
                state.withLockedValue { $0.refillScheduled = false }
                wakeWaiters()
            }
        }
    }
}
