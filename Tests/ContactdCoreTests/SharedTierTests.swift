import ContactdCore
import ContactdProtocol
import ContactdTestSupport
import Synchronization
import Testing

/// A shared tier in memory that answers `lookUp` and `awaitPeer` as told and records every call.
final class FakeSharedTier: SharedTier {
    struct Calls: Sendable {
        var lookUps: [(key: ContactKey, lease: Double)] = []
        var awaited: [ContactKey] = []
        var stored: [(value: CachedValue, key: ContactKey, lifetime: Double, claim: String)] = []
        var released: [(claim: String, key: ContactKey)] = []
        var invalidated: [[ContactKey]] = []
    }

    private let state = Mutex<(lookUp: SharedLookup, peer: SharedEntry?, calls: Calls)>((.unavailable, nil, Calls()))

    init(answering lookUp: SharedLookup, peer: SharedEntry? = nil) {
        state.withLock {
            $0.lookUp = lookUp
            $0.peer = peer
        }
    }

    var calls: Calls { state.withLock { $0.calls } }

    func lookUp(_ key: ContactKey, lease: Double) async -> SharedLookup {
        state.withLock {
            $0.calls.lookUps.append((key, lease))
            return $0.lookUp
        }
    }

    func awaitPeer(_ key: ContactKey, until deadline: Double) async -> SharedEntry? {
        state.withLock {
            $0.calls.awaited.append(key)
            return $0.peer
        }
    }

    func store(_ value: CachedValue, for key: ContactKey, lifetime: Double, claim: String) {
        state.withLock { $0.calls.stored.append((value, key, lifetime, claim)) }
    }

    func release(_ claim: String, for key: ContactKey) {
        state.withLock { $0.calls.released.append((claim, key)) }
    }

    func invalidate(_ keys: [ContactKey]) async -> Bool {
        state.withLock { $0.calls.invalidated.append(keys) }
        return true
    }

    func invalidateAll() async -> Bool { true }
}

/// Core's fleet logic (issue #25, item 2): what a lookup does with each answer of the shared
/// tier: claims, leases, waiting for a peer, sharing what the API said, and invalidations, with a
/// fake tier and an in-memory API (the three-process tests are `SharedCacheTests`).
@Suite struct SharedTierTests {
    static let john = makeContact("j1", phone: "+14155551234")

    func makeLookup(_ source: ScriptedSource, _ tier: FakeSharedTier) -> ContactResolver {
        let clock = ManualClock()
        var policy = UpstreamPolicy()
        policy.deadline = .seconds(60)
        policy.retryAttempts = 1
        return ContactResolver(
            cache: ContactCache(configuration: CacheConfiguration(), clock: clock.clock),
            source: source,
            policy: policy,
            clock: clock.clock,
            shared: tier
        )
    }

