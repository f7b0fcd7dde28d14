/// W-TinyLFU (Einziger, Friedman and Manes, 2017): a small LRU window that new keys enter, a
/// segmented LRU main (probation, and protected at 80 %), and admission from the window to main
/// only for a key asked for more often, by a frequency sketch, than the main entry it would evict.
///
/// Two ways to size the window: Caffeine's hill climbing on the hit ratio (`.hillClimbing`, the
/// published policy), and an experiment of ours (`.ghosts`): ARC's idea applied to the window,
/// where a key asked for again soon after the window let it go grows the window by one entry, and
/// one asked for again soon after main evicted it shrinks it (docs/benchmarks.md, "Hit ratios").
package final class WTinyLFUPolicy: ReplayPolicy {
    package enum Adaptation: Sendable {
        case hillClimbing
        case ghosts
    }

    private static let window = 0
    private static let probation = 1
    private static let protected = 2
    private let capacity: Int
    private let adaptation: Adaptation
    private var windowCapacity: Int
    private var protectedCapacity: Int
    private var lists = SlotLists(lists: 3)
    private var slots: [UInt64: Int] = [:]
    private var sketch: FrequencySketch
    private var climber: WindowClimber
    /// Keys the window let go (refused by main), and keys main evicted: for `.ghosts`.
    private var refused: GhostQueue
    private var evicted: GhostQueue

    package init(capacity: Int, adaptation: Adaptation = .hillClimbing) {
        self.capacity = capacity
        self.adaptation = adaptation
        let share = adaptation == .hillClimbing ? 0.01 : 0.2
        windowCapacity = max(1, Int(Double(capacity) * share))
        protectedCapacity = (capacity - windowCapacity) * 8 / 10
        sketch = FrequencySketch(capacity: capacity)
        climber = WindowClimber(capacity: capacity)
        refused = GhostQueue(capacity: adaptation == .ghosts ? max(1, capacity / 2) : 1)
        evicted = GhostQueue(capacity: adaptation == .ghosts ? max(1, capacity) : 1)
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
            if adaptation == .ghosts { adapt(to: key) }
            slots[key] = lists.add(key, to: Self.window)
            evict()
        }
        if adaptation == .hillClimbing {
            let adjustment = climber.record(hit: hit)
            if adjustment != 0 { resizeWindow(by: adjustment) }
        }
        return hit
    }

    /// A deterministic hash, so that a replay gives the same figures every time.
    private static func hash(_ key: UInt64) -> Int {
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
                evicted.append(lists.keys[victim])
                drop(victim)
                lists.moveToFront(candidate, of: Self.probation)
            } else {
                refused.append(lists.keys[candidate])
                drop(candidate)
            }
        }
        while slots.count > capacity {
            drop(lists.back(of: Self.probation) ?? lists.back(of: Self.protected) ?? lists.back(of: Self.window)!)
        }
    }

    private func adapt(to key: UInt64) {
        if refused.contains(key) {
            refused.remove(key)
            if windowCapacity < capacity - 1 { resizeWindow(by: 1) }
        } else if evicted.contains(key) {
            evicted.remove(key)
            if windowCapacity > 1 { resizeWindow(by: -1) }
        }
    }

    private func resizeWindow(by amount: Int) {
        if amount > 0 {
            let step = min(amount, max(0, protectedCapacity))
            windowCapacity += step
            protectedCapacity -= step
            // Main's oldest entries move into the window while main is over its new size.
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
