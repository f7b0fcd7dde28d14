/// Doubly linked lists over one array of slots, each slot a key in one list: the building block of
/// the reference policies (the shipped policy has its own, over the cache's nodes).
///
/// Front is newest, back is oldest. Slot numbers are reused after `release`.
struct SlotLists {
    private(set) var keys: [UInt64] = []
    private var previous: [Int32] = []
    private var next: [Int32] = []
    /// Which list a slot is in (policies give the numbers meaning).
    private(set) var list: [UInt8] = []
    /// A few bits per slot for the policy (a visited bit, a frequency).
    var bits: [UInt8] = []
    private var heads: [Int32]
    private var tails: [Int32]
    private(set) var counts: [Int]
    private var free: [Int32] = []

    init(lists: Int) {
        heads = Array(repeating: -1, count: lists)
        tails = Array(repeating: -1, count: lists)
        counts = Array(repeating: 0, count: lists)
    }

    /// A new slot for `key`, at the front of `list`.
    mutating func add(_ key: UInt64, to list: Int) -> Int {
        let slot: Int
        if let reused = free.popLast() {
            slot = Int(reused)
            keys[slot] = key
            bits[slot] = 0
        } else {
            slot = keys.count
            keys.append(key)
            previous.append(-1)
            next.append(-1)
            self.list.append(0)
            bits.append(0)
        }
        pushFront(slot, to: list)
        return slot
    }

    /// Unlinks `slot` and frees it.
    mutating func release(_ slot: Int) {
        unlink(slot)
        free.append(Int32(slot))
    }

    /// The oldest slot of `list`, or nil.
    func back(of list: Int) -> Int? {
        tails[list] >= 0 ? Int(tails[list]) : nil
    }

    /// The slot before `slot` in its list (towards the front), or nil.
    func newer(than slot: Int) -> Int? {
        previous[slot] >= 0 ? Int(previous[slot]) : nil
    }

    /// Moves `slot` to the front of `list` (its own or another).
    mutating func moveToFront(_ slot: Int, of list: Int) {
        unlink(slot)
        pushFront(slot, to: list)
    }

    private mutating func pushFront(_ slot: Int, to list: Int) {
        self.list[slot] = UInt8(list)
        previous[slot] = -1
        next[slot] = heads[list]
        if heads[list] >= 0 { previous[Int(heads[list])] = Int32(slot) } else { tails[list] = Int32(slot) }
        heads[list] = Int32(slot)
        counts[list] += 1
    }

    private mutating func unlink(_ slot: Int) {
        let list = Int(self.list[slot])
        let before = previous[slot]
        let after = next[slot]
        if before >= 0 { next[Int(before)] = after } else { heads[list] = after }
        if after >= 0 { previous[Int(after)] = before } else { tails[list] = before }
        counts[list] -= 1
    }
}

/// Keys remembered in arrival order, at most `capacity` of them: a ghost queue (keys evicted
/// recently, no values).
struct GhostQueue {
    private var ring: [(key: UInt64, serial: Int)]
    private var start = 0
    private var count = 0
    private var serial = 0
    /// Key → the serial of its newest place in the ring; an older place is skipped.
    private var members: [UInt64: Int] = [:]

    init(capacity: Int) {
        ring = Array(repeating: (0, -1), count: max(1, capacity))
    }

    func contains(_ key: UInt64) -> Bool { members[key] != nil }

    mutating func append(_ key: UInt64) {
        if count == ring.count {
            let oldest = ring[start]
            if members[oldest.key] == oldest.serial { members[oldest.key] = nil }
            start = (start + 1) % ring.count
            count -= 1
        }
        serial += 1
        ring[(start + count) % ring.count] = (key, serial)
        count += 1
        members[key] = serial
    }

    /// Forgets `key` (its place in the ring is skipped when it comes round).
    mutating func remove(_ key: UInt64) {
        members[key] = nil
    }
}