    @Test func anEntryAnotherHostStoredIsAnsweredWithItsAgeAndKeptHere() async throws {
        let source = ScriptedSource(.success(Self.john))
        let tier = FakeSharedTier(answering: .found(SharedEntry(value: .contact(Self.john), age: 30)))
        let lookup = makeLookup(source, tier)
        let first = try await lookup.get(phone("+14155551234"), maxAge: nil).get()
        #expect(
            first.tier == .shared && first.age == 30 && first.status == .hit,
            "docs/protocol.md: a shared answer is a hit"
        )
        #expect(source.calls == 0, "the API is not asked")
        let second = try await lookup.get(phone("+14155551234"), maxAge: nil).get()
        #expect(second.tier == .local && second.status == .hit)
        #expect(tier.calls.lookUps.count == 1)
        // Half the deadline: a host that dies holding a claim delays the others by that.
        #expect(tier.calls.lookUps.first?.lease == 30)
    }

    @Test func aClaimedMissCallsTheAPIOnceAndSharesWhatItSaid() async throws {
        let source = ScriptedSource(.success(Self.john))
        let tier = FakeSharedTier(answering: .claimed(token: "t1 5"))
        let lookup = makeLookup(source, tier)
        let result = try await lookup.get(phone("+14155551234"), maxAge: nil).get()
        #expect(result.tier == .api && source.calls == 1)
        let stored = tier.calls.stored
        #expect(stored.count == 1)
        #expect(stored.first?.claim == "t1 5" && stored.first?.key == phone("+14155551234"))
        #expect(stored.first?.value == .contact(Self.john))
        // As long as any host could still answer from it: the TTL and the longer stale window.
        let policy = UpstreamPolicy()
        #expect(stored.first?.lifetime == 300 + max(policy.staleTTL.seconds, policy.staleIfError.seconds))
        #expect(tier.calls.released.isEmpty)
    }

    @Test func aNotFoundIsSharedForTheNegativeTTL() async throws {
        let tier = FakeSharedTier(answering: .claimed(token: "t2 0"))
        let lookup = makeLookup(ScriptedSource(.failure(.notFound)), tier)
        #expect(await lookup.get(phone("+19995550100"), maxAge: nil) == .failure(.notFound))
        #expect(tier.calls.stored.first?.value == .notFound)
        #expect(tier.calls.stored.first?.lifetime == 60)
    }

    @Test func aFailedFetchReleasesTheClaimAndSharesNothing() async throws {
        let tier = FakeSharedTier(answering: .claimed(token: "t3 0"))
        let failure = LookupError.unavailable(detail: "503", retryAfter: nil)
        let lookup = makeLookup(ScriptedSource(.failure(failure)), tier)
        _ = await lookup.get(phone("+14155551234"), maxAge: nil)
        #expect(tier.calls.stored.isEmpty)
        #expect(tier.calls.released.map(\.claim) == ["t3 0"])
    }

    @Test func anotherHostsFetchIsAwaitedNotRepeated() async throws {
        let source = ScriptedSource(.success(Self.john))
        let tier = FakeSharedTier(
            answering: .fetchedElsewhere,
            peer: SharedEntry(value: .contact(Self.john), age: 0)
        )
        let lookup = makeLookup(source, tier)
        let result = try await lookup.get(phone("+14155551234"), maxAge: nil).get()
        #expect(result.tier == .shared && source.calls == 0)
        #expect(tier.calls.awaited == [phone("+14155551234")])
        #expect(tier.calls.stored.isEmpty, "this host holds no claim: it stores nothing")
    }

    @Test func whenThePeerBringsNothingTheHostAsksTheAPIItselfWithoutAClaim() async throws {
        let source = ScriptedSource(.success(Self.john))
        let tier = FakeSharedTier(answering: .fetchedElsewhere, peer: nil)
        let lookup = makeLookup(source, tier)
        let result = try await lookup.get(phone("+14155551234"), maxAge: nil).get()
        #expect(result.tier == .api && source.calls == 1)
        #expect(tier.calls.stored.isEmpty && tier.calls.released.isEmpty)
    }

    @Test func anUnavailableTierIsPassedOver() async throws {
        let source = ScriptedSource(.success(Self.john))
        let tier = FakeSharedTier(answering: .unavailable)
        let lookup = makeLookup(source, tier)
        let result = try await lookup.get(phone("+14155551234"), maxAge: nil).get()
        #expect(result.tier == .api && source.calls == 1)
        #expect(tier.calls.stored.isEmpty)
    }

    /// The lease rule's local half: an invalidation while the claimed fetch is in flight voids
    /// it; the fetch's answer reaches its waiter but is neither kept nor shared, and the claim is
    /// given back. The invalidation names every key of the contact to the tier.
    @Test func anInvalidationDuringAClaimedFetchSharesNothing() async throws {
        let source = ScriptedSource(.success(Self.john))
        source.hold()
        let tier = FakeSharedTier(answering: .claimed(token: "t4 0"))
        let lookup = makeLookup(source, tier)
        async let answer = lookup.get(phone("+14155551234"), maxAge: nil)
        try await eventually("the fetch reaches the API") { source.calls == 1 }
        let invalidation = await lookup.invalidate(phone("+14155551234"))
        #expect(invalidation.fleet == true)
        #expect(tier.calls.invalidated == [[phone("+14155551234")]])
        source.release()
        #expect(try await answer.get().contact == Self.john)
        #expect(tier.calls.stored.isEmpty)
        #expect(tier.calls.released.map(\.claim) == ["t4 0"])
        #expect(lookup.cached(phone("+14155551234"), maxAge: nil) == nil, "not kept here either")
    }
}
