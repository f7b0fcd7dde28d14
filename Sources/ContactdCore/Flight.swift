import ContactdProtocol
import NIOConcurrencyHelpers

/// What a fetch found: a contact, how old it is and where it came from.
struct Fetch: Sendable, Equatable {
    var contact: APIContact
    var age: Double = 0
    /// `.api`, or `.shared` when another host had fetched it.
    var tier: CacheTier = .api
}

/// One fetch in progress and the callers waiting for it, each with its own deadline.
final class Flight: Sendable {
    private let state = NIOLockedValueBox(State())

    private struct State {
        var result: Result<Fetch, LookupError>?
        var waiters: [Int: Waiter] = [:]
        var nextID = 0
    }

    private struct Waiter {
        let continuation: CheckedContinuation<Result<Fetch, LookupError>?, Never>
        var deadline: DeadlineScheduler.Token?
    }

    /// The fetch's result, or `nil` when `timeout` seconds pass first or the caller is cancelled.
    /// Leaving early never cancels the fetch.
    func wait(timeout: Double) async -> Result<Fetch, LookupError>? {
        // An instant, fixed now: however late the scheduler runs, the wait ends when it was due.
        let until = ContinuousClock.now + .seconds(timeout)
        let id = state.withLockedValue { s in
            s.nextID += 1
            return s.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let done: Result<Fetch, LookupError>? = state.withLockedValue { s in
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
    func finish(_ result: Result<Fetch, LookupError>) {
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
