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
