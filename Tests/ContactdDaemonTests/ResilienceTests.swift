import ContactdCore
import ContactdDaemon
import ContactdJSON
import ContactdTestSupport
import FakeContactAPI
import Foundation
import InMemoryLogging
import Logging
import NIOCore
import Testing

/// Issue #4, one test per behaviour, against the loopback fake API; its call counts are the proof.
/// Time that matters to the cache (TTLs, cooldowns, Retry-After) runs on a `ManualClock`.
@Suite(.timeLimit(.minutes(1))) struct ResilienceTests {
    let clock = ManualClock()

    /// A daemon with a manual clock, `ttl` 10 s, one attempt per fetch unless `configure` says more.
    func withResilientDaemon<T: Sendable>(
        api: FakeContactAPI,
        configure: (inout DaemonConfiguration) -> Void = { _ in },
        _ body: @Sendable (TestDaemon, RawSocketClient) async throws -> T
    ) async throws -> T {
        let clock = self.clock
        let setUp: (inout DaemonConfiguration) -> Void = { c in
            c.clock = clock.clock
            c.cache.ttl = .seconds(10)
            c.policy.retryAttempts = 1
            c.policy.retryBaseDelay = .seconds(0.01)
            c.policy.refreshAhead = 0
            // Off (not shorter than the deadline): a loaded machine can take 200 ms to answer,
            // and these tests are about what the API said. The wait has its own test.
            c.policy.staleIfErrorWait = c.policy.deadline
            configure(&c)
        }
        return try await withDaemon(api: api, configure: setUp) { daemon in
            let client = try await RawSocketClient.connect(daemon.socketPath)
            let result = try await body(daemon, client)
            await client.close()
            return result
        }
    }

    func stats(_ client: RawSocketClient) async throws -> JSONValue {
        try #require(try await roundTrip(client, #"{"jsonrpc":"2.0","id":"s","method":"cache.stats"}"#)["result"])
    }

    /// Waits until `cache.stats` reports at least `count` misses (requests that joined or started
    /// a fetch), polling on a connection of its own.
    func waitForMisses(_ daemon: TestDaemon, _ count: Int) async throws {
        let probe = try await RawSocketClient.connect(daemon.socketPath)
        try await eventually("\(count) misses") { try await stats(probe)["misses"]?.intValue ?? 0 >= count }
        await probe.close()
    }

    func status(_ client: RawSocketClient) async throws -> JSONValue {
        try #require(try await roundTrip(client, #"{"jsonrpc":"2.0","id":"d","method":"daemon.status"}"#)["result"])
    }

    // MARK: 1. Freshness in two stages

    @Test func staleEntryIsAnsweredAtOnceWhileExactlyOneRefreshRuns() async throws {
        try await withFakeAPI { api in
            try await withResilientDaemon(api: api) { daemon, client async throws in
                #expect(try await roundTrip(client, getPhone(johnPhone)).cacheStatus == "miss")
                clock.advance(by: 11)
                api.hold()
                // 20 readers on 20 connections while the API is stuck: all answered at once.
                try await withThrowingTaskGroup(of: JSONValue.self) { group in
                    for i in 0..<20 {
                        group.addTask {
                            let c = try await RawSocketClient.connect(daemon.socketPath)
                            let reply = try await roundTrip(c, getPhone(johnPhone, id: i))
                            await c.close()
                            return reply
                        }
                    }
                    for try await reply in group {
                        #expect(reply.cacheStatus == "stale")
                        #expect(reply["result"]?["cache"]?["stale_reason"] == "refreshing")
                        #expect(reply["result"]?["cache"]?["age"]?.intValue == 11)
                        #expect(reply["result"]?["contact"]?["id"]?.stringValue == johnID)
                    }
                }
                try await api.waitForCalls(2)
                // max_age rules the stale entry out, so this joins the running refresh.
                let joined = Task { try await roundTrip(client, getPhone(johnPhone, id: 99, maxAge: 5)) }
                try await waitForMisses(daemon, 2)
                api.release()
                #expect(try await joined.value.cacheStatus == "miss")
                #expect(try await roundTrip(client, getPhone(johnPhone)).cacheStatus == "hit")
                #expect(api.calls == 2)
                let s = try await stats(client)
                #expect(s["stale_hits"]?.intValue == 20)
                #expect(s["refreshes"]?.intValue == 1)
            }
        }
    }

    @Test func pastTheStaleWindowALookupWaitsForTheAPI() async throws {
        try await withFakeAPI { api in
            try await withResilientDaemon(api: api, configure: { $0.policy.staleTTL = .seconds(60) }) {
                _,
                client async throws in
                _ = try await roundTrip(client, getPhone(johnPhone))
                clock.advance(by: 71)
                #expect(try await roundTrip(client, getPhone(johnPhone)).cacheStatus == "miss")
                #expect(api.calls == 2)
            }
        }
    }

    @Test(arguments: [
        (FakeContactAPI.Behavior.status(503), "upstream_unavailable"),
        (.drop, "upstream_unavailable"),
        (.status(429, retryAfter: "5"), "rate_limited"),
    ])
    func failedFetchServesTheStaleEntry(behavior: FakeContactAPI.Behavior, reason: String) async throws {
        try await withFakeAPI { api in
            let configure: (inout DaemonConfiguration) -> Void = { c in
                c.policy.staleTTL = .seconds(0)  // no stale-while-revalidate: every expired read fetches
                c.policy.staleIfError = .seconds(100)
            }
            try await withResilientDaemon(api: api, configure: configure) { _, client async throws in
                _ = try await roundTrip(client, getPhone(johnPhone))
                clock.advance(by: 50)
                api.setBehavior(behavior)
                let reply = try await roundTrip(client, getPhone(johnPhone))
                #expect(reply.cacheStatus == "stale")
                #expect(reply["result"]?["cache"]?["stale_reason"]?.stringValue == reason)
                #expect(api.calls == 2)
                // The client's max_age still wins: no stale answer older than it.
                let strict = try await roundTrip(client, getPhone(johnPhone, maxAge: 30))
                #expect(strict.errorReason == reason)
                // Past the stale-if-error window the error comes through.
                clock.advance(by: 100)
                #expect(try await roundTrip(client, getPhone(johnPhone)).errorReason == reason)
                #expect(try await stats(client)["stale_if_error"]?.intValue == 1)
                #expect(try await status(client)["api"]?["serving_stale_since"]?.stringValue != nil)
            }
        }
    }

    @Test func otherErrorsAreNotHiddenBehindStaleEntries() async throws {
        try await withFakeAPI { api in
            try await withResilientDaemon(api: api, configure: { $0.policy.staleTTL = .seconds(0) }) {
                _,
                client async throws in
                _ = try await roundTrip(client, getPhone(johnPhone))
                clock.advance(by: 11)
                api.setBehavior(.status(401))
                #expect(try await roundTrip(client, getPhone(johnPhone)).errorReason == "upstream_unauthorized")
            }
        }
    }

    // MARK: 2. Refresh-ahead

    @Test func hotEntryIsRefreshedBeforeItGoesStale() async throws {
        try await withFakeAPI { api in
            let configure: (inout DaemonConfiguration) -> Void = { c in
                c.policy.refreshAhead = 0.8
                c.policy.refreshAheadReads = 2
                c.policy.staleTTL = .seconds(0)
            }
            try await withResilientDaemon(api: api, configure: configure) { _, client async throws in
                _ = try await roundTrip(client, getPhone(johnPhone))
                clock.advance(by: 5)
                #expect(try await roundTrip(client, getPhone(johnPhone)).cacheStatus == "hit")
                #expect(api.calls == 1)  // hot, but not near its TTL yet
                clock.advance(by: 4)  // age 9 of 10: past 80 %
                #expect(try await roundTrip(client, getPhone(johnPhone)).cacheStatus == "hit")
                try await api.waitForCalls(2)
                // The refreshed entry is young: this is a hit (or joins the refresh), never stale.
                let next = try await roundTrip(client, getPhone(johnPhone, maxAge: 1))
                #expect(next.cacheStatus == "hit" || next.cacheStatus == "miss")
                clock.advance(by: 3)  // 12 s after the first fetch, 3 after the refresh
                let later = try await roundTrip(client, getPhone(johnPhone))
                #expect(later.cacheStatus == "hit")
                #expect(later["result"]?["cache"]?["age"]?.intValue == 3)
                #expect(api.calls == 2)
                #expect(try await stats(client)["refresh_aheads"]?.intValue == 1)
            }
        }
    }

    @Test func coldEntryIsNotRefreshedAhead() async throws {
        try await withFakeAPI { api in
            let configure: (inout DaemonConfiguration) -> Void = { c in
                c.policy.refreshAhead = 0.8
                c.policy.refreshAheadReads = 5
            }
            try await withResilientDaemon(api: api, configure: configure) { _, client async throws in
                _ = try await roundTrip(client, getPhone(johnPhone))
                clock.advance(by: 9)
                #expect(try await roundTrip(client, getPhone(johnPhone)).cacheStatus == "hit")
                #expect(try await stats(client)["refresh_aheads"]?.intValue == 0)
                #expect(api.calls == 1)
            }
        }
    }

    // MARK: 3. Retries

    @Test func transientFailuresAreRetriedWithinTheDeadline() async throws {
        try await withFakeAPI { api in
            api.script([.status(503), .drop, .status(502)])
            try await withResilientDaemon(api: api, configure: { $0.policy.retryAttempts = 4 }) {
                _,
                client async throws in
                let reply = try await roundTrip(client, getPhone(johnPhone))
                #expect(reply.cacheStatus == "miss")
                #expect(api.calls == 4)
                #expect(try await stats(client)["upstream"]?["retries"]?.intValue == 3)
            }
        }
    }

    @Test(arguments: [
        (FakeContactAPI.Behavior.status(500), "upstream_unavailable"), (.status(400), "rejected_by_api"),
        (.status(401), "upstream_unauthorized"), (.status(403), "upstream_unauthorized"),
        (.status(404), "not_found"), (.status(429), "rate_limited"),
    ])
    func permanentAnswersAreNotRetried(behavior: FakeContactAPI.Behavior, reason: String) async throws {
        try await withFakeAPI { api in
            api.setBehavior(behavior)
            try await withResilientDaemon(api: api, configure: { $0.policy.retryAttempts = 4 }) {
                _,
                client async throws in
                #expect(try await roundTrip(client, getPhone(johnPhone)).errorReason == reason)
                #expect(api.calls == 1)
            }
        }
    }

    /// The API never answers (it holds every call until the test is done): the reply can only
    /// come from the deadline, however slow the machine, and it says so; the attempts stop with it.
    @Test func retriesStopAtTheOverallDeadline() async throws {
        try await withFakeAPI { api in
            api.hold()
            defer { api.release() }
            let configure: (inout DaemonConfiguration) -> Void = { c in
                c.policy.deadline = .seconds(0.6)
                c.policy.retryAttempts = 10
            }
            try await withResilientDaemon(api: api, configure: configure) { _, client async throws in
                let reply = try await roundTrip(client, getPhone(johnPhone))
                #expect(reply.errorReason == "upstream_unavailable")
                let message = reply["error"]?["message"]?.stringValue ?? ""
                // The fetch's own timeout just before the waiter's deadline, or on a loaded machine
                // the waiter's deadline itself: either way a deadline, not an answer.
                #expect(
                    message.hasSuffix("timed out waiting for the API's answer")
                        || message.hasSuffix("no answer within the 600ms deadline"),
                    "\(message)"
                )
                // The first call may use the whole deadline; one hedge starts beside it at about
                // half of it, and none once too little time is left: not the ten attempts allowed
                // (fewer on a loaded machine, where a call may not even arrive within 0.6 s).
                #expect(api.calls <= 3, "\(api.calls) calls")
            }
        }
    }

    /// Issue #23, item 3: a slow API is not a dead one. With a 20 s deadline, an API that
    /// answers every call in 40 %, 60 % or 90 % of it is answered: the first attempt is never cut
    /// short (before, it got half of the time and the retry was cut again). 20 s, not 5: the
    /// 90 % case then keeps 1.9 s for a loaded machine's delays (10 s, keeping 0.9 s, was missed
    /// once with the whole suite running at once).
    @Test(arguments: [0.4, 0.6, 0.9])
    func aSlowAPIsAnswerWithinTheDeadlineIsTaken(fraction: Double) async throws {
        try await withFakeAPI { api in
            api.setDelay(.milliseconds(Int64(20_000 * fraction)))
            let configure: (inout DaemonConfiguration) -> Void = { c in
                c.policy.deadline = .seconds(20)
                c.policy.retryAttempts = 3
            }
            try await withResilientDaemon(api: api, configure: configure) { _, client async throws in
                try await client.send(getPhone(johnPhone) + "\n")
                let reply = try JSONParser.parse(Array(try #require(try await client.readLine(timeout: 30)).utf8))
                #expect(reply["result"]?["cache"]?["status"]?.stringValue == "miss", "\(reply)")
                // Hedges beside the slow call are allowed (at half and three quarters of the
                // time left), never more calls than --retry-attempts.
                #expect(api.calls <= 3)
            }
        }
    }

    /// Issue #23, item 4: past its stale window but inside --stale-if-error, a cached contact
    /// whose API is slow is answered after --stale-if-error-wait as stale (`upstream_slow`), not
    /// after the whole deadline; the fetch goes on and fills the cache when it lands.
    @Test func aSlowAPIIsAnsweredStaleAfterTheStaleIfErrorWait() async throws {
        try await withFakeAPI { api in
            let configure: (inout DaemonConfiguration) -> Void = { c in
                c.policy.staleTTL = .seconds(1)
                c.policy.staleIfErrorWait = .milliseconds(200)
            }
            try await withResilientDaemon(api: api, configure: configure) { _, client async throws in
                #expect(
                    try await roundTrip(client, getPhone(johnPhone))["result"]?["cache"]?["status"]?.stringValue
                        == "miss"
                )
                clock.advance(by: 60)  // past ttl (10 s) + stale-ttl (1 s), inside stale-if-error
                api.hold()
                // The API is held: only the stale-if-error wait can answer now, and it says so.
                let reply = try await roundTrip(client, getPhone(johnPhone))
                #expect(reply["result"]?["cache"]?["status"]?.stringValue == "stale", "\(reply)")
                #expect(reply["result"]?["cache"]?["stale_reason"]?.stringValue == "upstream_slow")
                api.release()
                try await api.waitForCalls(2)
                // The fetch went on behind the answer and filled the cache.
                try await eventually("the fetch behind the answer fills the cache") {
                    try await roundTrip(client, getPhone(johnPhone))["result"]?["cache"]?["status"]?.stringValue
                        == "hit"
                }
            }
        }
    }

    /// An API that accepts and never answers still ends at the deadline, its hanging calls are
    /// counted by the breaker, and the next lookup after the breaker opened fails at once.
    @Test func aHangingAPIEndsAtTheDeadlineAndOpensTheBreaker() async throws {
        try await withFakeAPI { api in
            api.hold()
            let configure: (inout DaemonConfiguration) -> Void = { c in
                // Long enough that the hedge at half of it has time to start on a loaded machine.
                c.policy.deadline = .seconds(4)
                c.policy.retryAttempts = 3
                c.policy.breakerFailures = 2
            }
            try await withResilientDaemon(api: api, configure: configure) { _, client async throws in
                // The API is held: only the deadline ends the lookup.
                let reply = try await roundTrip(client, getPhone(johnPhone))
                #expect(reply.errorReason == "upstream_unavailable")
                #expect(api.calls >= 2, "a hedge started beside the hanging call")
                let next = try await roundTrip(client, getPhone("+442079460958"))
                #expect(next["error"]?["message"]?.stringValue?.contains("circuit open") == true, "\(next)")
                api.release()
            }
        }
    }

    // MARK: 3b. 429 and Retry-After

    @Test func rateLimitedKeyIsNotAskedForAgainBeforeRetryAfter() async throws {
        try await withFakeAPI { api in
            try await withResilientDaemon(api: api) { _, client async throws in
                api.setBehavior(.status(429, retryAfter: "30"))
                #expect(try await roundTrip(client, getPhone(johnPhone)).errorReason == "rate_limited")
                api.setBehavior(.normal)
                let held = try await roundTrip(client, getPhone(johnPhone))
                #expect(held.errorReason == "rate_limited")
                #expect((held["error"]?["data"]?["retry_after"]?.intValue ?? 0) > 0)
                #expect(api.calls == 1)
                // Another key is not held back.
                #expect(try await roundTrip(client, getPhone("+442079460958")).cacheStatus == "miss")
                #expect(api.calls == 2)
                clock.advance(by: 31)
                #expect(try await roundTrip(client, getPhone(johnPhone)).cacheStatus == "miss")
                #expect(api.calls == 3)
            }
        }
    }

    @Test func rateLimitCanHoldEveryKey() async throws {
        try await withFakeAPI { api in
            try await withResilientDaemon(api: api, configure: { $0.policy.rateLimitAllKeys = true }) {
                _,
                client async throws in
                api.setBehavior(.status(429))  // no Retry-After: the default of 1 s applies
                #expect(try await roundTrip(client, getPhone(johnPhone)).errorReason == "rate_limited")
                api.setBehavior(.normal)
                #expect(try await roundTrip(client, getID(johnID)).errorReason == "rate_limited")
                #expect(api.calls == 1)
                clock.advance(by: 1.5)
                #expect(try await roundTrip(client, getID(johnID)).cacheStatus == "miss")
            }
        }
    }

    // MARK: 4. Circuit breaker and the token-rejected state

    @Test func circuitOpensFailsFastThenLetsOneProbeThrough() async throws {
        try await withFakeAPI { api in
            let configure: (inout DaemonConfiguration) -> Void = { c in
                c.policy.breakerFailures = 3
                c.policy.breakerCooldown = .seconds(10)
            }
            try await withResilientDaemon(api: api, configure: configure) { daemon, client async throws in
                api.setBehavior(.status(503))
                for i in 0..<3 {
                    #expect(
                        try await roundTrip(client, getPhone("+1555000000\(i)")).errorReason == "upstream_unavailable"
                    )
                }
                #expect(api.calls == 3)
                let refused = try await roundTrip(client, getPhone("+15550000009"))
                #expect(refused.errorReason == "upstream_unavailable")
                #expect(refused["error"]?["data"]?["retry_after"]?.intValue == 10)
                #expect(api.calls == 3)
                #expect(try await stats(client)["upstream"]?["circuit"]?["state"] == "open")
                #expect(try await status(client)["api"]?["state"] == "circuit_open")

                // After the cooldown: one probe; everyone else still fails fast meanwhile.
                clock.advance(by: 11)
                api.setBehavior(.normal)
                api.hold()
                let probe = Task { try await roundTrip(client, getPhone(johnPhone, id: 7)) }
                try await api.waitForCalls(4)
                let other = try await RawSocketClient.connect(daemon.socketPath)
                #expect(try await roundTrip(other, getID(johnID)).errorReason == "upstream_unavailable")
                #expect(api.calls == 4)
                api.release()
                #expect(try await probe.value.cacheStatus == "miss")
                #expect(try await roundTrip(other, getPhone("+442079460958")).cacheStatus == "miss")
                #expect(try await stats(client)["upstream"]?["circuit"]?["state"] == "closed")
                await other.close()
            }
        }
    }

    @Test func outageBehindAStaleKeyReturnsNoErrorsAndSparesTheAPI() async throws {
        try await withFakeAPI { api in
            let configure: (inout DaemonConfiguration) -> Void = { c in
                c.policy.breakerFailures = 3
                c.policy.breakerCooldown = .seconds(0.5)
                c.policy.retryAttempts = 3
                c.policy.retryMaxDelay = .seconds(0.2)
            }
            try await withResilientDaemon(api: api, configure: configure) { daemon, client async throws in
                _ = try await roundTrip(client, getPhone(johnPhone))
                clock.advance(by: 11)
                api.setBehavior(.status(503))
                let callsBefore = api.calls
                // 50 clients hammer the stale key while 2 s pass on the cache's clock.
                let errors = try await withThrowingTaskGroup(of: Int.self) { group in
                    for i in 0..<50 {
                        group.addTask {
                            let c = try await RawSocketClient.connect(daemon.socketPath)
                            var errors = 0
                            for n in 0..<20 {
                                let reply = try await roundTrip(c, getPhone(johnPhone, id: i * 100 + n))
                                if reply.cacheStatus != "stale" { errors += 1 }
                            }
                            await c.close()
                            return errors
                        }
                    }
                    group.addTask {
                        for _ in 0..<20 {
                            clock.advance(by: 0.1)
                            try await Task.sleep(for: .milliseconds(10))
                        }
                        return 0
                    }
                    return try await group.reduce(0, +)
                }
                #expect(errors == 0)
                // The breaker allows `breakerFailures` failures, then one probe per cooldown.
                let allowed = 3 + Int((2.0 / 0.5).rounded(.up)) + 1
                #expect(api.calls - callsBefore <= allowed, "API saw \(api.calls - callsBefore) calls")
                #expect(api.calls - callsBefore >= 3)
                let s = try await stats(client)
                #expect((s["upstream"]?["circuit"]?["opened"]?.intValue ?? 0) >= 1)
            }
        }
    }

    @Test func rejectedTokenIsOneVisibleStateNotAnErrorPerRequest() async throws {
        try await withFakeAPI { api in
            var handler = InMemoryLogHandler()
            handler.logLevel = .trace
            let logs = handler
            try await withDaemon(
                api: api,
                logger: Logger(label: "contactd-test") { _ in logs },
                configure: { c in
                    c.clock = clock.clock
                    c.policy.breakerCooldown = .seconds(10)
                }
            ) { daemon in
                let client = try await RawSocketClient.connect(daemon.socketPath)
                api.setBehavior(.status(401))
                for i in 0..<5 {
                    let reply = try await roundTrip(client, getPhone("+1555000000\(i)"))
                    #expect(reply.errorReason == "upstream_unauthorized")
                }
                #expect(api.calls == 1)  // the rest failed fast
                #expect(try await status(client)["api"]?["state"] == "token_rejected")
                #expect(try await stats(client)["upstream"]?["token_rejected"] == true)
                #expect(logs.entries.filter { "\($0.message)".contains("rejects the token") }.count == 1)
                // After the cooldown one call tries the token again; it works now.
                api.setBehavior(.normal)
                clock.advance(by: 11)
                #expect(try await roundTrip(client, getPhone(johnPhone)).cacheStatus == "miss")
                #expect(try await status(client)["api"]?["state"] == "ok")
                await client.close()
            }
        }
    }

    // MARK: 5. API budget

    @Test func concurrencyCapAndBoundedQueue() async throws {
        try await withFakeAPI { api in
            let configure: (inout DaemonConfiguration) -> Void = { c in
                c.policy.maxConcurrent = 2
                c.policy.queueLimit = 3
            }
            try await withResilientDaemon(api: api, configure: configure) { _, client async throws in
                api.hold()
                for i in 0..<10 {
                    try await client.send(getPhone("+1999555000\(i)", id: i) + "\n")
                }
                // 2 at the API, 3 queued, 5 refused at once.
                var overloaded = 0
                for _ in 0..<5 {
                    let reply = try JSONParser.parse(Array(try #require(try await client.readLine()).utf8))
                    if reply.errorReason == "overloaded" { overloaded += 1 }
                }
                #expect(overloaded == 5)
                try await api.waitForCalls(2)
                #expect(try await stats(client)["upstream"]?["queue_depth"]?.intValue == 3)
                api.setBehavior(.status(404))
                api.release()
                let rest = try await client.readLines(5)
                #expect(rest.allSatisfy { $0.contains("not_found") })
                #expect(api.calls == 5)
                #expect(api.maxInFlight == 2)
            }
        }
    }

    @Test func queuedFetchGivesUpAtItsDeadline() async throws {
        try await withFakeAPI { api in
            let configure: (inout DaemonConfiguration) -> Void = { c in
                c.policy.maxConcurrent = 1
                c.policy.deadline = .seconds(1)
            }
            try await withResilientDaemon(api: api, configure: configure) { _, client async throws in
                api.hold()
                // Both in one write: one takes the only slot (and times out at the API), the
                // other waits in the queue and gives up while an attempt would still fit.
                try await client.send(getPhone("+19995550001", id: 1) + "\n" + getPhone("+19995550002", id: 2) + "\n")
                let replies = try await client.readLines(2).map { try JSONParser.parse(Array($0.utf8)) }
                api.release()
                // The queued one says overloaded, 0.35 s before its waiter's deadline; a loaded
                // machine can miss that, and the waiter then hears the deadline's
                // upstream_unavailable. Either way neither is answered, and only one calls.
                let reasons = replies.compactMap(\.errorReason)
                #expect(reasons.count == 2 && Set(reasons).isSubset(of: ["overloaded", "upstream_unavailable"]))
                #expect(reasons.contains("upstream_unavailable"))
                // One call at most: the queued fetch never calls (on a loaded machine the held
                // one may not even have reached the API within the 1 s deadline).
                #expect(api.calls <= 1)
            }
        }
    }

    @Test func rateLimitSpacesAPICalls() async throws {
        try await withFakeAPI { api in
            // The token bucket needs real time: this daemon keeps the system clock.
            try await withDaemon(
                api: api,
                configure: { c in
                    c.policy.ratePerSecond = 10
                    c.policy.rateBurst = 1
                }
            ) { daemon in
                let client = try await RawSocketClient.connect(daemon.socketPath)
                let start = ContinuousClock.now
                for i in 0..<5 { try await client.send(getPhone("+1999555000\(i)", id: i) + "\n") }
                let lines = try await client.readLines(5)
                let elapsed = ContinuousClock.now - start
                #expect(lines.allSatisfy { $0.contains("not_found") })
                // Burst 1 at 10/s: the fifth call starts 0.4 s after the first.
                #expect(elapsed >= .milliseconds(380), "5 calls took \(elapsed)")
                await client.close()
            }
        }
    }

    @Test func coalescingHoldsUnderTheBudget() async throws {
        try await withFakeAPI { api in
            let configure: (inout DaemonConfiguration) -> Void = { c in
                c.policy.maxConcurrent = 1
                c.policy.queueLimit = 1
                // The API is held until all 200 requests have arrived; under ThreadSanitizer that
                // took longer than the default 5 s deadline, and a timed-out fetch is retried.
                c.policy.deadline = .seconds(60)
            }
            try await withResilientDaemon(api: api, configure: configure) { daemon, client async throws in
                api.hold()
                for i in 0..<200 { try await client.send(getPhone(johnPhone, id: i) + "\n") }
                try await waitForMisses(daemon, 200)
                api.release()
                let lines = try await client.readLines(200)
                #expect(lines.allSatisfy { $0.contains(#""status":"miss""#) })
                #expect(api.calls == 1)
            }
        }
    }

    @Test func aThousandConcurrentMissesForOneKeyCostOneAPICall() async throws {
        try await withFakeAPI { api in
            // On a loaded machine (a benchmark alongside) the held fetch outlived the default 5 s
            // upstream timeout and the callers' 5 s deadline: errors, and a retry's second call.
            let configure: (inout DaemonConfiguration) -> Void = { c in
                c.policy.deadline = .seconds(60)
            }
            try await withResilientDaemon(api: api, configure: configure) { daemon, _ async throws in
                api.hold()
                var clients: [RawSocketClient] = []
                for c in 0..<50 {
                    let client = try await RawSocketClient.connect(daemon.socketPath)
                    let lines = (0..<20).map { getPhone(johnPhone, id: c * 100 + $0) + "\n" }.joined()
                    try await client.send(lines)
                    clients.append(client)
                }
                try await waitForMisses(daemon, 1000)
                api.release()
                for client in clients {
                    let lines = try await client.readLines(20)
                    #expect(lines.allSatisfy { $0.contains(#""status":"miss""#) })
                    await client.close()
                }
                #expect(api.calls == 1)
            }
        }
    }

    // MARK: 6. Careful waiting; state tied to the token

    @Test func aWaiterLeavingNeverCancelsTheSharedFetch() async throws {
        try await withFakeAPI { api in
            try await withResilientDaemon(api: api) { daemon, client async throws in
                api.hold()
                let leaver = try await RawSocketClient.connect(daemon.socketPath)
                try await leaver.send(getPhone(johnPhone) + "\n")
                try await api.waitForCalls(1)
                await leaver.close()
                try await client.send(getPhone(johnPhone, id: 2) + "\n")
                try await waitForMisses(daemon, 2)
                api.release()
                let reply = try JSONParser.parse(Array(try #require(try await client.readLine()).utf8))
                #expect(reply.cacheStatus == "miss")
                #expect(try await roundTrip(client, getPhone(johnPhone, id: 3)).cacheStatus == "hit")
                #expect(api.calls == 1)
            }
        }
    }

    @Test func everyWaiterGetsTheRealError() async throws {
        try await withFakeAPI { api in
            try await withResilientDaemon(api: api) { daemon, client async throws in
                api.setBehavior(.status(500))
                api.hold()
                for i in 0..<10 { try await client.send(getPhone(johnPhone, id: i) + "\n") }
                try await waitForMisses(daemon, 10)
                api.release()
                let lines = try await client.readLines(10)
                for line in lines {
                    let reply = try JSONParser.parse(Array(line.utf8))
                    #expect(reply.errorReason == "upstream_unavailable")
                    #expect(reply["error"]?["message"]?.stringValue?.contains("500") == true)
                }
                #expect(api.calls == 1)
            }
        }
    }

    @Test func eachWaiterKeepsItsOwnDeadline() async throws {
        try await withFakeAPI { api in
            try await withResilientDaemon(api: api, configure: { $0.policy.deadline = .seconds(0.5) }) {
                _,
                client async throws in
                api.hold()
                try await client.send(getPhone(johnPhone) + "\n")
                let reply = try JSONParser.parse(Array(try #require(try await client.readLine()).utf8))
                #expect(reply.errorReason == "upstream_unavailable")
                // The API never answers, so only a deadline ends it: the 0.5 s one (its fetch's own
                // timeout just before it, or on a loaded machine the waiter's deadline), not the
                // default 5 s (a wall-clock bound told this less well, and a loaded machine came
                // within 1.3 s of it).
                let message = reply["error"]?["message"]?.stringValue ?? ""
                #expect(
                    message.hasSuffix("timed out waiting for the API's answer")
                        || message.hasSuffix("no answer within the 500ms deadline"),
                    "\(message)"
                )
                api.release()
            }
        }
    }
}
