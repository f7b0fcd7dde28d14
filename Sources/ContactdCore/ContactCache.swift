import Synchronization

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
    private let state: Mutex<LRUState>
    package let configuration: CacheConfiguration
    private let clock: MonotonicClock

    package init(configuration: CacheConfiguration, clock: MonotonicClock = .system) {
        self.configuration = configuration
        self.clock = clock
        self.state = Mutex(LRUState())
    }

    /// Estimated heap bytes of an entry: the JSON, its keys, and the bookkeeping around them.
    ///
    /// 96 bytes per entry covers the node, the array headers and the timestamps; 64 per key covers
    /// the dictionary slot and the key's string storage beyond its characters.
    package static func cost(of value: CachedValue, keys: [ContactKey]) -> Int {
        var total = 96
        if case .contact(let contact) = value { total += contact.json.count }
        for key in keys {
            switch key {
            case .phone(let p): total += 64 + p.e164.utf8.count
            case .id(let i): total += 64 + i.rawValue.utf8.count
            }
        }
        return total
    }

    /// Looks `key` up and, if found, marks its entry most recently used and counts the read.
    package func read(_ key: ContactKey) -> CacheRead? {
        let now = clock.now()
        return state.withLock { state -> CacheRead? in
            guard let index = state.index[key] else { return nil }
            state.moveToFront(index)
            state.nodes[index].entry.reads &+= 1
            let entry = state.nodes[index].entry
            let age = max(0, now - entry.storedAt)
            let ttl: Double
            switch entry.value {
            case .contact: ttl = configuration.ttl
            case .notFound: ttl = configuration.negativeTTL
            }
            return CacheRead(value: entry.value, age: age, reads: entry.reads, isFresh: age < ttl)
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
        state.withLock { state in
            for key in keys {
                if let old = state.index[key] { state.remove(old) }
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
        state.withLock { state in
            guard let index = state.index[key] else { return 0 }
            state.remove(index)
            return 1
        }
    }

    /// Removes every not-found entry (they belong to the token they were learned with); returns
    /// how many there were.
    package func removeNotFound() -> Int {
        state.withLock { state in
            var removed = 0
            var index = state.head
            while index >= 0 {
                let next = state.nodes[index].next
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
        state.withLock { state in
            let count = state.count
            let evictions = state.evictions
            state = LRUState()
            state.evictions = evictions
            return count
        }
    }

    /// Entry count, byte total and evictions so far.
    package var counts: (entries: Int, bytes: Int, evictions: Int) {
        state.withLock { ($0.count, $0.bytes, $0.evictions) }
    }

    /// The keys in order from most to least recently used entry (first key of each); for tests.
    package var recencyOrder: [ContactKey] {
        state.withLock { state in
            var keys: [ContactKey] = []
            var index = state.head
            while index >= 0 {
                keys.append(state.nodes[index].entry.requestedKey)
                index = state.nodes[index].next
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
    var requestedKey: ContactKey
    var cost: Int
    var reads = 0

    /// Calls `body` with each key of the entry once.
    func forEachKey(_ body: (ContactKey) -> Void) {
        body(requestedKey)
        guard case .contact(let contact) = value else { return }
        let id = ContactKey.id(contact.id)
        if id != requestedKey { body(id) }
        if let phone = contact.phoneNumber.map(ContactKey.phone), phone != requestedKey { body(phone) }
    }
}

private struct Node {
    var entry: CacheEntry
    var previous: Int
    var next: Int
}

/// An intrusive doubly linked list over a slab of nodes, plus the key index.
///
/// Slab indices instead of class references: no per-entry object, no reference counting on the
/// hit path, and freed slots are reused.
private struct LRUState {
    var nodes: [Node] = []
    var freeSlots: [Int] = []
    var index: [ContactKey: Int] = [:]
    var head = -1
    var tail = -1
    var count = 0
    var bytes = 0
    var evictions = 0

    mutating func add(_ entry: CacheEntry) {
        let node = Node(entry: entry, previous: -1, next: head)
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = free
            nodes[slot] = node
        } else {
            slot = nodes.count
            nodes.append(node)
        }
        if head >= 0 { nodes[head].previous = slot }
        head = slot
        if tail < 0 { tail = slot }
        entry.forEachKey { index[$0] = slot }
        count += 1
        bytes += entry.cost
    }

    mutating func unlink(_ slot: Int) {
        let previous = nodes[slot].previous
        let next = nodes[slot].next
        if previous >= 0 { nodes[previous].next = next } else { head = next }
        if next >= 0 { nodes[next].previous = previous } else { tail = previous }
    }

    mutating func moveToFront(_ slot: Int) {
        guard head != slot else { return }
        unlink(slot)
        nodes[slot].previous = -1
        nodes[slot].next = head
        if head >= 0 { nodes[head].previous = slot }
        head = slot
        if tail < 0 { tail = slot }
    }

    mutating func remove(_ slot: Int) {
        unlink(slot)
        nodes[slot].entry.forEachKey { key in
            if index[key] == slot { index[key] = nil }
        }
        count -= 1
        bytes -= nodes[slot].entry.cost
        // Drop the contact bytes now rather than when the slot is reused.
        nodes[slot].entry = CacheEntry(
            value: .notFound,
            storedAt: 0,
            requestedKey: nodes[slot].entry.requestedKey,
            cost: 0
        )
        freeSlots.append(slot)
    }
}
