import Glibc
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

/// An LRU cache of contacts bounded by entry count and by bytes, with one entry under several keys.
///
/// A contact fetched by phone number is stored once and indexed by the number asked for, the
/// contact's own normalised `phone_number` and its `id`; a not-found entry is indexed by the key
/// asked for only. All operations take one short lock; none allocates on a hit.
///
/// An entry is a 32-byte node (LRU links, age, reads) and one record in a `RecordSlab`: its keys
/// and its contact bytes side by side, no Swift object per entry. With a `[UInt8]` and two
/// `String`s per entry (an 88-byte node) the 1,000,000-contact memory run took 709 bytes per
/// contact in the daemon, over Redis's 611; 586 with records (docs/benchmarks.md).
package final class ContactCache: Sendable {
    private let state: NIOLockedValueBox<LRUState>
    package let configuration: CacheConfiguration
    private let clock: MonotonicClock

    package init(configuration: CacheConfiguration, clock: MonotonicClock = .system) {
        self.configuration = configuration
        self.clock = clock
        self.state = NIOLockedValueBox(LRUState())
    }

    /// Heap bytes of an entry for `value` under `keys` (the key asked for first).
    package static func cost(of value: CachedValue, keys: [ContactKey]) -> Int {
        guard let requestedKey = keys.first else { return 0 }
        return cost(recordLength: Record.Layout(value, requestedKey: requestedKey).length, keys: keys.count)
    }

    /// Heap bytes of an entry: its node, its record's slab chunk, and an index bucket per key (8
    /// bytes at a load between ¼ and ½, counted as 24).
    fileprivate static func cost(recordLength: Int, keys: Int) -> Int {
        MemoryLayout<Node>.size + RecordSlab.chunkBytes(recordLength) + 24 * keys
    }

    /// Looks `key` up and, if found, marks its entry most recently used, counts the read and
    /// calls `body` with the entry in place, under the cache's lock: `body` must be short and
    /// must not call into the cache or take a lock that is held while calling into it.
    ///
    /// The hit path writes its reply from here: copying the contact out would allocate.
    package func read<Result>(_ key: ContactKey, _ body: (CacheView) -> Result) -> Result? {
        withEntry(key) { _, view in body(view) }
    }

    /// Looks `key` up and, if found, marks its entry most recently used and counts the read.
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
        return state.withLockedValue { state -> Result? in
            guard let slot = state.slot(for: key) else { return nil }
            state.moveToFront(slot)
            state.nodes[slot].reads &+= 1
            let node = state.nodes[slot]
            let record = Record(node)
            let age = max(0, now - node.storedAt)
            let ttl = record.isContact ? configuration.ttl : configuration.negativeTTL
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
        let layout = Record.Layout(value, requestedKey: requestedKey)
        let cost = Self.cost(recordLength: layout.length, keys: keys.count)
        let now = clock.now()
        state.withLockedValue { state in
            for key in keys {
                KeyBytes.with(key) { key in
                    if let old = state.slot(for: key) { state.remove(old) }
                }
            }
            guard cost <= configuration.maxBytes, configuration.maxEntries > 0 else { return }
            guard state.add(layout, storedAt: now) else { return }
            while state.count > configuration.maxEntries || state.bytes > configuration.maxBytes {
                guard state.tail >= 0 else { break }
                state.remove(state.tail)
                state.evictions += 1
            }
        }
    }

    /// Removes the entry reachable by `key` (under all its keys); returns how many entries went (0 or 1).
    package func remove(_ key: ContactKey) -> Int {
        KeyBytes.with(key) { key in
            state.withLockedValue { state in
                guard let slot = state.slot(for: key) else { return 0 }
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
            var slot = state.head
            while slot >= 0 {
                let next = Int(state.nodes[slot].next)
                if !Record(state.nodes[slot]).isContact {
                    state.remove(slot)
                    removed += 1
                }
                slot = next
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

    /// Bytes of slab pages and oversized records the cache holds (used or free); for benchmarks.
    package var slabBytes: Int {
        state.withLockedValue { $0.slab.heldBytes }
    }

    /// The keys in order from most to least recently used entry (the key each was asked for); for tests.
    package var recencyOrder: [ContactKey] {
        state.withLockedValue { state in
            var keys: [ContactKey] = []
            var slot = state.head
            while slot >= 0 {
                keys.append(Record(state.nodes[slot]).requestedKey)
                slot = Int(state.nodes[slot].next)
            }
            return keys
        }
    }
}

/// A key as the index sees it: its kind and its UTF-8 bytes, hashed the same way whether they come
/// from a `ContactKey` or from a record.
private struct KeyBytes {
    static let id = ContactKey.Kind.id.rawValue
    static let phone = ContactKey.Kind.phone.rawValue

    let kind: UInt8
    let bytes: UnsafeRawBufferPointer

    var hash: Int {
        var hasher = Hasher()
        hasher.combine(kind)
        hasher.combine(bytes: bytes)
        return hasher.finalize()
    }

    static func == (lhs: KeyBytes, rhs: KeyBytes) -> Bool {
        lhs.kind == rhs.kind && lhs.bytes.count == rhs.bytes.count
            && (lhs.bytes.isEmpty || memcmp(lhs.bytes.baseAddress!, rhs.bytes.baseAddress!, lhs.bytes.count) == 0)
    }

    /// Calls `body` with the bytes of `key` (no copy for a native string; a phone number or a
    /// short id is held inline in its `String` and is not allocated either).
    static func with<Result>(_ key: ContactKey, _ body: (KeyBytes) -> Result) -> Result {
        key.withBytes { kind, bytes in body(KeyBytes(kind: kind.rawValue, bytes: bytes)) }
    }
}

/// An entry's record in its slab chunk: its keys, then the contact's bytes.
///
///     flags: bit 0 contact, bit 1 has a phone number, bits 2–3 the key asked for
///            (0: stored next, 1: the contact's id, 2: the contact's phone number), bit 4 its kind
///     [key asked for]               when stored next
///     [id]                          for a contact
///     [phone number]                for a contact with one
///     JSON bytes                    for a contact: the rest of the record
///
/// A key is a length byte and its bytes (keys are at most 128 bytes, SPEC §3), or, when the same
/// bytes occur in the contact's JSON (an id or a normalised number almost always does), 0xFF, a
/// length byte and a 16-bit offset into the JSON: 4 bytes instead of 14 for a 13-byte id, which
/// took the 1,000,000-contact run's records from 504 to 480 bytes.
private struct Record {
    let isContact: Bool
    let requested: KeyBytes
    let id: KeyBytes?
    let phone: KeyBytes?
    let json: UnsafeRawBufferPointer?

    init(_ node: Node) {
        let bytes = UnsafeRawBufferPointer(start: node.record, count: Int(node.length))
        let flags = bytes[0]
        var offset = 1
        // Where each key is: (start, length), a start below 0 counting from the JSON's start.
        func field() -> (start: Int, count: Int) {
            if bytes[offset] == 0xFF {
                defer { offset += 4 }
                let at = Int(bytes[offset + 2]) | Int(bytes[offset + 3]) << 8
                return (-1 - at, Int(bytes[offset + 1]))
            }
            let length = Int(bytes[offset])
            defer { offset += 1 + length }
            return (offset + 1, length)
        }
        let how = flags >> 2 & 3
        let separate = how == 0 ? field() : nil
        isContact = flags & 1 != 0
        let idField = isContact ? field() : nil
        let phoneField = flags & 2 != 0 ? field() : nil
        let jsonStart = offset
        func key(_ kind: UInt8, _ field: (start: Int, count: Int)) -> KeyBytes {
            let start = field.start >= 0 ? field.start : jsonStart - 1 - field.start
            return KeyBytes(kind: kind, bytes: UnsafeRawBufferPointer(rebasing: bytes[start..<start + field.count]))
        }
        id = idField.map { key(KeyBytes.id, $0) }
        phone = phoneField.map { key(KeyBytes.phone, $0) }
        json = isContact ? UnsafeRawBufferPointer(rebasing: bytes[jsonStart...]) : nil
        switch how {
        case 1: requested = id!
        case 2: requested = phone!
        default: requested = key(flags >> 4 & 1, separate!)
        }
    }

    /// Whether `key` is one of the entry's keys.
    func has(_ key: KeyBytes) -> Bool {
        key == requested || (id.map { $0 == key } ?? false) || (phone.map { $0 == key } ?? false)
    }

    /// Calls `body` with each key of the entry once.
    func forEachKey(_ body: (KeyBytes) -> Void) {
        body(requested)
        if let id, !(id == requested) { body(id) }
        if let phone, !(phone == requested) { body(phone) }
    }

    var requestedKey: ContactKey {
        ContactKey(kind: ContactKey.Kind(rawValue: requested.kind)!, bytes: requested.bytes)!
    }

    /// The entry as a value of its own (allocates: for the paths that are not a plain hit).
    var value: CachedValue {
        guard let json, let id else { return .notFound }
        return .contact(
            Contact(
                json: Array(json),
                id: ContactID(String(decoding: id.bytes, as: UTF8.self))!,
                phoneNumber: phone.map { PhoneNumber(String(decoding: $0.bytes, as: UTF8.self))! }
            )
        )
    }

    /// How the record for a value is laid out: worked out once, outside the cache's lock.
    struct Layout {
        let value: CachedValue
        let requestedKey: ContactKey
        let flags: UInt8
        /// Offsets into the JSON of the id's and phone number's bytes, when they occur there.
        let idInJSON: Int?
        let phoneInJSON: Int?
        let length: Int

        init(_ value: CachedValue, requestedKey: ContactKey) {
            self.value = value
            self.requestedKey = requestedKey
            var flags: UInt8 = 0
            var length = 1
            var idInJSON: Int?
            var phoneInJSON: Int?
            if case .contact(let contact) = value {
                flags |= 1
                idInJSON = Self.offset(of: contact.id.rawValue, in: contact.json)
                length += idInJSON == nil ? 1 + contact.id.rawValue.utf8.count : 4
                if let phone = contact.phoneNumber {
                    flags |= 2
                    phoneInJSON = Self.offset(of: phone.e164, in: contact.json)
                    length += phoneInJSON == nil ? 1 + phone.e164.utf8.count : 4
                    if requestedKey == .phone(phone) { flags |= 2 << 2 }
                }
                if requestedKey == .id(contact.id) { flags |= 1 << 2 }
                length += contact.json.count
            }
            if flags >> 2 & 3 == 0 {
                switch requestedKey {
                case .phone(let phone):
                    flags |= 1 << 4
                    length += 1 + phone.e164.utf8.count
                case .id(let id): length += 1 + id.rawValue.utf8.count
                }
            }
            self.flags = flags
            self.idInJSON = idInJSON
            self.phoneInJSON = phoneInJSON
            self.length = length
        }

        /// Where `text`'s bytes first occur in `json`, if they start in its first 64 KiB.
        private static func offset(of text: String, in json: [UInt8]) -> Int? {
            let needle = Array(text.utf8)
            guard let first = needle.first, json.count >= needle.count else { return nil }
            for start in 0...min(json.count - needle.count, 0xFFFF)
            where json[start] == first && json[start..<start + needle.count].elementsEqual(needle) {
                return start
            }
            return nil
        }

        /// Writes the record at `start`, which has room for `length` bytes.
        func write(at start: UnsafeMutableRawPointer) {
            start.storeBytes(of: flags, as: UInt8.self)
            var offset = 1
            func put(_ text: String, inJSON: Int?) {
                if let inJSON {
                    start.storeBytes(of: 0xFF, toByteOffset: offset, as: UInt8.self)
                    start.storeBytes(of: UInt8(text.utf8.count), toByteOffset: offset + 1, as: UInt8.self)
                    start.storeBytes(of: UInt8(inJSON & 0xFF), toByteOffset: offset + 2, as: UInt8.self)
                    start.storeBytes(of: UInt8(inJSON >> 8), toByteOffset: offset + 3, as: UInt8.self)
                    offset += 4
                    return
                }
                var text = text
                text.withUTF8 { utf8 in
                    start.storeBytes(of: UInt8(utf8.count), toByteOffset: offset, as: UInt8.self)
                    (start + offset + 1).copyMemory(from: utf8.baseAddress!, byteCount: utf8.count)
                    offset += 1 + utf8.count
                }
            }
            if flags >> 2 & 3 == 0 {
                switch requestedKey {
                case .phone(let phone): put(phone.e164, inJSON: nil)
                case .id(let id): put(id.rawValue, inJSON: nil)
                }
            }
            guard case .contact(let contact) = value else { return }
            put(contact.id.rawValue, inJSON: idInJSON)
            if let phone = contact.phoneNumber { put(phone.e164, inJSON: phoneInJSON) }
            contact.json.withUnsafeBytes { json in
                (start + offset).copyMemory(from: json.baseAddress!, byteCount: json.count)
            }
        }
    }
}

/// Memory for the cache's records: 1 MiB pages mapped from the kernel, each cut into chunks of one
/// size (a multiple of 8 bytes up to 4 KiB), with a free list per size; a bigger record gets an
/// allocation of its own.
///
/// A freed chunk is reused by the next record of its size, and a page stays cut for its size until
/// the cache is emptied: contacts of one API come in a narrow band of sizes, so this costs little.
/// Pages come from `mmap`, not `malloc`: a page is resident only as far as it has been cut, and no
/// short-lived heap buffer is placed among the records.
private final class RecordSlab {
    static let pageBytes = 1 << 20
    static let largestChunk = 4096

    private var pages: [UnsafeMutableRawPointer] = []
    private var oversized: Set<UnsafeMutableRawPointer> = []
    private var oversizedBytes = 0
    /// Per chunk size (index: size / 8): the first free chunk, whose first 8 bytes point to the next.
    private var free = [UnsafeMutableRawPointer?](repeating: nil, count: largestChunk / 8 + 1)
    /// Per chunk size: the page being cut and where its uncut part starts.
    private var cutting = [(page: UnsafeMutableRawPointer, offset: Int)?](repeating: nil, count: largestChunk / 8 + 1)

    /// Bytes a record of `length` bytes takes.
    static func chunkBytes(_ length: Int) -> Int {
        max(8, (length + 7) & ~7)
    }

    var heldBytes: Int { pages.count * Self.pageBytes + oversizedBytes }

    /// A chunk for a record of `length` bytes; `nil` when the kernel has no page to give.
    func allocate(_ length: Int) -> UnsafeMutableRawPointer? {
        let size = Self.chunkBytes(length)
        guard size <= Self.largestChunk else {
            let record = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
            oversized.insert(record)
            oversizedBytes += size
            return record
        }
        let sizeClass = size >> 3
        if let chunk = free[sizeClass] {
            free[sizeClass] = chunk.load(as: UnsafeMutableRawPointer?.self)
            return chunk
        }
        if let (page, offset) = cutting[sizeClass], offset + size <= Self.pageBytes {
            cutting[sizeClass] = (page, offset + size)
            return page + offset
        }
        // Out of memory (or over RLIMIT_AS): the entry is not cached, and the lookup that brought
        // it is still answered. Load must never be able to stop the daemon.
        guard
            let page = mmap(nil, Self.pageBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
            page != UnsafeMutableRawPointer(bitPattern: -1)
        else { return nil }
        pages.append(page)
        cutting[sizeClass] = (page, size)
        return page
    }

    func deallocate(_ record: UnsafeMutableRawPointer, length: Int) {
        let size = Self.chunkBytes(length)
        guard size <= Self.largestChunk else {
            oversized.remove(record)
            oversizedBytes -= size
            record.deallocate()
            return
        }
        record.storeBytes(of: free[size >> 3], as: UnsafeMutableRawPointer?.self)
        free[size >> 3] = record
    }

    deinit {
        for page in pages { munmap(page, Self.pageBytes) }
        for record in oversized { record.deallocate() }
    }
}

/// An entry's node: 32 bytes (its record, age, reads and 32-bit LRU links).
private struct Node {
    var record: UnsafeMutableRawPointer?
    var storedAt: Double
    var length: UInt32
    var reads: UInt32
    var previous: Int32
    var next: Int32
}

/// An intrusive doubly linked list over a slab of nodes, the key index, and the records.
///
/// Slab indices instead of class references: no per-entry object, no reference counting on the
/// hit path, and freed slots are reused. Only ever used under `ContactCache`'s lock, hence
/// `@unchecked Sendable` for the raw record pointers.
private struct LRUState: @unchecked Sendable {
    var nodes: [Node] = []
    var freeSlots: [Int32] = []
    var index = KeyIndex()
    var slab = RecordSlab()
    var head = -1
    var tail = -1
    var count = 0
    var bytes = 0
    var evictions = 0

    /// The slot of the entry that has `key`.
    func slot(for key: KeyBytes) -> Int? {
        index.find(hash: key.hash) { Record(nodes[$0]).has(key) }
    }

    /// Stores an entry at the front; `false` when no memory could be had for its record.
    mutating func add(_ layout: Record.Layout, storedAt: Double) -> Bool {
        let length = layout.length
        guard let record = slab.allocate(length) else { return false }
        layout.write(at: record)
        let node = Node(
            record: record,
            storedAt: storedAt,
            length: UInt32(length),
            reads: 0,
            previous: -1,
            next: Int32(head)
        )
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
        var keys = 0
        Record(node).forEachKey { _ in keys += 1 }
        count += 1
        bytes += ContactCache.cost(recordLength: length, keys: keys)
        if index.needsGrowth(adding: keys) {
            // Rebuild from the entries: the index keeps no keys, only where to find them.
            index = KeyIndex(capacityFor: index.count + keys)
            var live = head
            while live >= 0 {
                Record(nodes[live]).forEachKey { index.insert(hash: $0.hash, slot: live) }
                live = Int(nodes[live].next)
            }
        } else {
            Record(node).forEachKey { index.insert(hash: $0.hash, slot: slot) }
        }
        return true
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
}

/// The key → slot index: open addressing with linear probing over 8-byte buckets.
///
/// A bucket holds the upper 32 bits of the key's hash (a tag, whose low bits are also the key's
/// home position, so that a bucket can be moved without its key) and the slot number plus one
/// (0 is empty); the key itself lives in the entry's record and is compared only when the tag matches. A
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
