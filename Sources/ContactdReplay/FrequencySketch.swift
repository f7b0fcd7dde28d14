/// How often keys were asked for lately, approximately, in 4-bit counters: the "TinyLFU" part of
/// W-TinyLFU.
///
/// A count-min sketch laid out as Caffeine's: a key's four counters sit in one 64-byte block, so
/// counting an access touches one cache line. Counters saturate at 15 and all halve after ten
/// accesses per entry of capacity, so what was popular yesterday fades. It holds no keys, only
/// hashes: a key no longer cached still has its history here, which is what lets a returning
/// key be admitted over an entry nobody asks for.
struct FrequencySketch: Sendable {
    private var table: [UInt64]
    private let blockMask: Int
    private let sampleSize: Int
    private var additions = 0

    /// A sketch for a cache of `capacity` entries: one 64-bit word (16 counters) per entry,
    /// rounded up to a power of two.
    init(capacity: Int) {
        var words = 8
        while words < capacity { words <<= 1 }
        table = Array(repeating: 0, count: words)
        blockMask = (words >> 3) - 1
        sampleSize = max(10, 10 * capacity)
    }

    /// Counts an access to the key whose hash is `hash`.
    mutating func increment(_ hash: Int) {
        let blockHash = Self.spread(UInt64(truncatingIfNeeded: hash))
        let counterHash = Self.rehash(blockHash)
        let block = (Int(truncatingIfNeeded: blockHash) & blockMask) << 3
        var added = false
        for i in 0..<4 {
            let h = counterHash >> (UInt64(i) << 3)
            let word = block + Int(h & 1) + (i << 1)
            let shift = UInt64((h >> 1) & 15) << 2
            let mask: UInt64 = 0xF << shift
            if table[word] & mask != mask {
                table[word] &+= 1 << shift
                added = true
            }
        }
        if added {
            additions += 1
            if additions >= sampleSize { halve() }
        }
    }

    /// The estimated recent accesses of the key whose hash is `hash` (0–15).
    func frequency(_ hash: Int) -> Int {
        let blockHash = Self.spread(UInt64(truncatingIfNeeded: hash))
        let counterHash = Self.rehash(blockHash)
        let block = (Int(truncatingIfNeeded: blockHash) & blockMask) << 3
        var least = 15
        for i in 0..<4 {
            let h = counterHash >> (UInt64(i) << 3)
            let word = block + Int(h & 1) + (i << 1)
            let shift = UInt64((h >> 1) & 15) << 2
            least = min(least, Int((table[word] >> shift) & 0xF))
        }
        return least
    }

    /// Ages every counter by half (the "reset" of TinyLFU).
    private mutating func halve() {
        var odd = 0
        for i in table.indices {
            odd += (table[i] & 0x1111_1111_1111_1111).nonzeroBitCount
            table[i] = (table[i] >> 1) & 0x7777_7777_7777_7777
        }
        additions = (additions - (odd >> 2)) >> 1
    }

    private static func spread(_ x: UInt64) -> UInt64 {
        var x = x
        x ^= x >> 17
        x &*= 0xed5a_d4bb
        x ^= x >> 11
        x &*= 0xac4c_1b51
        x ^= x >> 15
        return x
    }

    private static func rehash(_ x: UInt64) -> UInt64 {
        var x = x &* 0x3184_8bab
        x ^= x >> 14
        return x
    }
}

/// Sizes the admission window by hill climbing on the hit ratio (Caffeine's climber): after each
/// sample of ten accesses per entry of capacity, it moves the window a step in the direction that
/// raised the hit ratio last time, and reverses when it fell. Steps shrink as the ratio settles
/// and restart when it jumps (the workload changed).
struct WindowClimber: Sendable {
    private let capacity: Int
    private let sampleSize: Int
    private var hits = 0
    private var misses = 0
    private var previousHitRatio = 0.0
    private var stepSize: Double

    init(capacity: Int) {
        self.capacity = capacity
        sampleSize = max(10, 10 * capacity)
        stepSize = -0.0625 * Double(capacity)
    }

    /// Counts an access; at the end of a sample, returns how many entries to move the window by
    /// (positive: grow it), else 0.
    mutating func record(hit: Bool) -> Int {
        if hit { hits += 1 } else { misses += 1 }
        guard hits + misses >= sampleSize else { return 0 }
        let hitRatio = Double(hits) / Double(hits + misses)
        let change = hitRatio - previousHitRatio
        let amount = change >= 0 ? stepSize : -stepSize
        stepSize =
            abs(change) >= 0.05
            ? 0.0625 * Double(capacity) * (amount >= 0 ? 1 : -1)
            : 0.98 * amount
        previousHitRatio = hitRatio
        hits = 0
        misses = 0
        return Int(amount)
    }
}
