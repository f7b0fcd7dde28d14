import ContactdCore
import NIOConcurrencyHelpers
import Testing

@Suite(.timeLimit(.minutes(1))) struct DeadlineSchedulerTests {
    /// Schedules `count` actions, `spacing` apart in reverse order, and returns the order they ran in.
    @Test func actionsRunInTheOrderOfTheirInstantsNotOfScheduling() async {
        let scheduler = DeadlineScheduler(tick: .milliseconds(5))
        let ran = NIOLockedValueBox<[Int]>([])
        let start = ContinuousClock.now
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            for i in (0..<5).reversed() {
                scheduler.schedule(at: start + .milliseconds(20 * (i + 1))) {
                    let count = ran.withLockedValue {
                        $0.append(i)
                        return $0.count
                    }
                    if count == 5 { done.resume() }
                }
            }
        }
        #expect(ran.withLockedValue { $0 } == [0, 1, 2, 3, 4])
        #expect(ContinuousClock.now - start >= .milliseconds(100))
    }

    @Test func aCancelledActionNeverRunsAndAnActionThatRanIsNotKept() async throws {
        let scheduler = DeadlineScheduler(tick: .milliseconds(5))
        let ranCancelled = NIOLockedValueBox(false)
        // Seconds away: the scheduler runs on its own thread, and a loaded machine can pause this
        // test between the schedule and the cancel.
        let token = scheduler.schedule(at: .now + .seconds(2)) { ranCancelled.withLockedValue { $0 = true } }
        #expect(scheduler.cancel(token))
        #expect(!scheduler.cancel(token))
        // A later action that does run proves the loop went past the cancelled one's instant.
        let ran = NIOLockedValueBox<DeadlineScheduler.Token?>(nil)
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            ran.withLockedValue { $0 = scheduler.schedule(at: .now + .seconds(2.1)) { done.resume() } }
        }
        #expect(!ranCancelled.withLockedValue { $0 })
        // An action that ran is no longer held: there is nothing left to cancel.
        #expect(scheduler.cancel(try #require(ran.withLockedValue { $0 })) == false)
    }

    /// An action scheduled earlier than the one the loop sleeps for runs at most a tick late.
    @Test func anEarlierActionScheduledWhileTheLoopSleepsRunsAboutOnTime() async {
        let scheduler = DeadlineScheduler(tick: .milliseconds(10))
        let late = scheduler.schedule(at: .now + .seconds(30)) {}
        let start = ContinuousClock.now
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            scheduler.schedule(at: start + .milliseconds(20)) { done.resume() }
        }
        // Far less than the 30 s the loop could have slept for; generous for a loaded machine.
        #expect(ContinuousClock.now - start < .seconds(2))
        scheduler.cancel(late)
    }

    /// `sleep(until:)` ends at its instant, or at once when its task is cancelled (the hedge timer
    /// every fetch starts is cancelled when the attempt answers).
    @Test func aSleepEndsAtItsInstantOrWhenCancelled() async {
        let scheduler = DeadlineScheduler(tick: .milliseconds(10))
        let start = ContinuousClock.now
        await scheduler.sleep(until: start + .milliseconds(50))
        #expect(ContinuousClock.now - start >= .milliseconds(50))
        let long = Task { await scheduler.sleep(until: .now + .seconds(60)) }
        long.cancel()
        await long.value  // a minute if cancellation were not heard; the suite's limit is one
        let cancelledFirst = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            await scheduler.sleep(until: .now + .seconds(60))
        }
        await cancelledFirst.value
    }
}
