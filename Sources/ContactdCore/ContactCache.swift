import NIOConcurrencyHelpers

/// What the cache holds for a key: a contact, or the API's word that there is none.
package enum CachedValue: Sendable, Hashable {
    case contact(APIContact)
    case notFound
}

/// Limits and lifetimes of the cache.
package struct CacheConfiguration: Sendable, Equatable {
    /// Most entries kept (a contact reachable by id and phone is one entry). Default 100 000.
    package var maxEntries: Int = 100_000
    /// Most bytes kept, counted by `ContactCache.cost(of:keys:)`. Default 256 MiB.
    package var maxBytes: Int = 256 << 20
    /// How long a contact is fresh. Default 5 minutes.
    package var ttl: Duration = .seconds(300)
    /// How long a not-found entry is fresh. Default 1 minute.
    package var negativeTTL: Duration = .seconds(60)

    package init() {}
}

/// What the cache's policy did since the last reset (`cache.stats`).
package struct CachePolicyReport: Sendable, Equatable {
    /// Entries evicted for room while still fresh.
    package var evictedForCapacity: Int
    /// Entries evicted for room that were past their TTL (they could only have answered stale).
    package var evictedExpired: Int
    /// New entries that left the nursery or the window without being admitted to main (also
    /// counted as evictions).
    package var refusedAdmissions: Int
    /// The configuration the simulations chose.
    package var configuration: PolicyConfiguration
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

/// A cache entry seen in place, under the cache's lock (see `ContactCache.read(_:_:)`).
package struct CacheView {
    /// The contact's compact JSON, or `nil` for a not-found entry. Valid only inside the closure.
    package let json: UnsafeRawBufferPointer?
    /// Seconds since the entry was stored.
    package let age: Double
    /// Reads of the entry since it was stored, this one included.
    package let reads: Int
    /// Whether `age` is within the entry's TTL.
    package let isFresh: Bool
    /// The contact's `id` bytes, or `nil` for a not-found entry: which entry this is, whichever
    /// of its keys found it. Valid only inside the closure.
    package let id: UnsafeRawBufferPointer?
}

/// A cache of contacts bounded by entry count and by bytes, with one entry under several keys.
///
/// A contact fetched by phone number is stored once and indexed by the number asked for, the
/// contact's own normalised `phone_number` and its `id`; a not-found entry is indexed by the key
/// asked for only. All operations take one short lock; none allocates on a hit.
///
/// Which entries stay is decided by an adaptive W-TinyLFU (`CacheState`, docs/caching.md "Which
/// entries stay"): a frequency sketch filters what main admits, and miniature simulations choose
/// how much of the cache is window and whether to filter at all.
///
/// An entry is a 32-byte node (list links, age, reads, segment) and one record in a `RecordSlab`: its keys
/// and its contact bytes side by side, no Swift object per entry. With a `[UInt8]` and two
/// `String`s per entry (an 88-byte node) the 1,000,000-contact memory run took 709 bytes per
/// contact in the daemon, over Redis's 611; 586 with records (docs/benchmarks.md).
package final class ContactCache: Sendable {
    let state: NIOLockedValueBox<CacheState>
    /// The configuration at start; the TTLs may have changed since (`ttls`).
    package let configuration: CacheConfiguration
    let clock: MonotonicClock

    package init(configuration: CacheConfiguration, clock: MonotonicClock = .system) {
        self.configuration = configuration
        self.clock = clock
        var state = CacheState(maxEntries: configuration.maxEntries)
        state.ttlSeconds = (contact: configuration.ttl.seconds, notFound: configuration.negativeTTL.seconds)
        self.state = NIOLockedValueBox(state)
    }

    /// Changes the TTLs (a reload): entries already cached are fresh or not by the new ones from
    /// the next read.
    package func setTTLs(contact: Duration, notFound: Duration) {
        state.withLockedValue { $0.ttlSeconds = (contact: contact.seconds, notFound: notFound.seconds) }
    }

    /// The TTLs in seconds now.
    package var ttls: (contact: Double, notFound: Double) {
        state.withLockedValue { $0.ttlSeconds }
    }

    /// Heap bytes of an entry for `value` under `keys` (the key asked for first).
    package static func cost(of value: CachedValue, keys: [ContactKey]) -> Int {
        guard let requestedKey = keys.first else { return 0 }
        return cost(recordLength: Record.Layout(value, requestedKey: requestedKey).length, keys: keys.count)
    }

    /// Heap bytes of an entry: its node, its record's slab chunk, and an index bucket per key (8
    /// bytes at a load between ¼ and ½, counted as 24).
    static func cost(recordLength: Int, keys: Int) -> Int {
        MemoryLayout<Node>.size + RecordSlab.chunkBytes(recordLength) + 24 * keys
    }

    /// Looks `key` up and, if found, counts the access (for the policy), counts the read and
    /// calls `body` with the entry in place, under the cache's lock: `body` must be short and
    /// must not call into the cache or take a lock that is held while calling into it.
    ///
    /// The hit path writes its reply from here: copying the contact out would allocate.
    package func read<Result>(_ key: ContactKey, _ body: (CacheView) -> Result) -> Result? {
        withEntry(key) { _, view in body(view) }
    }

    /// Looks `key` up and, if found, counts the access (for the policy) and the read.
    package func read(_ key: ContactKey) -> CacheRead? {
        withEntry(key) { record, view in
            CacheRead(value: record.value, age: view.age, reads: view.reads, isFresh: view.isFresh)
        }
    }

    /// `read(_:_:)` for a key given as bytes (what `ContactKey.withBytes` gives): the fast lane
    /// looks a request's key up without making a `ContactKey`.
    package func read<Result>(kind: ContactKey.Kind, bytes: UnsafeRawBufferPointer, _ body: (CacheView) -> Result)
        -> Result?
    {
        withEntry(KeyBytes(kind: kind.rawValue, bytes: bytes)) { _, view in body(view) }
    }

    private func withEntry<Result>(_ key: ContactKey, _ body: (Record, CacheView) -> Result) -> Result? {
        KeyBytes.with(key) { withEntry($0, body) }
    }

    private func withEntry<Result>(_ key: KeyBytes, _ body: (Record, CacheView) -> Result) -> Result? {
        let now = clock.now()
        let hash = key.hash
        return state.withLockedValue { state -> Result? in
            guard let slot = state.slot(for: key, hash: hash) else { return nil }
            state.count(access: hash)
            state.touch(slot)
            let node = state.nodes[slot]
            let record = Record(node)
            let age = max(0, now - node.storedAt)
            let ttl = record.isContact ? state.ttlSeconds.contact : state.ttlSeconds.notFound
            let view = CacheView(
                json: record.json,
                age: age,
                reads: Int(node.reads),
                isFresh: age < ttl,
                id: record.id?.bytes
            )
            return body(record, view)
        }
    }

    /// Looks `key` up and, if found, counts the access.
    package func probe(_ key: ContactKey) -> CacheProbe {
        guard let read = read(key) else { return .absent }
        return read.isFresh ? .fresh(read.value, age: read.age) : .expired(read.value, age: read.age)
    }

    /// Stores `value` as fetched for `requestedKey`; a contact is also stored under its own keys.
    ///
    /// Entries that held any of these keys are replaced (not counted as evictions); the new entry
    /// takes the replaced one's place in the policy (a refreshed hot entry stays where it was).
    /// Otherwise the store counts as an access to `requestedKey` (the miss being filled) and the
    /// entry enters the nursery or the window; a `restored` one enters main. Entries are then
    /// evicted until both bounds hold (`CacheState.evict`). An entry bigger than `maxBytes` alone
    /// is not stored. `age` and `reads` are for an entry that was stored before: a restored
    /// snapshot's keeps the age it had, so its TTL runs on from there.
    ///
    /// With a `ticket` (taken by `beginFill()` when the fetch began), the value is stored only if
    /// none of its keys was invalidated since: an invalidation is final (docs/caching.md, "The
    /// invalidation rule"). Returns whether it was stored or refused for that reason; a value too
    /// big to keep counts as stored.
    @discardableResult
    package func insert(
        _ value: CachedValue,
        for requestedKey: ContactKey,
        age: Double = 0,
        reads: Int = 0,
        restored: Bool = false,
        ticket: FillTicket? = nil
    ) -> Bool {
        var keys = [requestedKey]
        if case .contact(let contact) = value {
            for key in contact.ownKeys where !keys.contains(key) { keys.append(key) }
        }
        let layout = Record.Layout(value, requestedKey: requestedKey)
        let cost = Self.cost(recordLength: layout.length, keys: keys.count)
        let now = clock.now()
        let storedAt = now - max(0, age)
        let hash = KeyBytes.with(requestedKey) { $0.hash }
        return state.withLockedValue { state in
            if let ticket, state.invalidations.voids(ticket, keys: keys) { return false }
            var replaced: Segment?
            for key in keys {
                KeyBytes.with(key) { key in
                    if let old = state.slot(for: key) {
                        replaced = replaced ?? state.nodes[old].segment
                        state.remove(old)
                    }
                }
            }
            guard cost <= configuration.maxBytes, configuration.maxEntries > 0 else { return true }
            let segment: Segment
            if let replaced {
                segment = replaced
            } else if restored {
                segment = .probation
            } else {
                segment = state.segment(forNew: hash)
                state.count(access: hash)
            }
            guard state.add(layout, storedAt: storedAt, reads: reads, segment: segment) else { return true }
            state.evict(maxEntries: configuration.maxEntries, maxBytes: configuration.maxBytes, now: now)
            return true
        }
    }

    /// Starts a fill: a fetch whose result will be stored with `insert(_:for:ticket:)`. Every
    /// ticket must be ended with `endFill(_:)`.
    package func beginFill() -> FillTicket {
        state.withLockedValue { $0.invalidations.begin() }
    }

    /// Ends a fill begun with `beginFill()`, stored or not.
    package func endFill(_ ticket: FillTicket) {
        state.withLockedValue { $0.invalidations.end(ticket) }
    }

    /// Invalidates `key`: removes the entry reachable by it (under all its keys), and voids every
    /// fill begun before now that would store under `key` or under the removed entry's keys.
    /// Returns how many entries went (0 or 1).
    @discardableResult
    package func remove(_ key: ContactKey) -> Int {
        KeyBytes.with(key) { bytes in
            state.withLockedValue { state in
                guard let slot = state.slot(for: bytes) else {
                    state.invalidations.invalidate([key])
                    return 0
                }
                var keys = [key]
                Record(state.nodes[slot]).forEachKey { keyBytes in
                    if let kind = ContactKey.Kind(rawValue: keyBytes.kind),
                        let other = ContactKey(kind: kind, bytes: keyBytes.bytes), other != key
                    {
                        keys.append(other)
                    }
                }
                state.invalidations.invalidate(keys)
                state.remove(slot)
                return 1
            }
        }
    }

    /// Removes every not-found entry (they belong to the token they were learned with); returns
    /// how many there were.
    package func removeNotFound() -> Int {
        state.withLockedValue { state in
            var removed = 0
            for slot in state.slotsOldestFirst() where !Record(state.nodes[slot]).isContact {
                state.remove(slot)
                removed += 1
            }
            return removed
        }
    }

    /// Invalidates everything: removes every entry and voids every fill begun before now. The
    /// cache goes on caching with the TTLs it had. Returns how many entries there were.
    ///
    /// The old entries are freed after the lock is let go: a million of them take milliseconds
    /// to free, and hits wait for nobody's `free`. The policy's state (frequencies, simulations,
    /// configuration) stays: it describes the workload, not the entries.
    @discardableResult
    package func removeAll() -> Int {
        var fresh = CacheState(maxEntries: 0)
        let emptied = state.withLockedValue { state -> CacheState in
            fresh.ttlSeconds = state.ttlSeconds
            fresh.evicted = state.evicted
            fresh.refusedAdmissions = state.refusedAdmissions
            fresh.sketch = state.sketch
            fresh.shadows = state.shadows
            fresh.configuration = state.configuration
            fresh.invalidations = state.invalidations
            fresh.invalidations.invalidateAll()
            swap(&state, &fresh)
            return fresh
        }
        return emptied.count  // and its nodes, index and slab pages are freed here
    }

    /// Sets the eviction and refused-admission counts back to zero (`cache.reset_stats`).
    package func resetEvictions() {
        state.withLockedValue {
            $0.evicted = (0, 0)
            $0.refusedAdmissions = 0
        }
    }

    /// Entry count, byte total and evictions so far.
    package var counts: (entries: Int, bytes: Int, evictions: Int) {
        state.withLockedValue { ($0.count, $0.bytes, $0.evicted.capacity + $0.evicted.expired) }
    }

    /// What the policy did: evictions by cause, candidates main refused, and the configuration
    /// it runs in now.
    package var policy: CachePolicyReport {
        state.withLockedValue {
            CachePolicyReport(
                evictedForCapacity: $0.evicted.capacity,
                evictedExpired: $0.evicted.expired,
                refusedAdmissions: $0.refusedAdmissions,
                configuration: $0.configuration
            )
        }
    }

    /// Bytes of slab pages and oversized records the cache holds, used or free (`cache.stats`'
    /// `held_bytes`): with `bytes`, how much of what it maps the cache uses.
    package var slabBytes: Int {
        state.withLockedValue { $0.slab.heldBytes }
    }
}
