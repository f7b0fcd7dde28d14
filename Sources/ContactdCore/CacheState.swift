/// Where an entry is in the policy (docs/caching.md, "Which entries stay").
enum Segment: UInt8, CaseIterable {
    /// Keys seen for the first time, in arrival order; a hit moves one to the window.
    case nursery
    /// New entries, least recently used last; the oldest is the candidate for main.
    case window
    /// Main's entries not asked for since they came in; the oldest is main's victim.
    case probation
    /// Main's entries asked for again (at most 80 % of main).
    case protected
}

/// An entry's node: 32 bytes (its record, age, reads, segment and 32-bit list links).
struct Node {
    var record: UnsafeMutableRawPointer?
    var storedAt: Double
    var length: UInt32
    /// Reads since stored, saturating (refresh-ahead needs a few; the snapshot keeps them).
    var reads: UInt16
    var segment: Segment
    var previous: Int32
    var next: Int32
}

/// One segment's list: its newest and oldest entry and how many it has.
struct SegmentList {
    var head = -1
    var tail = -1
    var count = 0
}

/// The cache's entries and its policy: a slab of nodes linked into four segments, the key index,
/// the records, the frequency sketch and the simulations that choose the configuration.
///
/// Slab indices instead of class references: no per-entry object, no reference counting on the
/// hit path, and freed slots are reused. Only ever used under `ContactCache`'s lock, hence
/// `@unchecked Sendable` for the raw record pointers.
struct CacheState: @unchecked Sendable {
    var nodes: [Node] = []
    var freeSlots: [Int32] = []
    var index = KeyIndex()
    var slab = RecordSlab()
    var segments = [SegmentList](repeating: SegmentList(), count: Segment.allCases.count)
    var count = 0
    var bytes = 0
    /// Entries evicted for room, by whether they were still fresh; and candidates refused by main
    /// (nursery and window entries that left without being admitted, counted in `evicted` too).
    var evicted: (capacity: Int, expired: Int) = (0, 0)
    var refusedAdmissions = 0
    /// The TTLs in seconds, as ages are counted (read on every hit, under the lock already held;
    /// a reload changes them with `ContactCache.setTTLs`).
    var ttlSeconds: (contact: Double, notFound: Double) = (0, 0)
    /// What was invalidated while fills were under way (the invalidation rule).
    var invalidations = InvalidationLog()
    var sketch = FrequencySketch()
    var shadows: PolicyShadows
    var configuration: PolicyConfiguration

    init(maxEntries: Int) {
        shadows = PolicyShadows(capacity: maxEntries)
        configuration = shadows.configuration
    }

    /// The slot of the entry that has `key` (whose hash is `hash`).
    func slot(for key: KeyBytes, hash: Int) -> Int? {
        index.find(hash: hash) { Record(nodes[$0]).has(key) }
    }

    func slot(for key: KeyBytes) -> Int? {
        slot(for: key, hash: key.hash)
    }

    // MARK: Accesses

    /// Counts an access to the key whose hash is `hash` (a hit, or a miss being filled), in the
    /// sketch and the simulations.
    mutating func count(access hash: Int) {
        sketch.increment(hash)
        if shadows.record(hash) { configuration = shadows.configuration }
    }

    /// A hit on `slot`: into the window from the nursery, into protected from probation, to the
    /// front of its segment otherwise.
    mutating func touch(_ slot: Int) {
        if nodes[slot].reads < .max { nodes[slot].reads += 1 }
        switch nodes[slot].segment {
        case .nursery, .window: moveToFront(slot, of: .window)
        case .probation:
            moveToFront(slot, of: .protected)
            demoteProtected()
        case .protected: moveToFront(slot, of: .protected)
        }
    }

    /// Where a new entry for a key with `hash` goes: a first-seen key to the nursery when the
    /// configuration has one, others to the window. (Call before counting the access.)
    func segment(forNew hash: Int) -> Segment {
        configuration.nursery > 0 && configuration.filters && sketch.frequency(hash) == 0 ? .nursery : .window
    }

    // MARK: Entries

