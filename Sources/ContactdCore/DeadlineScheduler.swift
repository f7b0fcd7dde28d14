import Foundation
import NIOConcurrencyHelpers

/// Runs actions at instants from one thread of its own, so that a wait with a deadline costs an
/// entry in a heap rather than a sleeping task of its own.
///
/// Why not a task per wait: almost every wait ends early (the API answers), and a `Task.sleep`
/// cancelled early keeps its allocation until the instant it was sleeping for. With a 5 s
/// deadline and thousands of misses a second, those sleepers pinned glibc heap pages long after
/// the burst, and the daemon's RSS stayed tens of MiB above its cache (docs/benchmarks.md,
/// "Memory after a miss storm").
///
/// Why a thread and not a task: a task on the global cooperative pool (two threads here) wakes
/// only when a pool thread is free, so anything that kept both busy delayed every waiter's
/// deadline by as long (a test saw a 20 ms action run two seconds late, issue #23, item 15).
///
/// The loop wakes at the earliest pending instant, or after `tick` at the latest, so an action
/// scheduled earlier than the one being slept for runs at most `tick` late (a `schedule` also
/// wakes it at once). The thread ends when nothing is pending and starts again with the next
/// `schedule`: an idle daemon has no timer thread.
package final class DeadlineScheduler: Sendable {
    /// Names a scheduled action, for `cancel(_:)`.
    package struct Token: Sendable, Hashable {
        fileprivate let id: UInt64
    }

    private struct Entry {
        let at: ContinuousClock.Instant
        let id: UInt64
    }

    private struct State {
        /// A binary min-heap by instant; cancelled entries stay until they come up.
        var heap: [Entry] = []
        var actions: [UInt64: @Sendable () -> Void] = [:]
        var nextID: UInt64 = 0
        var running = false

        mutating func push(_ entry: Entry) {
            heap.append(entry)
            var child = heap.count - 1
            while child > 0 {
                let parent = (child - 1) / 2
                guard heap[child].at < heap[parent].at else { break }
                heap.swapAt(child, parent)
                child = parent
            }
        }

        mutating func popFirst() -> Entry? {
            guard !heap.isEmpty else { return nil }
            heap.swapAt(0, heap.count - 1)
            let first = heap.removeLast()
            var parent = 0
            while true {
                let left = 2 * parent + 1
                let right = left + 1
                var smallest = parent
                if left < heap.count, heap[left].at < heap[smallest].at { smallest = left }
                if right < heap.count, heap[right].at < heap[smallest].at { smallest = right }
                if smallest == parent { break }
                heap.swapAt(parent, smallest)
                parent = smallest
            }
            return first
        }
    }

    /// The one the daemon's waits share.
    package static let shared = DeadlineScheduler(tick: .milliseconds(10))

    private let state = NIOLockedValueBox(State())
    private let wake = WakeUp()
    private let tick: Duration

    /// - Parameter tick: the longest the loop sleeps while anything is pending.
    package init(tick: Duration) {
        self.tick = tick
    }

    /// Runs `action` at `instant` (or up to `tick` after it), unless cancelled first. The action
    /// runs on the scheduler's thread and must be short.
    @discardableResult
    package func schedule(at instant: ContinuousClock.Instant, _ action: @escaping @Sendable () -> Void) -> Token {
        let (token, start) = state.withLockedValue { s in
            s.nextID += 1
            s.actions[s.nextID] = action
            s.push(Entry(at: instant, id: s.nextID))
            defer { s.running = true }
            return (Token(id: s.nextID), !s.running)
        }
        if start {
            Thread.detachNewThread { [self] in run() }
        } else {
            wake.signal()
        }
        return token
    }

    /// Drops a scheduled action; returns whether it had not run yet.
    @discardableResult
    package func cancel(_ token: Token) -> Bool {
        state.withLockedValue { $0.actions.removeValue(forKey: token.id) != nil }
    }

    private func run() {
        var wakeAt = ContinuousClock.now
        while true {
            wake.wait(until: wakeAt)
            let now = ContinuousClock.now
            let (due, idle) = state.withLockedValue { s -> ([@Sendable () -> Void], Bool) in
                var due: [@Sendable () -> Void] = []
                while let first = s.heap.first, first.at <= now {
                    _ = s.popFirst()
                    if let action = s.actions.removeValue(forKey: first.id) { due.append(action) }
                }
                if s.actions.isEmpty {
                    // Idle: give the heap's memory back and end; the next schedule starts a thread.
                    s.heap = []
                    s.running = false
                    return (due, true)
                }
                wakeAt = min(s.heap.first?.at ?? now + tick, now + tick)
                return (due, false)
            }
            for action in due { action() }
            if idle { return }
        }
    }
}

