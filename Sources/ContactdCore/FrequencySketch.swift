/// How often keys were asked for lately, approximately, in 4-bit counters: the "TinyLFU" of the
/// cache's admission (docs/caching.md, "Which entries stay").
///
/// A count-min sketch laid out as Caffeine's: a key's four counters sit in one 64-byte block, so
/// counting an access touches one cache line. Counters saturate at 15 and all halve after ten
/// accesses per entry, so what was popular yesterday fades. It holds no keys, only hashes: a key
/// no longer cached keeps its history here, which is what lets a returning key in over an entry
/// nobody asks for.
///
/// Two 64-bit words (32 counters) per entry: with one, a scanning client's one-time keys raised
/// most counters by collision and won admission over entries in use (docs/benchmarks.md, "Hit
/// ratios"). The table grows with the cache (counts start again when it does), so an empty cache
/// holds none of it.
package struct FrequencySketch: Sendable {
    private let wordsPerEntry: Int
    private var table: [UInt64] = []
    private var blockMask = 0
    private var sampleSize = 0
    private var additions = 0
    /// The entries the table is sized for.
    package private(set) var capacity = 0

    /// A sketch for `entries` entries (grown later by `ensureCapacity`); Caffeine's has one word
    /// per entry, the cache's two.
    package init(entries: Int = 0, wordsPerEntry: Int = 2) {
        self.wordsPerEntry = wordsPerEntry
        ensureCapacity(entries)
    }

    /// Grows the table for `entries` entries if it is smaller (a power of two words, at least 64).
    package mutating func ensureCapacity(_ entries: Int) {
        guard entries > capacity || table.isEmpty else { return }
        capacity = max(1, entries)
        sampleSize = 10 * capacity
        var words = 64
        while words < capacity * wordsPerEntry { words <<= 1 }
        guard words > table.count else { return }
        table = Array(repeating: 0, count: words)
        blockMask = (words >> 3) - 1
        additions = 0
    }

    /// Counts an access to the key whose hash is `hash`.
    package mutating func increment(_ hash: Int) {
        let (block, counterHash) = locate(hash)
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
    package func frequency(_ hash: Int) -> Int {
        let (block, counterHash) = locate(hash)
        var least = 15
        for i in 0..<4 {
            let h = counterHash >> (UInt64(i) << 3)
            let word = block + Int(h & 1) + (i << 1)
            let shift = UInt64((h >> 1) & 15) << 2
            least = min(least, Int((table[word] >> shift) & 0xF))
        }
        return least
    }

    /// The key's block (8 words) and the hash that picks its counters in it. `hash` must be well
    /// mixed already (`Hasher`'s, as every caller's is): it is not spread again, which a hit
    /// would pay for.
    private func locate(_ hash: Int) -> (block: Int, counterHash: UInt64) {
        // The block from the high half, the counters from the whole: independent bits.
        let x = UInt64(truncatingIfNeeded: hash)
        var counterHash = x &* 0x9E37_79B9_7F4A_7C15
        counterHash ^= counterHash >> 29
        return ((Int(truncatingIfNeeded: x >> 32) & blockMask) << 3, counterHash)
    }

    /// Ages every counter by half (TinyLFU's reset).
    private mutating func halve() {
        var odd = 0
        for i in table.indices {
            odd += (table[i] & 0x1111_1111_1111_1111).nonzeroBitCount
            table[i] = (table[i] >> 1) & 0x7777_7777_7777_7777
        }
        additions = (additions - (odd >> 2)) >> 1
    }
}
