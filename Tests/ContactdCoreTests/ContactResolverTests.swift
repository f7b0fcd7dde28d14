import ContactdCore
import ContactdProtocol
import ContactdTestSupport
import Synchronization
import Testing

/// An in-memory `ContactSource` that counts calls and can hold answers until released.
final class ScriptedSource: ContactSource {
    private let state = Mutex<State>(State())
    private struct State {
        var calls = 0
        var held = false
        var waiting: [CheckedContinuation<Void, Never>] = []
        var result: Result<APIContact, LookupError> = .failure(.notFound)
    }

    init(_ result: Result<APIContact, LookupError>) {
        state.withLock { $0.result = result }
    }

    var calls: Int { state.withLock { $0.calls } }

    func hold() { state.withLock { $0.held = true } }

    func release() {
        let waiting = state.withLock { state in
            state.held = false
            defer { state.waiting = [] }
            return state.waiting
        }
        for continuation in waiting { continuation.resume() }
    }

    func setResult(_ result: Result<APIContact, LookupError>) { state.withLock { $0.result = result } }

    func fetch(_ key: ContactKey, timeout: Double) async throws(LookupError) -> APIContact {
        await withCheckedContinuation { continuation in
            let park = state.withLock { state in
                state.calls += 1
                if state.held { state.waiting.append(continuation) }
                return state.held
            }
            if !park { continuation.resume() }
        }
        return try state.withLock { $0.result }.get()
    }
}

@Suite struct ContactLookupTests {
    func makeLookup(_ source: ScriptedSource) -> (ContactResolver, ManualClock) {
        let clock = ManualClock()
        let cache = ContactCache(configuration: CacheConfiguration(), clock: clock.clock)
        // The deadline is real time, and these tests are not about it: at the suite's start, with
        // every suite setting up at once, a fetch from this in-memory source once took over 5 s
        // to be scheduled, and its lookup timed out.
        var policy = UpstreamPolicy()
        policy.deadline = .seconds(60)
        return (ContactResolver(cache: cache, source: source, policy: policy), clock)
    }

    @Test func missThenHitCallsTheSourceOnce() async throws {
        let source = ScriptedSource(.success(makeContact("a", phone: "+14155551234")))
        let (lookup, clock) = makeLookup(source)
        let first = try await lookup.get(phone("+14155551234"), maxAge: nil).get()
        #expect(first.status == .miss)
        clock.advance(by: 7)
        let second = try await lookup.get(cid("a"), maxAge: nil).get()
        #expect(second.status == .hit)
        #expect(second.age == 7)
        #expect(source.calls == 1)
        #expect(lookup.stats.hits == 1)
        #expect(lookup.stats.misses == 1)
    }

    /// A reload's TTLs and stale windows hold from the next read, for entries cached before it.
    @Test func reconfiguredTTLsHoldForEntriesAlreadyCached() async throws {
        let source = ScriptedSource(.success(makeContact("a")))
        let (lookup, clock) = makeLookup(source)
        _ = try await lookup.get(cid("a"), maxAge: nil).get()
        clock.advance(by: 120)
        #expect(try lookup.cached(cid("a"), maxAge: nil)?.get().status == .hit, "fresh under the default 5m")
        var policy = lookup.policy
        policy.staleTTL = .seconds(10)
        policy.refreshAhead = 0
        lookup.reconfigure(policy: policy, ttl: .seconds(100), negativeTTL: .seconds(5))
        #expect(lookup.policy.staleTTL == .seconds(10))
        // 120 s old: past the new 100 s TTL and its 10 s stale window.
        #expect(lookup.cached(cid("a"), maxAge: nil) == nil, "past the new TTL and stale window")
        lookup.reconfigure(policy: policy, ttl: .seconds(115), negativeTTL: .seconds(5))
        #expect(try lookup.cached(cid("a"), maxAge: nil)?.get().status == .stale)
        lookup.reconfigure(policy: policy, ttl: .seconds(200), negativeTTL: .seconds(5))
        #expect(try lookup.cached(cid("a"), maxAge: nil)?.get().status == .hit)
    }

