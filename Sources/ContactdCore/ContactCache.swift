import NIOConcurrencyHelpers

/// What the cache holds for a key: a contact, or the API's word that there is none.
package enum CachedValue: Sendable, Hashable {
    case contact(Contact)
    case notFound
}

/// Limits and lifetimes of the cache.
package struct CacheConfiguration: Sendable, Equatable {
    /// Most entries kept (a contact reachable by id and phone is one entry). Default 100 000.
    package var maxEntries: Int = 100_000
    /// Most bytes kept, counted by `ContactCache.cost(of:keys:)`. Default 256 MiB.
    package var maxBytes: Int = 256 << 20
    /// Seconds a contact is fresh. Default 5 minutes.
    package var ttl: Double = 300
    /// Seconds a not-found entry is fresh. Default 1 minute.
    package var negativeTTL: Double = 60

    package init() {}
}

/// The answer to "what do you have for this key?".
package enum CacheProbe: Sendable, Equatable {
    /// Nothing is cached for the key.
    case absent
    /// An entry, `age` seconds old, still within its TTL.
    case fresh(CachedValue, age: Double)
    /// An entry past its TTL; kept until evicted or replaced.
    case expired(CachedValue, age: Double)
}

/// What the cache holds for a key, read by `ContactCache.read(_:)`.
package struct CacheRead: Sendable, Equatable {
    package let value: CachedValue
    /// Seconds since the entry was stored.
    package let age: Double
    /// Reads of the entry since it was stored, this one included.
    package let reads: Int
    /// Whether `age` is within the entry's TTL (`ttl` for contacts, `negativeTTL` for not-found).
    package let isFresh: Bool
}

/// An LRU cache of contacts bounded by entry count and by bytes, with one entry under several keys.
///
/// A contact fetched by phone number is stored once and indexed by the number asked for, the
/// contact's own normalised `phone_number` and its `id`; a not-found entry is indexed by the key
/// asked for only. All operations take one short lock; none allocates on a hit.
package final class ContactCache: Sendable {
    private let state: NIOLockedValueBox<LRUState>
    package let configuration: CacheConfiguration
    private let clock: MonotonicClock

    package init(configuration: CacheConfiguration, clock: MonotonicClock = .system) {
        self.configuration = configuration
        self.clock = clock
        self.state = NIOLockedValueBox(LRUState())
    }

    /// Estimated heap bytes of an entry: the JSON, its keys, and the bookkeeping around them.
    ///
    /// 96 bytes per entry covers the 88-byte slab node and the JSON array's header beyond its
    /// bytes; 24 per key covers its index bucket (8 bytes at a load between ¼ and ½), and a key
    /// longer than 15 bytes (too long to be stored inline) adds its own string storage.
    package static func cost(of value: CachedValue, keys: [ContactKey]) -> Int {
        var total = 96
        if case .contact(let contact) = value { total += contact.json.count + 32 }
        for key in keys {
            let length: Int
            switch key {
            case .phone(let p): length = p.e164.utf8.count
            case .id(let i): length = i.rawValue.utf8.count
            }
            total += 24 + (length > 15 ? 32 + length : 0)
        }
        return total
    }

    /// Looks `key` up and, if found, marks its entry most recently used and counts the read.
    package func read(_ key: ContactKey) -> CacheRead? {
        let now = clock.now()
        return state.withLockedValue { state -> CacheRead? in
            guard let index = state.slot(for: key) else { return nil }
            state.moveToFront(index)
            // Field by field: copying the whole entry out would retain and release all it holds.
            state.nodes[index].entry.reads &+= 1
            let value = state.nodes[index].entry.value
            let reads = Int(state.nodes[index].entry.reads)
            let age = max(0, now - state.nodes[index].entry.storedAt)
            let ttl = value == .notFound ? configuration.negativeTTL : configuration.ttl
            return CacheRead(value: value, age: age, reads: reads, isFresh: age < ttl)
        }
    }

    /// Looks `key` up and, if found, marks its entry most recently used.
    package func probe(_ key: ContactKey) -> CacheProbe {
        guard let read = read(key) else { return .absent }
        return read.isFresh ? .fresh(read.value, age: read.age) : .expired(read.value, age: read.age)
    }

    /// Stores `value` as fetched for `requestedKey`; a contact is also stored under its own keys.
    ///
    /// Entries that held any of these keys are replaced (not counted as evictions). Least recently
    /// used entries are then evicted until both bounds hold. An entry bigger than `maxBytes` alone
    /// is not stored.
    package func insert(_ value: CachedValue, for requestedKey: ContactKey) {
        var keys = [requestedKey]
        if case .contact(let contact) = value {
            for key in contact.ownKeys where !keys.contains(key) { keys.append(key) }
        }
        let cost = Self.cost(of: value, keys: keys)
        let now = clock.now()
        state.withLockedValue { state in
            for key in keys {
                if let old = state.slot(for: key) { state.remove(old) }
            }
            guard cost <= configuration.maxBytes, configuration.maxEntries > 0 else { return }
            state.add(CacheEntry(value: value, storedAt: now, requestedKey: requestedKey, cost: cost))
            while state.count > configuration.maxEntries || state.bytes > configuration.maxBytes {
                guard state.tail >= 0 else { break }
                state.remove(state.tail)
                state.evictions += 1
            }
        }
    }

    /// Removes the entry reachable by `key` (under all its keys); returns how many entries went (0 or 1).
    package func remove(_ key: ContactKey) -> Int {
        state.withLockedValue { state in
            guard let index = state.slot(for: key) else { return 0 }
            state.remove(index)
            return 1
        }
    }

    /// Removes every not-found entry (they belong to the token they were learned with); returns
    /// how many there were.
    package func removeNotFound() -> Int {
        state.withLockedValue { state in
            var removed = 0
            var index = state.head
            while index >= 0 {
                let next = Int(state.nodes[index].next)
                if state.nodes[index].entry.value == .notFound {
                    state.remove(index)
                    removed += 1
                }
                index = next
            }
            return removed
        }
    }

    /// Removes every entry; returns how many there were.
    package func removeAll() -> Int {
        state.withLockedValue { state in
            let count = state.count
            let evictions = state.evictions
            state = LRUState()
            state.evictions = evictions
            return count
        }
    }

    /// Entry count, byte total and evictions so far.
    package var counts: (entries: Int, bytes: Int, evictions: Int) {
        state.withLockedValue { ($0.count, $0.bytes, $0.evictions) }
    }

    /// The keys in order from most to least recently used entry (first key of each); for tests.
    package var recencyOrder: [ContactKey] {
        state.withLockedValue { state in
            var keys: [ContactKey] = []
            var index = state.head
            while index >= 0 {
                keys.append(state.nodes[index].entry.requestedKey)
                index = Int(state.nodes[index].next)
            }
            return keys
        }
    }
}

