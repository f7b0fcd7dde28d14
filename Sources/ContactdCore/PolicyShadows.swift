/// One way to run the cache's policy: how much of the cache is the window new keys enter, whether
/// main admits a key only when it is asked for more often than the entry it would evict, and how
/// much is the nursery that keys seen for the first time wait in (docs/caching.md, "Which entries
/// stay").
package struct PolicyConfiguration: Sendable, Equatable, CustomStringConvertible {
    /// Share of the entries that is the window (LRU).
    package let window: Double
    /// Whether main admits by frequency (TinyLFU); without, the cache is a segmented LRU.
    package let filters: Bool
    /// Share of the entries that is the nursery (FIFO) for first-seen keys; 0 sends them to the
    /// window.
    package let nursery: Double

    /// The configurations the cache chooses among: from frequency-minded (a small window, a
    /// filter, a nursery that a scanning client's one-time keys pass through) to recency-minded
    /// (almost all window, no filter: an LRU). No one of them is best on every workload.
    package static let candidates: [PolicyConfiguration] = [
        PolicyConfiguration(window: 0.01, filters: true, nursery: 0.1),
        PolicyConfiguration(window: 0.1, filters: true, nursery: 0.1),
        PolicyConfiguration(window: 0.25, filters: true, nursery: 0),
        PolicyConfiguration(window: 0.5, filters: true, nursery: 0),
        PolicyConfiguration(window: 0.99, filters: false, nursery: 0),
    ]
    /// Where a cache starts, before the simulations have seen enough: the middle.
    package static let start = 2

    package var description: String {
        "window \(Int(window * 100))%, \(filters ? "frequency filter" : "no filter"), nursery \(Int(nursery * 100))%"
    }
}

/// Miniature simulations that choose the cache's configuration (Waldspurger et al., "Cache
/// Modeling and Optimization using Miniature Simulations", USENIX ATC 2017): each candidate
/// configuration runs in a small cache of key hashes fed a sample of the keys (by hash, so a
/// key is in the sample always or never), scaled so the sample fills it as the whole fills the
/// real cache; the real cache runs as the one with the most hits lately.
///
/// Cost: a compare per access; a sampled access (one in `capacity / 2048`, or every access of a
/// cache of up to 2,048 entries) runs five small caches.
package struct PolicyShadows: Sendable {
    /// Entries of each miniature cache at most (the sample rate follows from it).
    static let entriesPerShadow = 2048
    /// How far back hits count, in accesses per miniature entry (an exponential decay).
    static let horizon = 40.0
    /// A challenger must beat the configuration in use by 1 % to replace it.
    static let hysteresis = 1.01

    private var shadows: [MiniatureCache]
    private var scores: [Double]
    private let decay: Double
    /// An access is sampled when the top 32 bits of its hash are below this.
    private let threshold: UInt64
    /// The index in `PolicyConfiguration.candidates` of the configuration in use.
    package private(set) var current = PolicyConfiguration.start

    /// Simulations for a cache of `capacity` entries.
    package init(capacity: Int) {
        let rate = min(1.0, Double(Self.entriesPerShadow) / Double(max(1, capacity)))
        threshold = rate >= 1 ? 1 << 32 : UInt64(rate * Double(1 << 32))
        let entries = max(1, Int((Double(capacity) * rate).rounded()))
        shadows = PolicyConfiguration.candidates.map { MiniatureCache(capacity: entries, configuration: $0) }
        scores = Array(repeating: 0, count: shadows.count)
        decay = 1 - 1 / max(100, Self.horizon * Double(entries))
    }

    package var configuration: PolicyConfiguration { PolicyConfiguration.candidates[current] }

    /// Counts an access to the key whose hash is `hash`; true when the configuration changed.
    package mutating func record(_ hash: Int) -> Bool {
        guard UInt64(truncatingIfNeeded: hash) >> 32 < threshold else { return false }
        var best = current
        for i in shadows.indices {
            scores[i] = scores[i] * decay + (shadows[i].access(UInt64(truncatingIfNeeded: hash)) ? 1 : 0)
            if scores[i] > scores[best] { best = i }
        }
        guard best != current, scores[best] > scores[current] * Self.hysteresis else { return false }
        current = best
        return true
    }
}

/// The cache's policy in miniature, on key hashes of one size, in one fixed configuration: the
/// same segments and rules as `CacheState` (nursery, window, probation, protected), without
/// records or bytes.
struct MiniatureCache: Sendable {
    private static let nursery = 0
    private static let window = 1
    private static let probation = 2
    private static let protected = 3
    private let capacity: Int
    private let configuration: PolicyConfiguration
    private let windowCapacity: Int
    private let nurseryCapacity: Int
    private let protectedCapacity: Int
    private var lists = SlotLists(lists: 4)
    private var slots: [UInt64: Int] = [:]
    private var sketch: FrequencySketch

    init(capacity: Int, configuration: PolicyConfiguration) {
        self.capacity = capacity
        self.configuration = configuration
        windowCapacity = min(max(1, capacity - 1), max(1, Int(Double(capacity) * configuration.window)))
        nurseryCapacity = max(1, Int(Double(capacity) * configuration.nursery))
        protectedCapacity = (capacity - windowCapacity) * 8 / 10
        sketch = FrequencySketch(entries: capacity)
    }

    /// Whether `key` was cached; caches it.
    mutating func access(_ key: UInt64) -> Bool {
        let hash = Int(truncatingIfNeeded: key)
        let seenBefore = sketch.frequency(hash) > 0
        sketch.increment(hash)
        if let slot = slots[key] {
            switch Int(lists.list[slot]) {
            case Self.nursery, Self.window: lists.moveToFront(slot, of: Self.window)
            case Self.probation:
                lists.moveToFront(slot, of: Self.protected)
                while lists.counts[Self.protected] > protectedCapacity, let oldest = lists.back(of: Self.protected) {
                    lists.moveToFront(oldest, of: Self.probation)
                }
            default: lists.moveToFront(slot, of: Self.protected)
            }
            return true
        }
        let toNursery = configuration.nursery > 0 && configuration.filters && !seenBefore
        slots[key] = lists.add(key, to: toNursery ? Self.nursery : Self.window)
        evict()
        return false
    }

    private mutating func evict() {
        while lists.counts[Self.nursery] > nurseryCapacity, let slot = lists.back(of: Self.nursery) {
            drop(slot)
        }
        while lists.counts[Self.window] > windowCapacity, let candidate = lists.back(of: Self.window) {
            guard slots.count > capacity,
                let victim = lists.back(of: Self.probation) ?? lists.back(of: Self.protected)
            else {
                lists.moveToFront(candidate, of: Self.probation)
                continue
            }
            if !configuration.filters
                || sketch.frequency(Int(truncatingIfNeeded: lists.keys[candidate]))
                    > max(1, sketch.frequency(Int(truncatingIfNeeded: lists.keys[victim])))
            {
                drop(victim)
                lists.moveToFront(candidate, of: Self.probation)
            } else {
                drop(candidate)
            }
        }
        while slots.count > capacity {
            drop(
                lists.back(of: Self.probation) ?? lists.back(of: Self.protected) ?? lists.back(of: Self.window)
                    ?? lists.back(of: Self.nursery)!
            )
        }
    }

    private mutating func drop(_ slot: Int) {
        slots[lists.keys[slot]] = nil
        lists.release(slot)
    }
}