    @Test func concurrentMissesForOneKeyShareOneFetch() async throws {
        let source = ScriptedSource(.success(makeContact("a")))
        source.hold()
        let (lookup, _) = makeLookup(source)
        try await withThrowingTaskGroup(of: CacheStatus.self) { group in
            for _ in 0..<100 {
                group.addTask { try await lookup.get(cid("a"), maxAge: nil).get().status }
            }
            // All 100 have registered their miss before the single fetch is let go.
            while lookup.stats.misses < 100 || source.calls < 1 { await Task.yield() }
            #expect(source.calls == 1)
            source.release()
            for try await status in group { #expect(status == .miss) }
        }
        #expect(source.calls == 1)
        #expect(lookup.stats.upstreamRequests == 1)
    }

    @Test func notFoundIsCachedUntilTheNegativeTTL() async {
        let source = ScriptedSource(.failure(.notFound))
        let (lookup, clock) = makeLookup(source)
        #expect(await lookup.get(cid("nope"), maxAge: nil) == .failure(.notFound))
        #expect(await lookup.get(cid("nope"), maxAge: nil) == .failure(.notFound))
        #expect(source.calls == 1)
        clock.advance(by: 60)
        #expect(await lookup.get(cid("nope"), maxAge: nil) == .failure(.notFound))
        #expect(source.calls == 2)
    }

    @Test func otherErrorsAreNotCached() async {
        let source = ScriptedSource(.failure(.unavailable(detail: "down", retryAfter: nil)))
        let (lookup, _) = makeLookup(source)
        _ = await lookup.get(cid("a"), maxAge: nil)
        source.setResult(.success(makeContact("a")))
        #expect((try? await lookup.get(cid("a"), maxAge: nil).get().status) == .miss)
        #expect(source.calls == 2)
        #expect(lookup.stats.upstreamErrors == 1)
    }

    @Test func maxAgeRefetchesOlderEntriesAndZeroAlwaysFetches() async throws {
        let source = ScriptedSource(.success(makeContact("a")))
        let (lookup, clock) = makeLookup(source)
        _ = await lookup.get(cid("a"), maxAge: nil)
        clock.advance(by: 10)
        #expect(try await lookup.get(cid("a"), maxAge: 30).get().status == .hit)
        #expect(try await lookup.get(cid("a"), maxAge: 5).get().status == .miss)
        #expect(try await lookup.get(cid("a"), maxAge: 0).get().status == .miss)
        #expect(source.calls == 3)
    }

    @Test func invalidateForcesTheNextLookupToFetch() async throws {
        let source = ScriptedSource(.success(makeContact("a", phone: "+14155551234")))
        let (lookup, _) = makeLookup(source)
        _ = await lookup.get(cid("a"), maxAge: nil)
        #expect(await lookup.invalidate(phone("+14155551234")) == Invalidation(removed: 1, fleet: nil))
        #expect(try await lookup.get(cid("a"), maxAge: nil).get().status == .miss)
        #expect(await lookup.invalidateAll() == Invalidation(removed: 1, fleet: nil))
        #expect(source.calls == 2)
    }

    @Test func notFoundEntriesBelongToTheTokenTheyWereLearnedWith() async {
        let source = ScriptedSource(.failure(.notFound))
        let (lookup, _) = makeLookup(source)
        _ = await lookup.get(cid("a"), maxAge: nil)
        lookup.tokenReloaded(changed: false)
        #expect(await lookup.get(cid("a"), maxAge: nil) == .failure(.notFound))
        #expect(source.calls == 1)  // same token: still cached
        lookup.tokenReloaded(changed: true)
        #expect(lookup.stats.entries == 0)
        _ = await lookup.get(cid("a"), maxAge: nil)
        #expect(source.calls == 2)
    }

    @Test func aNotFoundThatArrivesAfterTheTokenChangedIsNotCached() async {
        let source = ScriptedSource(.failure(.notFound))
        source.hold()
        let (lookup, _) = makeLookup(source)
        let pending = Task { await lookup.get(cid("a"), maxAge: nil) }
        while source.calls < 1 { await Task.yield() }
        lookup.tokenReloaded(changed: true)
        source.release()
        #expect(await pending.value == .failure(.notFound))
        #expect(lookup.stats.entries == 0)
    }

    /// Issue #23, item 1: emptying the cache used to leave it with TTLs of zero, so every later
    /// lookup answered stale and called the API, and not-found answers were never cached.
    @Test func emptyingTheCacheKeepsItCaching() async throws {
        let source = ScriptedSource(.success(makeContact("a", phone: "+14155551234")))
        let (lookup, _) = makeLookup(source)
        _ = try await lookup.get(cid("a"), maxAge: nil).get()
        _ = await lookup.invalidateAll()
        var statuses: [CacheStatus] = []
        for _ in 0..<4 { statuses.append(try await lookup.get(cid("a"), maxAge: nil).get().status) }
        #expect(statuses == [.miss, .hit, .hit, .hit])
        #expect(source.calls == 2)
        source.setResult(.failure(.notFound))
        _ = lookup.dropAllLocally()
        #expect(await lookup.get(cid("b"), maxAge: nil) == .failure(.notFound))
        #expect(await lookup.get(cid("b"), maxAge: nil) == .failure(.notFound))
        #expect(source.calls == 3, "the not-found answer is cached after emptying, too")
        #expect(lookup.cache.ttls.contact == 300)
    }

    /// Issue #23, item 2: a fetch in flight when the contact is invalidated answers the callers
    /// that were waiting for it, but is not stored: the next lookup fetches the new version.
    @Test(arguments: ["by the key fetched", "by its id", "everything", "by the fleet"])
    func aFetchInFlightDoesNotUndoAnInvalidation(how: String) async throws {
        let source = ScriptedSource(.success(makeContact("a", phone: "+14155551234", padding: 1)))
        source.hold()
        let (lookup, _) = makeLookup(source)
        let waiting = Task { try await lookup.get(phone("+14155551234"), maxAge: nil).get() }
        while source.calls < 1 { await Task.yield() }
        switch how {
        case "by the key fetched": _ = await lookup.invalidate(phone("+14155551234"))
        case "by its id": _ = await lookup.invalidate(cid("a"))
        case "everything": _ = await lookup.invalidateAll()
        default: _ = lookup.dropLocally([cid("a")])
        }
        source.setResult(.success(makeContact("a", phone: "+14155551234", padding: 2)))
        source.release()
        let first = try await waiting.value
        #expect(first.contact.id == ContactID("a"), "the waiting caller hears the fetch's answer")
        #expect(lookup.stats.entries == 0, "the version fetched before the invalidation is not stored")
        let next = try await lookup.get(phone("+14155551234"), maxAge: nil).get()
        #expect(next.status == .miss)
        #expect(next.contact == makeContact("a", phone: "+14155551234", padding: 2))
        #expect(try await lookup.get(cid("a"), maxAge: nil).get().status == .hit)
    }

    /// A lookup that arrives after the invalidation does not join the fetch begun before it.
    @Test(.timeLimit(.minutes(1))) func aLookupAfterAnInvalidationStartsItsOwnFetch() async throws {
        let source = ScriptedSource(.success(makeContact("a", phone: "+14155551234", padding: 1)))
        source.hold()
        let (lookup, _) = makeLookup(source)
        let before = Task { await lookup.get(phone("+14155551234"), maxAge: nil) }
        while source.calls < 1 { await Task.yield() }
        _ = await lookup.invalidate(phone("+14155551234"))
        let after = Task { await lookup.get(phone("+14155551234"), maxAge: nil) }
        while source.calls < 2 { await Task.yield() }
        source.setResult(.success(makeContact("a", phone: "+14155551234", padding: 2)))
        source.release()
        _ = await before.value
        #expect(try await after.value.get().contact == makeContact("a", phone: "+14155551234", padding: 2))
        #expect(
            try lookup.cached(cid("a"), maxAge: nil)?.get().contact
                == makeContact("a", phone: "+14155551234", padding: 2)
        )
    }
}