/// One cached value. Its keys are not stored as an array: they are the key it was asked for plus,
/// for a contact, the contact's own id and phone number, which the contact already holds. (An
/// array per entry cost about 100 bytes of heap per contact in the 1,000,000-entry memory run.)
private struct CacheEntry {
    var value: CachedValue
    var storedAt: Double
    var cost: UInt32
    var reads: UInt32 = 0
    var requestedKey: ContactKey

    init(value: CachedValue, storedAt: Double, requestedKey: ContactKey, cost: Int) {
        self.value = value
        self.storedAt = storedAt
        self.cost = UInt32(clamping: cost)
        self.requestedKey = requestedKey
    }

    /// Calls `body` with each key of the entry once.
    func forEachKey(_ body: (ContactKey) -> Void) {
        body(requestedKey)
        guard case .contact(let contact) = value else { return }
        let id = ContactKey.id(contact.id)
        if id != requestedKey { body(id) }
        if let phone = contact.phoneNumber.map(ContactKey.phone), phone != requestedKey { body(phone) }
    }

    /// Whether `key` is one of the entry's keys.
    func has(_ key: ContactKey) -> Bool {
        if key == requestedKey { return true }
        guard case .contact(let contact) = value else { return false }
        switch key {
        case .id(let id): return id == contact.id
        case .phone(let phone): return phone == contact.phoneNumber
        }
    }
}

/// A slab node: 88 bytes (the entry's fields ordered so that padding is small, 32-bit links).
private struct Node {
    var entry: CacheEntry
    var previous: Int32
    var next: Int32
}

/// An intrusive doubly linked list over a slab of nodes, plus the key index.
///
/// Slab indices instead of class references: no per-entry object, no reference counting on the
/// hit path, and freed slots are reused.
private struct LRUState {
    var nodes: [Node] = []
    var freeSlots: [Int32] = []
    var index = KeyIndex()
    var head = -1
    var tail = -1
    var count = 0
    var bytes = 0
    var evictions = 0

    /// The slot of the entry that has `key`.
    func slot(for key: ContactKey) -> Int? {
        index.find(hash: key.hashValue) { nodes[$0].entry.has(key) }
    }

