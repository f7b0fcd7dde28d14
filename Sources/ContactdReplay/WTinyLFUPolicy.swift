import ContactdCore

/// W-TinyLFU as Caffeine has it (Einziger, Friedman and Manes, 2017): a small LRU window that new
/// keys enter, a segmented LRU main (probation, and protected at 80 %), and admission from the
/// window to main only for a key asked for more often, by a frequency sketch (one word per entry),
/// than the main entry it would evict. The window's size is hill-climbed on the hit ratio.
package final class WTinyLFUPolicy: ReplayPolicy {
    private static let window = 0
    private static let probation = 1
    private static let protected = 2
    private let capacity: Int
    private var windowCapacity: Int
    private var protectedCapacity: Int
    private var lists = SlotLists(lists: 3)
    private var slots: [UInt64: Int] = [:]
    private var sketch: FrequencySketch
    private var climber: WindowClimber

    package init(capacity: Int) {
        self.capacity = capacity
        windowCapacity = max(1, capacity / 100)
        protectedCapacity = (capacity - windowCapacity) * 8 / 10
        sketch = FrequencySketch(entries: capacity, wordsPerEntry: 1)
        climber = WindowClimber(capacity: capacity)
    }

    package func access(_ key: UInt64) -> Bool {
        guard capacity > 0 else { return false }
        sketch.increment(Self.hash(key))
        let hit: Bool
        if let slot = slots[key] {
            hit = true
            switch Int(lists.list[slot]) {
            case Self.window: lists.moveToFront(slot, of: Self.window)
            case Self.probation:
                lists.moveToFront(slot, of: Self.protected)
                demoteProtected()
            default: lists.moveToFront(slot, of: Self.protected)
            }
        } else {
            hit = false
            slots[key] = lists.add(key, to: Self.window)
            evict()
        }
        let adjustment = climber.record(hit: hit)
        if adjustment != 0 { resizeWindow(by: adjustment) }
        return hit
    }

    /// A deterministic hash, so that a replay gives the same figures every time.
    static func hash(_ key: UInt64) -> Int {
        var x = key &+ 0x9E37_79B9_7F4A_7C15
        x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
        x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
        return Int(truncatingIfNeeded: x ^ (x >> 31))
    }

    private func demoteProtected() {
        while lists.counts[Self.protected] > protectedCapacity, let slot = lists.back(of: Self.protected) {
            lists.moveToFront(slot, of: Self.probation)
        }
    }

    /// Moves the window's overflow into main: while main is full, each candidate against
    /// probation's oldest entry, the one asked for less often evicted.
    private func evict() {
        while lists.counts[Self.window] > windowCapacity, let candidate = lists.back(of: Self.window) {
            guard slots.count > capacity,
                let victim = lists.back(of: Self.probation) ?? lists.back(of: Self.protected)
            else {
                lists.moveToFront(candidate, of: Self.probation)
                continue
            }
            if sketch.frequency(Self.hash(lists.keys[candidate])) > sketch.frequency(Self.hash(lists.keys[victim])) {
                drop(victim)
                lists.moveToFront(candidate, of: Self.probation)
            } else {
                drop(candidate)
            }
        }
        while slots.count > capacity {
            drop(lists.back(of: Self.probation) ?? lists.back(of: Self.protected) ?? lists.back(of: Self.window)!)
        }
    }

    /// Caffeine's climber moves entries between window and main at once when it resizes.
    private func resizeWindow(by amount: Int) {
        if amount > 0 {
            let step = min(amount, max(0, protectedCapacity))
            windowCapacity += step
            protectedCapacity -= step
            while lists.counts[Self.probation] + lists.counts[Self.protected] > capacity - windowCapacity,
                let slot = lists.back(of: Self.probation) ?? lists.back(of: Self.protected)
            {
                lists.moveToFront(slot, of: Self.window)
            }
            demoteProtected()
        } else {
            let mainCapacity = capacity - windowCapacity
            let step = min(-amount, windowCapacity - 1)
            windowCapacity -= step
            protectedCapacity = min(protectedCapacity + step, (mainCapacity + step) * 8 / 10)
            while lists.counts[Self.window] > windowCapacity, let slot = lists.back(of: Self.window) {
                lists.moveToFront(slot, of: Self.probation)
            }
        }
    }

    private func drop(_ slot: Int) {
        slots[lists.keys[slot]] = nil
        lists.release(slot)
    }
}

/// Sizes the admission window by hill climbing on the hit ratio (Caffeine's climber): after each
/// sample of ten accesses per entry of capacity, it moves the window a step in the direction that
/// raised the hit ratio last time, and reverses when it fell. Steps shrink as the ratio settles
/// and restart when it jumps (the workload changed).
struct WindowClimber {
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
        stepSize = abs(change) >= 0.05 ? 0.0625 * Double(capacity) * (amount >= 0 ? 1 : -1) : 0.98 * amount
        previousHitRatio = hitRatio
        hits = 0
        misses = 0
        return Int(amount)
    }
}
