/// An entry's node: 32 bytes (its record, age, reads and 32-bit LRU links).
struct Node {
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
struct LRUState: @unchecked Sendable {
    var nodes: [Node] = []
    var freeSlots: [Int32] = []
    var index = KeyIndex()
    var slab = RecordSlab()
    var head = -1
    var tail = -1
    var count = 0
    var bytes = 0
    var evictions = 0
    /// The TTLs in seconds, as ages are counted (read on every hit, under the lock already held;
    /// a reload changes them with `ContactCache.setTTLs`).
    var ttlSeconds: (contact: Double, notFound: Double) = (0, 0)
    /// What was invalidated while fills were under way (the invalidation rule).
    var invalidations = InvalidationLog()

    /// The slot of the entry that has `key`.
    func slot(for key: KeyBytes) -> Int? {
        index.find(hash: key.hash) { Record(nodes[$0]).has(key) }
    }

    /// Stores an entry at the front; `false` when no memory could be had for its record.
    mutating func add(_ layout: Record.Layout, storedAt: Double, reads: UInt32) -> Bool {
        let length = layout.length
        guard let record = slab.allocate(length) else { return false }
        layout.write(at: record)
        let node = Node(
            record: record,
            storedAt: storedAt,
            length: UInt32(length),
            reads: reads,
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