/// A wake-up that a sleeper can wait for until an instant: a pthread condition on the monotonic
/// clock (a wall-clock jump must not move deadlines). A signal that comes while nobody waits is
/// kept for the next wait.
private final class WakeUp: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    private var signalled = false

    init() {
        pthread_mutex_init(&mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(&condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(&condition)
        pthread_mutex_destroy(&mutex)
    }

    func signal() {
        pthread_mutex_lock(&mutex)
        signalled = true
        pthread_cond_signal(&condition)
        pthread_mutex_unlock(&mutex)
    }

    /// Returns at `instant`, or earlier when signalled.
    func wait(until instant: ContinuousClock.Instant) {
        let left = ContinuousClock.now.duration(to: instant)
        guard left > .zero else { return }
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let (seconds, attoseconds) = left.components
        var nanoseconds = Int(deadline.tv_nsec) + Int(attoseconds / 1_000_000_000)
        deadline.tv_sec += Int(seconds) + nanoseconds / 1_000_000_000
        nanoseconds %= 1_000_000_000
        deadline.tv_nsec = nanoseconds
        pthread_mutex_lock(&mutex)
        while !signalled {
            if pthread_cond_timedwait(&condition, &mutex, &deadline) == ETIMEDOUT { break }
        }
        signalled = false
        pthread_mutex_unlock(&mutex)
    }
}

extension DeadlineScheduler {
    /// Returns at `instant`, or at once when the task is cancelled. A heap entry, not a sleeping
    /// task: a cancelled `Task.sleep` keeps its allocation until the instant it slept for, and
    /// the hedge timer every fetch starts is almost always cancelled (see the type's notes).
    package func sleep(until instant: ContinuousClock.Instant) async {
        let wait = Sleep(scheduler: self)
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                wait.start(continuation)
                wait.scheduled(schedule(at: instant) { wait.finish() })
            }
        } onCancel: {
            wait.finish()
        }
    }
}

/// One `sleep(until:)`: resumed once, by its instant or by cancellation, whichever comes first.
private final class Sleep: Sendable {
    private struct State {
        var continuation: CheckedContinuation<Void, Never>?
        var token: DeadlineScheduler.Token?
        var done = false
    }

    private let state = NIOLockedValueBox(State())
    private let scheduler: DeadlineScheduler

    init(scheduler: DeadlineScheduler) { self.scheduler = scheduler }

    func start(_ continuation: CheckedContinuation<Void, Never>) {
        let finished = state.withLockedValue { state in
            if !state.done { state.continuation = continuation }
            return state.done
        }
        if finished { continuation.resume() }
    }

    func scheduled(_ token: DeadlineScheduler.Token) {
        let finished = state.withLockedValue { state in
            if !state.done { state.token = token }
            return state.done
        }
        if finished { scheduler.cancel(token) }
    }

    func finish() {
        let (continuation, token) = state.withLockedValue {
            state -> (CheckedContinuation<Void, Never>?, DeadlineScheduler.Token?) in
            guard !state.done else { return (nil, nil) }
            state.done = true
            defer { state.continuation = nil }
            return (state.continuation, state.token)
        }
        if let token { scheduler.cancel(token) }
        continuation?.resume()
    }
}
