import NIOConcurrencyHelpers
import RedisClient

/// The one way this host's writes reach Redis: in the order they were made, never from loose
/// tasks. A fill queued before an invalidation is applied before it, and one queued after it
/// meets the invalidation's marks (the lease rule, docs/scale.md).
///
/// Whatever is queued when the loop comes round goes out in one pipeline, so a miss storm costs
/// a round trip per batch, not per write. `run(send:)` is the loop; it belongs to `SharedCacheService`.
final class SharedCacheWriter: Sendable {
    /// Commands to send, and who hears their replies (`nil` replies: not sent or not answered).
    struct Job: Sendable {
        var commands: [[RedisArgument]]
        var done: (@Sendable ([RESPValue]?) -> Void)?
    }

    private struct Queue {
        var jobs: [Job] = []
        var finished = false
    }

    private let queue = NIOLockedValueBox(Queue())
    private let wake: AsyncStream<Void>
    private let wakeUp: AsyncStream<Void>.Continuation
    init() {
        (wake, wakeUp) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Queues `commands`; `done` hears their replies once they are answered.
    func enqueue(_ commands: [[RedisArgument]], done: (@Sendable ([RESPValue]?) -> Void)? = nil) {
        let accepted = queue.withLockedValue { queue -> Bool in
            guard !queue.finished else { return false }
            queue.jobs.append(Job(commands: commands, done: done))
            return true
        }
        if accepted { wakeUp.yield() } else { done?(nil) }
    }

    /// Queues `commands` and waits for their replies.
    func write(_ commands: [[RedisArgument]]) async -> [RESPValue]? {
        await withCheckedContinuation { continuation in
            enqueue(commands) { continuation.resume(returning: $0) }
        }
    }

    /// Sends what is queued, in order, with `send` (`SharedCache.send`, which knows the
    /// connection's state), until `finish()`; then answers what is left with `nil`.
    func run(send: @Sendable ([[RedisArgument]]) async -> [RESPValue]?) async {
        for await _ in wake {
            while true {
                let jobs = queue.withLockedValue { queue in
                    defer { queue.jobs = [] }
                    return queue.jobs
                }
                if jobs.isEmpty { break }
                let replies = await send(jobs.flatMap(\.commands))
                var next = 0
                for job in jobs {
                    let count = job.commands.count
                    let own = replies.flatMap { $0.count >= next + count ? Array($0[next..<next + count]) : nil }
                    next += count
                    job.done?(own)
                }
            }
        }
        finish()
    }

    /// Refuses new jobs and answers the queued ones with `nil`.
    func finish() {
        let left = queue.withLockedValue { queue in
            queue.finished = true
            defer { queue.jobs = [] }
            return queue.jobs
        }
        for job in left { job.done?(nil) }
        wakeUp.finish()
    }
}
