import ContactdCore
import ContactdTestSupport
import Testing

func makeContact(_ id: String, phone: String? = nil, padding: Int = 0) -> APIContact {
    var body = #"{"id":"\#(id)""#
    if let phone { body += #","phone_number":"\#(phone)""# }
    if padding > 0 { body += #","notes":"\#(String(repeating: "x", count: padding))""# }
    body += "}"
    return try! APIContact(apiBody: Array(body.utf8))
}

func phone(_ text: String) -> ContactKey { .phone(PhoneNumber(text)!) }
func cid(_ text: String) -> ContactKey { .id(ContactID(text)!) }

@Suite struct ContactCacheTests {
    func makeCache(
        maxEntries: Int = 100,
        maxBytes: Int = 1 << 20,
        ttl: Double = 300,
        negativeTTL: Double = 60
    ) -> (ContactCache, ManualClock) {
        var configuration = CacheConfiguration()
        configuration.maxEntries = maxEntries
        configuration.maxBytes = maxBytes
        configuration.ttl = .seconds(ttl)
        configuration.negativeTTL = .seconds(negativeTTL)
        let clock = ManualClock()
        return (ContactCache(configuration: configuration, clock: clock.clock), clock)
    }

    /// A full cache keeps its bound and the entry just stored; an entry asked for again stays
    /// while keys asked for once come and go (the frequency filter).
    @Test func keepsWhatIsAskedForAgainWhenFull() {
        let (cache, _) = makeCache(maxEntries: 3)
        for name in ["a", "b", "c"] { cache.insert(.contact(makeContact(name)), for: cid(name)) }
        for _ in 0..<3 { _ = cache.probe(cid("a")) }
        for i in 0..<20 {
            cache.insert(.contact(makeContact("once\(i)")), for: cid("once\(i)"))
            #expect(cache.counts.entries == 3)
            #expect(cache.probe(cid("once\(i)")) != .absent)
        }
        #expect(cache.probe(cid("a")) != .absent)
        #expect(cache.counts.evictions == 20)
        let policy = cache.policy
        #expect(policy.evictedForCapacity + policy.evictedExpired == 20)
    }

    /// An entry past its TTL loses its place to any new one, and is counted as evicted expired,
    /// not for capacity.
    @Test func evictionsAreCountedByCause() {
        let (cache, clock) = makeCache(maxEntries: 2, ttl: 10)
        cache.insert(.contact(makeContact("old")), for: cid("old"))
        clock.advance(by: 11)
        for i in 0..<5 { cache.insert(.contact(makeContact("n\(i)")), for: cid("n\(i)")) }
        let policy = cache.policy
        #expect(cache.probe(cid("old")) == .absent)
        #expect(policy.evictedExpired == 1)
        #expect(policy.evictedForCapacity == 3)
        cache.resetEvictions()
        #expect(cache.policy.evictedExpired == 0 && cache.policy.evictedForCapacity == 0)
        #expect(cache.policy.refusedAdmissions == 0)
    }

    @Test func staysWithinItsByteBound() {
        let contact = makeContact("x0", padding: 1000)
        let cost = ContactCache.cost(of: .contact(contact), keys: [cid("x0")])
        let (cache, _) = makeCache(maxBytes: cost * 3 + cost / 2)
        for i in 0..<10 {
            cache.insert(.contact(makeContact("x\(i)", padding: 1000)), for: cid("x\(i)"))
            #expect(cache.counts.bytes <= cost * 3 + cost / 2)
        }
        #expect(cache.counts.entries == 3)
        #expect(cache.counts.evictions == 7)
        #expect(cache.probe(cid("x9")) != .absent)
    }

    @Test func recordMemoryIsReusedNotGrownByChurn() {
        // 50 entries at a time, 20,000 inserted: evicted records' chunks must be reused. A leak
        // of one chunk per eviction would hold 5,000 × (40 + 930 + 3,030) bytes, 20 of the slab's
        // 1 MiB pages.
        let (cache, _) = makeCache(maxEntries: 50, maxBytes: Int.max)
        let sizes = [10, 900, 3_000, 5_000]
        for i in 0..<20_000 {
            let key = "c\(100_000 + i)"  // one length: the records come in three sizes
            cache.insert(.contact(makeContact(key, padding: sizes[i % sizes.count])), for: cid(key))
        }
        #expect(cache.counts.entries == 50)
        // A page for each of the three small sizes, and at most 50 records of their own (which
        // sizes the 50 kept entries have is the policy's choice).
        #expect(cache.slabBytes <= (3 << 20) + 50 * 5_200)
        let oversized = cache.read(cid("c119999")) { $0.json?.count }
        #expect(oversized == makeContact("c119999", padding: 5_000).json.count)
        #expect(cache.removeAll() == 50)
        #expect(cache.slabBytes == 0)
    }

    @Test func doesNotStoreAnEntryLargerThanTheWholeBound() {
        let (cache, _) = makeCache(maxBytes: 500)
        cache.insert(.contact(makeContact("big", padding: 1000)), for: cid("big"))
        #expect(cache.probe(cid("big")) == .absent)
        #expect(cache.counts.bytes == 0)
    }

    @Test func contactIsFreshUntilTTLThenExpired() {
        let (cache, clock) = makeCache(ttl: 300)
        let contact = makeContact("a")
        cache.insert(.contact(contact), for: cid("a"))
        clock.advance(by: 299)
        #expect(cache.probe(cid("a")) == .fresh(.contact(contact), age: 299))
        clock.advance(by: 1)
        #expect(cache.probe(cid("a")) == .expired(.contact(contact), age: 300))
    }

    @Test func notFoundEntriesUseTheNegativeTTL() {
        let (cache, clock) = makeCache(ttl: 300, negativeTTL: 60)
        cache.insert(.notFound, for: phone("+15550000000"))
        clock.advance(by: 59)
        #expect(cache.probe(phone("+15550000000")) == .fresh(.notFound, age: 59))
        clock.advance(by: 1)
        #expect(cache.probe(phone("+15550000000")) == .expired(.notFound, age: 60))
    }

    @Test func oneEntryIsReachableByRequestedNumberOwnNumberAndID() {
        let (cache, _) = makeCache()
        let contact = makeContact("id-1", phone: "+1 415 555 1234")
        cache.insert(.contact(contact), for: phone("+14155550000"))
        #expect(cache.counts.entries == 1)
        for key in [phone("+14155550000"), phone("+14155551234"), cid("id-1")] {
            #expect(cache.probe(key) == .fresh(.contact(contact), age: 0))
        }
    }

    @Test func removingByAnyKeyRemovesTheWholeEntry() {
        let (cache, _) = makeCache()
        cache.insert(.contact(makeContact("id-1", phone: "+14155551234")), for: cid("id-1"))
        #expect(cache.remove(phone("+14155551234")) == 1)
        #expect(cache.probe(cid("id-1")) == .absent)
        #expect(cache.remove(cid("id-1")) == 0)
        #expect(cache.counts == (0, 0, 0))
    }

    @Test func aNewerEntryReplacesOlderOnesSharingAKey() {
        let (cache, _) = makeCache()
        cache.insert(.notFound, for: phone("+14155551234"))
        let contact = makeContact("id-1", phone: "+14155551234")
        cache.insert(.contact(contact), for: cid("id-1"))
        #expect(cache.counts.entries == 1)
        #expect(cache.probe(phone("+14155551234")) == .fresh(.contact(contact), age: 0))
        #expect(cache.counts.evictions == 0)
    }

    @Test func removeAllEmptiesTheCacheAndCountsEntries() {
        let (cache, _) = makeCache()
        for name in ["a", "b"] { cache.insert(.contact(makeContact(name)), for: cid(name)) }
        cache.insert(.notFound, for: cid("c"))
        #expect(cache.removeAll() == 3)
        #expect(cache.counts.entries == 0)
        #expect(cache.counts.bytes == 0)
        #expect(cache.probe(cid("a")) == .absent)
    }

    @Test func freedSlotsAreReusedAndOrderStaysConsistent() {
        let (cache, _) = makeCache(maxEntries: 2)
        for i in 0..<50 {
            cache.insert(.contact(makeContact("k\(i)")), for: cid("k\(i)"))
            if i % 3 == 0 { _ = cache.remove(cid("k\(i)")) }
        }
        // k48 was removed; k49, the newest, is in the window.
        #expect(cache.counts.entries == 2)
        #expect(cache.probe(cid("k49")) != .absent)
        #expect(cache.removeAll() == 2)
    }

    /// The cache's own index (open addressing, backward-shift deletion, rebuilt as it grows)
    /// against a plain model: 4,000 random inserts, reads and removals over 1,500 keys, with
    /// aliases (a contact asked for by a number that is not its own), not-found entries and growth
    /// from empty, with room for every key (which entries a full cache keeps is the policy's
    /// business: `CachePolicyTests`); after each step every touched key must answer as the model
    /// says, and periodically every key. It yields now and then: a test that holds one of the two
    /// cooperative threads for seconds starves the timing tests beside it.
    @Test func indexAgreesWithAModelUnderRandomOperations() async {
        struct Model {
            var entries: [(keys: [ContactKey], value: CachedValue)] = []  // most recent first
            func find(_ key: ContactKey) -> Int? { entries.firstIndex { $0.keys.contains(key) } }
        }
        var random = SplitMix64(seed: 0x5EED)
        let limit = 2_000
        let (cache, _) = makeCache(maxEntries: limit, maxBytes: Int.max)
        var model = Model()
        func number(_ i: Int) -> String { "+1415555" + String(String(10_000 + i).dropFirst()) }
        // Ids past 15 bytes (not inline in a `String`), and sizes from a few bytes to past the
        // slab's largest chunk (4 KiB: an allocation of its own).
        func ident(_ i: Int) -> String { i % 7 == 0 ? "m\(i)-" + String(repeating: "l", count: 20 + i % 100) : "m\(i)" }
        let paddings = [0, 1, 9, 100, 470, 2_000, 4_100]
        // Some numbers spelled with spaces in the JSON: their normalised bytes are not in it, so
        // the record must hold them itself.
        func spelled(_ i: Int) -> String { i % 5 == 0 ? "+1 415 555 " + number(i).dropFirst(8) : number(i) }
        let contacts = (0..<500).map {
            makeContact(ident($0), phone: spelled($0), padding: paddings[$0 % paddings.count])
        }
        func phoneKey(_ i: Int) -> ContactKey { phone(number(i)) }
        let universe = (0..<1_000).map(phoneKey) + (0..<500).map { cid(ident($0)) }

        func check(_ key: ContactKey) {
            let expected = model.find(key).map { model.entries[$0].value }
            #expect(cache.read(key)?.value == expected, "key \(key)")
            // The hit path's view in place agrees.
            let json = cache.read(key) { $0.json.map { Array($0) } ?? [] }
            switch expected {
            case .contact(let contact): #expect(json == contact.json)
            case .notFound: #expect(json == [])
            case nil: #expect(json == nil)
            }
            if let at = model.find(key) { model.entries.insert(model.entries.remove(at: at), at: 0) }
        }

        for step in 0..<4_000 {
            if step % 100 == 0 { await Task.yield() }
            let roll = Int.random(in: 0..<10, using: &random)
            let i = Int.random(in: 0..<500, using: &random)
            switch roll {
            case 0..<4:
                // A contact, asked for by its own number, its id, or an alias number (500–999).
                let asked = [phoneKey(i), cid(ident(i)), phoneKey(500 + i)][Int.random(in: 0..<3, using: &random)]
                let contact = contacts[i]
                cache.insert(.contact(contact), for: asked)
                var keys = [asked]
                for own in contact.ownKeys where own != asked { keys.append(own) }
                model.entries.removeAll { entry in entry.keys.contains { keys.contains($0) } }
                model.entries.insert((keys, .contact(contact)), at: 0)
                if model.entries.count > limit { model.entries.removeLast(model.entries.count - limit) }
            case 4:
                let asked = phoneKey(Int.random(in: 0..<1_000, using: &random))
                cache.insert(.notFound, for: asked)
                model.entries.removeAll { $0.keys.contains(asked) }
                model.entries.insert(([asked], .notFound), at: 0)
                if model.entries.count > limit { model.entries.removeLast(model.entries.count - limit) }
            case 5:
                let key = universe[Int.random(in: 0..<universe.count, using: &random)]
                let removed = cache.remove(key)
                let at = model.find(key)
                #expect(removed == (at == nil ? 0 : 1))
                if let at { model.entries.remove(at: at) }
            default:
                check(universe[Int.random(in: 0..<universe.count, using: &random)])
            }
            #expect(cache.counts.entries == model.entries.count)
            if step % 1_000 == 0 {
                // Reading every key reorders both the same way, so the check stays exact; a wrong
                // order shows as a wrong entry evicted later.
                for key in universe { check(key) }
            }
        }
        for key in universe { check(key) }
    }
}
