/// The key → slot index: open addressing with linear probing over 8-byte buckets.
///
/// A bucket holds the upper 32 bits of the key's hash (a tag, whose low bits are also the key's
/// home position, so that a bucket can be moved without its key) and the slot number plus one
/// (0 is empty); the key itself lives in the entry's record and is compared only when the tag
/// matches. Why not a `Dictionary<ContactKey, Int>`: it holds a copy of every key, padded, in each
/// bucket, about four times the memory per contact (docs/benchmarks.md, "Memory"). Deletion
/// shifts later buckets back (no tombstones), so probe lengths stay those of the current load, at
/// most one half.
struct KeyIndex {
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
