import ContactdProtocol
import NIOConcurrencyHelpers

/// Stops calling an API that keeps failing, and lets one probe at a time test its recovery.
///
/// Closed: calls go through; `failureThreshold` failures in a row open it. Open: calls are refused
/// for `cooldown` seconds. Then half-open: the first caller gets a probe permit and everyone else
/// is refused until the probe reports; success closes the circuit, failure opens it again.
package final class CircuitBreaker: Sendable {
    package enum Permit: Sendable, Equatable {
        /// Call the API.
        case allowed
        /// Call the API as the one recovery probe; report the outcome.
        case probe
        /// Do not call; the circuit should be tried again in `retryAfter` seconds.
        case refused(retryAfter: Double)
    }

    /// How a call went, as far as the breaker cares.
    package enum Outcome: Sendable {
        /// The API answered sensibly (a contact, not-found, a 4xx about the request).
        case success
        /// Transport error, timeout, 5xx, garbage.
        case failure
        /// Neither: the call did not happen after all, or the answer says nothing about health.
        case neutral
    }

    package enum State: Sendable {
        case closed
        case open
        case halfOpen

        /// The state as the wire and the metrics spell it.
        package var reported: CircuitState {
            switch self {
            case .closed: .closed
            case .open: .open
            case .halfOpen: .halfOpen
            }
        }
    }

    private struct Machine {
        var state: State = .closed
        var consecutiveFailures = 0
        var openUntil = 0.0
        var probing = false
        var opened = 0
        var failureThreshold: Int
        var cooldown: Double
    }

    private let machine: NIOLockedValueBox<Machine>
    private let clock: MonotonicClock

    package init(failureThreshold: Int, cooldown: Double, clock: MonotonicClock) {
        self.machine = NIOLockedValueBox(Machine(failureThreshold: max(1, failureThreshold), cooldown: cooldown))
        self.clock = clock
    }

    /// New limits from a reload: they count from the next failure; an open circuit keeps the
    /// cooldown it opened with.
    package func reconfigure(failureThreshold: Int, cooldown: Double) {
        machine.withLockedValue { m in
            m.failureThreshold = max(1, failureThreshold)
            m.cooldown = cooldown
        }
    }

    /// Whether a call may go out now.
    package func permit() -> Permit {
        let now = clock.now()
        return machine.withLockedValue { m in
            switch m.state {
            case .closed:
                return .allowed
            case .open:
                guard now >= m.openUntil else { return .refused(retryAfter: m.openUntil - now) }
                m.state = .halfOpen
                m.probing = true
                return .probe
            case .halfOpen:
                if m.probing { return .refused(retryAfter: 1) }
                m.probing = true
                return .probe
            }
        }
    }

    /// Whether calls are being refused now, without taking a probe permit.
    package var isRefusing: Bool {
        let now = clock.now()
        return machine.withLockedValue { m in
            switch m.state {
            case .closed: false
            case .open: now < m.openUntil
            case .halfOpen: m.probing
            }
        }
    }

    /// Reports the outcome of a call made with `permit`.
    package func record(_ outcome: Outcome, permit: Permit) {
        let now = clock.now()
        machine.withLockedValue { m in
            let wasProbe = permit == .probe
            if wasProbe { m.probing = false }
            switch outcome {
            case .success:
                m.state = .closed
                m.consecutiveFailures = 0
            case .neutral:
                // A probe that told us nothing leaves the circuit half-open for the next caller.
                break
            case .failure:
                m.consecutiveFailures += 1
                if wasProbe || (m.state == .closed && m.consecutiveFailures >= m.failureThreshold) {
                    m.state = .open
                    m.openUntil = now + m.cooldown
                    m.opened += 1
                }
            }
        }
    }

    /// Sets the count of times opened back to zero (`cache.reset_stats`); the state stays.
    package func resetOpenedCount() {
        machine.withLockedValue { $0.opened = 0 }
    }

    /// The state, failures in a row and times opened since start.
    package var snapshot: (state: State, consecutiveFailures: Int, opened: Int) {
        let now = clock.now()
        return machine.withLockedValue { m in
            // Report an open circuit whose cooldown is over as half-open: the next call probes.
            let state = m.state == .open && now >= m.openUntil ? .halfOpen : m.state
            return (state, m.consecutiveFailures, m.opened)
        }
    }
}