    /// Stores an entry at the front of `segment`; `false` when no memory could be had for its
    /// record.
    mutating func add(_ layout: Record.Layout, storedAt: Double, reads: Int, segment: Segment) -> Bool {
        let length = layout.length
        guard let record = slab.allocate(length) else { return false }
        layout.write(at: record)
        let node = Node(
            record: record,
            storedAt: storedAt,
            length: UInt32(length),
            reads: UInt16(clamping: reads),
            segment: segment,
            previous: -1,
            next: -1
        )
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = Int(free)
            nodes[slot] = node
        } else {
            slot = nodes.count
            nodes.append(node)
        }
        link(slot, to: segment)
        var keys = 0
        Record(node).forEachKey { _ in keys += 1 }
        count += 1
        bytes += ContactCache.cost(recordLength: length, keys: keys)
        sketch.ensureCapacity(count)
        if index.needsGrowth(adding: keys) {
            // Rebuild from the entries: the index keeps no keys, only where to find them.
            index = KeyIndex(capacityFor: index.count + keys)
            for live in nodes.indices where nodes[live].record != nil {
                Record(nodes[live]).forEachKey { index.insert(hash: $0.hash, slot: live) }
            }
        } else {
            Record(node).forEachKey { index.insert(hash: $0.hash, slot: slot) }
        }
        return true
    }

    mutating func remove(_ slot: Int) {
        unlink(slot)
        let node = nodes[slot]
        var keys = 0
        Record(node).forEachKey {
            index.remove(hash: $0.hash, slot: slot)
            keys += 1
        }
        count -= 1
        bytes -= ContactCache.cost(recordLength: Int(node.length), keys: keys)
        slab.deallocate(node.record!, length: Int(node.length))
        nodes[slot].record = nil
        freeSlots.append(Int32(slot))
    }

    /// Every live slot, segment by segment (nursery, window, probation, protected), oldest first.
    func slotsOldestFirst() -> [Int] {
        var slots: [Int] = []
        slots.reserveCapacity(count)
        for segment in Segment.allCases {
            var slot = list(segment).tail
            while slot >= 0 {
                slots.append(slot)
                slot = Int(nodes[slot].previous)
            }
        }
        return slots
    }

    // MARK: Eviction

    /// Evicts until the cache holds at most `maxEntries` entries and `maxBytes` bytes, and
    /// keeps each segment to its share: the nursery's oldest go first, then the window's oldest
    /// meets main's oldest and the one asked for less often goes (the filter), then main's oldest.
    /// While the cache is within its bounds, entries over a segment's share only move on.
    mutating func evict(maxEntries: Int, maxBytes: Int, now: Double) {
        while true {
            let over = count > maxEntries || bytes > maxBytes
            if list(.nursery).count > share(configuration.nursery) {
                let oldest = list(.nursery).tail
                if over {
                    refusedAdmissions += 1
                    evict(oldest, now: now)
                } else {
                    moveToFront(oldest, of: .window)
                }
                continue
            }
            if list(.window).count > share(configuration.window) {
                let candidate = list(.window).tail
                let victim = oldest(of: .probation) ?? oldest(of: .protected)
                if over, let victim {
                    if admits(candidate, over: victim, now: now) {
                        evict(victim, now: now)
                        moveToFront(candidate, of: .probation)
                    } else {
                        refusedAdmissions += 1
                        evict(candidate, now: now)
                    }
                } else {
                    moveToFront(candidate, of: .probation)
                }
                continue
            }
            guard over else { return }
            guard
                let victim = oldest(of: .probation) ?? oldest(of: .protected) ?? oldest(of: .window)
                    ?? oldest(of: .nursery)
            else { return }
            evict(victim, now: now)
        }
    }

    /// Whether main takes `candidate` over `victim`: always without the filter or when the
    /// victim is past its TTL; else only a key asked for more often than the victim's, and more
    /// than once.
    private func admits(_ candidate: Int, over victim: Int, now: Double) -> Bool {
        guard configuration.filters, !isExpired(victim, now: now) else { return true }
        let candidateFrequency = sketch.frequency(Record(nodes[candidate]).requested.hash)
        return candidateFrequency > max(1, sketch.frequency(Record(nodes[victim]).requested.hash))
    }

    private mutating func evict(_ slot: Int, now: Double) {
        if isExpired(slot, now: now) { evicted.expired += 1 } else { evicted.capacity += 1 }
        remove(slot)
    }

    private func isExpired(_ slot: Int, now: Double) -> Bool {
        let ttl = Record(nodes[slot]).isContact ? ttlSeconds.contact : ttlSeconds.notFound
        return now - nodes[slot].storedAt >= ttl
    }

    /// Entries a segment may hold: its share of the entries there are now (at least one).
    private func share(_ fraction: Double) -> Int {
        max(1, Int(fraction * Double(count)))
    }

    private func list(_ segment: Segment) -> SegmentList {
        segments[Int(segment.rawValue)]
    }

    private func oldest(of segment: Segment) -> Int? {
        let tail = list(segment).tail
        return tail >= 0 ? tail : nil
    }

    private mutating func demoteProtected() {
        let main = count - share(configuration.window) - share(configuration.nursery)
        while list(.protected).count > max(1, main * 8 / 10),
            let oldest = oldest(of: .protected)
        {
            moveToFront(oldest, of: .probation)
        }
    }

    // MARK: Lists

    private mutating func link(_ slot: Int, to segment: Segment) {
        let s = Int(segment.rawValue)
        nodes[slot].segment = segment
        nodes[slot].previous = -1
        nodes[slot].next = Int32(segments[s].head)
        if segments[s].head >= 0 { nodes[segments[s].head].previous = Int32(slot) } else { segments[s].tail = slot }
        segments[s].head = slot
        segments[s].count += 1
    }

    private mutating func unlink(_ slot: Int) {
        let s = Int(nodes[slot].segment.rawValue)
        let previous = Int(nodes[slot].previous)
        let next = Int(nodes[slot].next)
        if previous >= 0 { nodes[previous].next = Int32(next) } else { segments[s].head = next }
        if next >= 0 { nodes[next].previous = Int32(previous) } else { segments[s].tail = previous }
        segments[s].count -= 1
    }

    mutating func moveToFront(_ slot: Int, of segment: Segment) {
        if nodes[slot].segment == segment && list(segment).head == slot { return }
        unlink(slot)
        link(slot, to: segment)
    }
}
