/// Doubly linked lists over one array of slots, each slot a key in one list: the building block of
/// the policy's miniature simulations (`PolicyShadows`) and of the reference policies replayed
/// beside it (the cache itself links its own nodes).
///
/// Front is newest, back is oldest. Slot numbers are reused after `release`.
package struct SlotLists {
    package private(set) var keys: [UInt64] = []
    private var previous: [Int32] = []
    private var next: [Int32] = []
    /// Which list a slot is in (policies give the numbers meaning).
    package private(set) var list: [UInt8] = []
    /// A few bits per slot for the policy (a visited bit, a frequency).
    package var bits: [UInt8] = []
    private var heads: [Int32]
    private var tails: [Int32]
    package private(set) var counts: [Int]
    private var free: [Int32] = []

    package init(lists: Int) {
        heads = Array(repeating: -1, count: lists)
        tails = Array(repeating: -1, count: lists)
        counts = Array(repeating: 0, count: lists)
    }

    /// A new slot for `key`, at the front of `list`.
    package mutating func add(_ key: UInt64, to list: Int) -> Int {
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
    package mutating func release(_ slot: Int) {
        unlink(slot)
        free.append(Int32(slot))
    }

    /// The oldest slot of `list`, or nil.
    package func back(of list: Int) -> Int? {
        tails[list] >= 0 ? Int(tails[list]) : nil
    }

    /// The slot before `slot` in its list (towards the front), or nil.
    package func newer(than slot: Int) -> Int? {
        previous[slot] >= 0 ? Int(previous[slot]) : nil
    }

    /// Moves `slot` to the front of `list` (its own or another).
    package mutating func moveToFront(_ slot: Int, of list: Int) {
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
