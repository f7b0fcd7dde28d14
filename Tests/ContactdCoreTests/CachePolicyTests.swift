import ContactdReplay
import ContactdTestSupport
import NIOConcurrencyHelpers
import Testing

@testable import ContactdCore

/// The cache's policy (docs/caching.md, "Which entries stay"): its structure holds under random
/// operations, and it keeps what a steady caller uses while another scans.
@Suite struct CachePolicyTests {
    /// Every list, the index, the counts and the bounds agree with the entries there are.
    static func checkInvariants(_ cache: ContactCache, _ note: @autoclosure () -> String) {
        let configuration = cache.configuration
        cache.state.withLockedValue { state in
            var seen = 0
            var keys = 0
            var bytes = 0
            for segment in Segment.allCases {
                let list = state.segments[Int(segment.rawValue)]
                var slot = list.head
                var previous = -1
                var length = 0
                while slot >= 0 {
                    let node = state.nodes[slot]
                    #expect(node.record != nil, "\(note()): a freed slot is linked")
                    #expect(
                        node.segment == segment,
                        "\(note()): slot \(slot) linked in \(segment), says \(node.segment)"
                    )
                    #expect(Int(node.previous) == previous, "\(note()): broken back link at \(slot)")
                    var entryKeys = 0
                    Record(node).forEachKey { key in
                        entryKeys += 1
                        #expect(state.slot(for: key) == slot, "\(note()): a key of slot \(slot) finds another")
                    }
                    keys += entryKeys
                    bytes += ContactCache.cost(recordLength: Int(node.length), keys: entryKeys)
                    length += 1
                    previous = slot
                    slot = Int(node.next)
                }
                #expect(list.tail == previous, "\(note()): \(segment)'s tail")
                #expect(list.count == length, "\(note()): \(segment) counts \(list.count), links \(length)")
                seen += length
            }
            #expect(seen == state.count, "\(note()): \(seen) linked, \(state.count) counted")
            #expect(state.nodes.filter { $0.record != nil }.count == state.count, "\(note()): a live slot is unlinked")
            #expect(bytes == state.bytes, "\(note()): bytes")
            #expect(state.index.count == keys, "\(note()): index holds \(state.index.count), entries have \(keys)")
            #expect(state.count <= configuration.maxEntries, "\(note()): over the entry bound")
            #expect(state.bytes <= configuration.maxBytes, "\(note()): over the byte bound")
            #expect(PolicyConfiguration.candidates.contains(state.configuration))
        }
    }

    /// 120 caches of random bounds, 300 random operations each: inserts of contacts (by id, own
    /// number or an alias) and not-found entries of random sizes, reads, refreshes, removals,
    /// emptying, dropping not-found entries, restores and the clock moving past TTLs. It yields
    /// after each cache: a test that holds one of the two cooperative threads for seconds
    /// starves the timing tests beside it.
    @Test func invariantsHoldUnderRandomOperations() async {
        var random = SplitMix64(seed: 0x24)
        let paddings = [0, 10, 300, 1_000, 5_000]
        for round in 0..<120 {
            await Task.yield()
            var configuration = CacheConfiguration()
            configuration.maxEntries = 1 + random.next(40)
            configuration.maxBytes = random.next(2) == 0 ? Int.max : 2_000 + random.next(20_000)
            configuration.ttl = .seconds(30)
            configuration.negativeTTL = .seconds(10)
            let clock = ManualClock()
            let cache = ContactCache(configuration: configuration, clock: clock.clock)
            for step in 0..<300 {
                let i = random.next(60)
                let contact = makeContact("p\(i)", phone: "+1415555\(1000 + i)", padding: paddings[i % paddings.count])
                switch random.next(12) {
                case 0..<4:
                    let asked = [cid("p\(i)"), phone("+1415555\(1000 + i)"), phone("+1415556\(1000 + i)")][
                        random.next(3)
                    ]
                    cache.insert(.contact(contact), for: asked, restored: random.next(10) == 0)
                case 4: cache.insert(.notFound, for: phone("+1415557\(1000 + i)"))
                case 5..<9: _ = cache.read(cid("p\(i)"))
                case 9: _ = cache.remove([cid("p\(i)"), phone("+1415555\(1000 + i)")][random.next(2)])
                case 10:
                    switch random.next(20) {
                    case 0: _ = cache.removeAll()
                    case 1: _ = cache.removeNotFound()
                    default: clock.advance(by: Double(random.next(20)))
                    }
                default: _ = cache.read(phone("+1415557\(1000 + i)"))
                }
                Self.checkInvariants(cache, "round \(round) step \(step)")
            }
        }
    }

    /// One caller reads 500 contacts over and over; another walks through 50,000 new ones, a read
    /// of each between two of the first's. The steady caller's hit ratio stays above 90 % in a
    /// cache of 1,000, where LRU (replayed on the same sequence) keeps far less.
    @Test func aScanningCallerDoesNotEvictWhatAnotherUses() async {
        var configuration = CacheConfiguration()
        configuration.maxEntries = 1_000
        configuration.maxBytes = Int.max
        let cache = ContactCache(configuration: configuration)
        let lru = LRUPolicy(capacity: 1_000)
        var random = SplitMix64(seed: 99)
        func access(_ name: String, key: UInt64) -> (Bool, Bool) {
            let hit = cache.read(cid(name)) != nil
            if !hit { cache.insert(.contact(makeContact(name)), for: cid(name)) }
            return (hit, lru.access(key))
        }
        for _ in 0..<10_000 {
            let hot = random.next(500)
            _ = access("hot\(hot)", key: UInt64(hot))
        }
        var hits = (contactd: 0, lru: 0)
        let reads = 50_000
        for scan in 0..<reads {
            if scan % 1_000 == 0 { await Task.yield() }
            let hot = random.next(500)
            let (hit, lruHit) = access("hot\(hot)", key: UInt64(hot))
            if hit { hits.contactd += 1 }
            if lruHit { hits.lru += 1 }
            _ = access("scan\(scan)", key: 1_000_000 + UInt64(scan))
        }
        let ratio = Double(hits.contactd) / Double(reads)
        let lruRatio = Double(hits.lru) / Double(reads)
        print("steady caller's hit ratio while another scans: contactd \(ratio), LRU \(lruRatio)")
        #expect(ratio > 0.9)
        #expect(ratio > lruRatio + 0.1)
    }
}