    mutating func add(_ entry: CacheEntry) {
        let node = Node(entry: entry, previous: -1, next: Int32(head))
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = Int(free)
            nodes[slot] = node
        } else {
            slot = nodes.count
            nodes.append(node)
        }
        if head >= 0 { nodes[head].previous = Int32(slot) }
        head = slot
        if tail < 0 { tail = slot }
        count += 1
        bytes += Int(entry.cost)
        var keys = 0
        entry.forEachKey { _ in keys += 1 }
        if index.needsGrowth(adding: keys) {
            // Rebuild from the entries: the index keeps no keys, only where to find them.
            index = KeyIndex(capacityFor: (index.count + keys) * 2)
            var live = head
            while live >= 0 {
                nodes[live].entry.forEachKey { index.insert(hash: $0.hashValue, slot: live) }
                live = Int(nodes[live].next)
            }
        } else {
            entry.forEachKey { index.insert(hash: $0.hashValue, slot: slot) }
        }
    }

    mutating func unlink(_ slot: Int) {
        let previous = Int(nodes[slot].previous)
        let next = Int(nodes[slot].next)
        if previous >= 0 { nodes[previous].next = Int32(next) } else { head = next }
        if next >= 0 { nodes[next].previous = Int32(previous) } else { tail = previous }
    }

    mutating func moveToFront(_ slot: Int) {
        guard head != slot else { return }
        unlink(slot)
        nodes[slot].previous = -1
        nodes[slot].next = Int32(head)
        if head >= 0 { nodes[head].previous = Int32(slot) }
        head = slot
        if tail < 0 { tail = slot }
    }

    mutating func remove(_ slot: Int) {
        unlink(slot)
        nodes[slot].entry.forEachKey { index.remove(hash: $0.hashValue, slot: slot) }
        count -= 1
        bytes -= Int(nodes[slot].entry.cost)
        // Drop the contact bytes now rather than when the slot is reused.
        nodes[slot].entry = CacheEntry(
            value: .notFound,
            storedAt: 0,
            requestedKey: nodes[slot].entry.requestedKey,
            cost: 0
        )
        freeSlots.append(Int32(slot))
    }
}

/// The key → slot index: open addressing with linear probing over 8-byte buckets.
///
/// A bucket holds the upper 32 bits of the key's hash (a tag, whose low bits are also the key's
/// home position, so that a bucket can be moved without its key) and the slot number plus one
/// (0 is empty); the key itself lives in the slab entry and is compared only when the tag matches. A
/// Swift `Dictionary<ContactKey, Int>` spent 32 bytes a bucket (a 17-byte key padded to 24, and
/// the value) and needed 4,194,304 buckets for 1,000,000 contacts × 2 keys: about 134 bytes per
/// contact, against 34 here — the step that took the 1,000,000-contact memory run under Redis
/// (docs/benchmarks.md). Deletion shifts later buckets back (no tombstones), so probe lengths
/// stay those of the current load, at most one half.
private struct KeyIndex {
    private var buckets: [UInt64]
    private var mask: Int
    private(set) var count = 0

    init(capacityFor keys: Int = 0) {
        var size = 16
        while size < keys * 2 { size <<= 1 }
        buckets = [UInt64](repeating: 0, count: size)
        mask = size - 1
    }

    func needsGrowth(adding keys: Int) -> Bool {
        (count + keys) * 2 > buckets.count
    }

    private static func tag(_ hash: Int) -> UInt64 {
        UInt64(truncatingIfNeeded: hash) & 0xFFFF_FFFF_0000_0000
    }

    /// Where a key whose bucket (or tag) is `bits` starts its probe.
    private func home(_ bits: UInt64) -> Int {
        Int(truncatingIfNeeded: bits >> 32) & mask
    }

    /// The slot whose entry `matches`, among those filed under `hash`.
    func find(hash: Int, matches: (Int) -> Bool) -> Int? {
        let tag = Self.tag(hash)
        var position = home(Self.tag(hash))
        while true {
            let bucket = buckets[position]
            if bucket == 0 { return nil }
            if bucket & 0xFFFF_FFFF_0000_0000 == tag {
                let slot = Int(bucket & 0xFFFF_FFFF) - 1
                if matches(slot) { return slot }
            }
            position = (position + 1) & mask
        }
    }

    /// Files `slot` under `hash`; the caller makes sure there is room and the key is not present.
    mutating func insert(hash: Int, slot: Int) {
        var position = home(Self.tag(hash))
        while buckets[position] != 0 { position = (position + 1) & mask }
        buckets[position] = Self.tag(hash) | UInt64(slot + 1)
        count += 1
    }

    /// Removes the bucket filing `slot` under `hash`, if there is one.
    mutating func remove(hash: Int, slot: Int) {
        let wanted = Self.tag(hash) | UInt64(slot + 1)
        var position = home(Self.tag(hash))
        while buckets[position] != wanted {
            if buckets[position] == 0 { return }
            position = (position + 1) & mask
        }
        // Backward-shift deletion: move later buckets of the run into the hole when their home
        // position allows it, so that every lookup still finds its key before an empty bucket.
        var hole = position
        var next = (hole + 1) & mask
        while buckets[next] != 0 {
            let start = home(buckets[next])
            // `next` may move to `hole` unless its home lies cyclically in (hole, next].
            let distanceToHole = (next - start) & mask
            let distanceToNext = (next - hole) & mask
            if distanceToHole >= distanceToNext {
                buckets[hole] = buckets[next]
                hole = next
            }
            next = (next + 1) & mask
        }
        buckets[hole] = 0
        count -= 1
    }
}
