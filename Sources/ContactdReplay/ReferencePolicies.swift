import ContactdCore

/// A cache policy replayed over keys of one size: `access` answers whether `key` was cached, and
/// caches it (or, for a policy that may refuse, considers it).
///
/// These are the published policies the shipped one is measured against (docs/benchmarks.md,
/// "Hit ratios"), written from their papers for replay only: never linked into the daemon.
package protocol ReplayPolicy: AnyObject {
    func access(_ key: UInt64) -> Bool
}

/// Least recently used: the cache contactd had before, and the baseline of every comparison.
package final class LRUPolicy: ReplayPolicy {
    private let capacity: Int
    private var lists = SlotLists(lists: 1)
    private var slots: [UInt64: Int] = [:]

    package init(capacity: Int) { self.capacity = capacity }

    package func access(_ key: UInt64) -> Bool {
        if let slot = slots[key] {
            lists.moveToFront(slot, of: 0)
            return true
        }
        guard capacity > 0 else { return false }
        if slots.count == capacity, let oldest = lists.back(of: 0) {
            slots[lists.keys[oldest]] = nil
            lists.release(oldest)
        }
        slots[key] = lists.add(key, to: 0)
        return false
    }
}

/// SIEVE (Zhang et al., NSDI 2024): a FIFO with a visited bit and a hand that sweeps from the
/// oldest entry towards the newest, sparing (and clearing) visited ones.
package final class SievePolicy: ReplayPolicy {
    private let capacity: Int
    private var lists = SlotLists(lists: 1)
    private var slots: [UInt64: Int] = [:]
    private var hand: Int?

    package init(capacity: Int) { self.capacity = capacity }

    package func access(_ key: UInt64) -> Bool {
        if let slot = slots[key] {
            lists.bits[slot] = 1
            return true
        }
        guard capacity > 0 else { return false }
        if slots.count == capacity { evict() }
        slots[key] = lists.add(key, to: 0)
        return false
    }

    private func evict() {
        var slot = hand ?? lists.back(of: 0)!
        while lists.bits[slot] != 0 {
            lists.bits[slot] = 0
            slot = lists.newer(than: slot) ?? lists.back(of: 0)!
        }
        hand = lists.newer(than: slot)
        slots[lists.keys[slot]] = nil
        lists.release(slot)
    }
}

/// S3-FIFO (Yang et al., SOSP 2023): a small FIFO (10 %) that new keys enter, a main FIFO with
/// 2-bit frequencies and reinsertion, and a ghost queue of keys evicted from the small one; a key
/// seen again in the ghost goes straight to main.
package final class S3FIFOPolicy: ReplayPolicy {
    private static let small = 0
    private static let main = 1
    private let capacity: Int
    private let smallCapacity: Int
    private var lists = SlotLists(lists: 2)
    private var slots: [UInt64: Int] = [:]
    private var ghost: GhostQueue

    package init(capacity: Int) {
        self.capacity = capacity
        smallCapacity = max(1, capacity / 10)
        ghost = GhostQueue(capacity: max(1, capacity - capacity / 10))
    }

    package func access(_ key: UInt64) -> Bool {
        if let slot = slots[key] {
            lists.bits[slot] = min(lists.bits[slot] + 1, 3)
            return true
        }
        guard capacity > 0 else { return false }
        while slots.count >= capacity { evict() }
        if ghost.contains(key) {
            ghost.remove(key)
            slots[key] = lists.add(key, to: Self.main)
        } else {
            slots[key] = lists.add(key, to: Self.small)
        }
        return false
    }

    private func evict() {
        if lists.counts[Self.small] >= smallCapacity || lists.counts[Self.main] == 0 {
            evictSmall()
        } else {
            evictMain()
        }
    }

    private func evictSmall() {
        while let slot = lists.back(of: Self.small) {
            if lists.bits[slot] > 0 {
                lists.bits[slot] = 0
                lists.moveToFront(slot, of: Self.main)
                if lists.counts[Self.main] > capacity - smallCapacity { evictMain() }
            } else {
                ghost.append(lists.keys[slot])
                slots[lists.keys[slot]] = nil
                lists.release(slot)
                return
            }
        }
    }

    private func evictMain() {
        while let slot = lists.back(of: Self.main) {
            if lists.bits[slot] > 0 {
                lists.bits[slot] -= 1
                lists.moveToFront(slot, of: Self.main)
            } else {
                slots[lists.keys[slot]] = nil
                lists.release(slot)
                return
            }
        }
    }
}

/// 2Q (Johnson and Shasha, VLDB 1994), full version: new keys enter a FIFO (25 %); keys evicted
/// from it are remembered in a ghost queue (50 %); a key seen again there enters the main LRU.
package final class TwoQPolicy: ReplayPolicy {
    private static let inQueue = 0
    private static let main = 1
    private let capacity: Int
    private let inCapacity: Int
    private var lists = SlotLists(lists: 2)
    private var slots: [UInt64: Int] = [:]
    private var ghost: GhostQueue

    package init(capacity: Int) {
        self.capacity = capacity
        inCapacity = max(1, capacity / 4)
        ghost = GhostQueue(capacity: max(1, capacity / 2))
    }

    package func access(_ key: UInt64) -> Bool {
        if let slot = slots[key] {
            if lists.list[slot] == Self.main { lists.moveToFront(slot, of: Self.main) }
            return true
        }
        guard capacity > 0 else { return false }
        if slots.count >= capacity { reclaim() }
        if ghost.contains(key) {
            ghost.remove(key)
            slots[key] = lists.add(key, to: Self.main)
        } else {
            slots[key] = lists.add(key, to: Self.inQueue)
        }
        return false
    }

    private func reclaim() {
        if lists.counts[Self.inQueue] > inCapacity || lists.counts[Self.main] == 0,
            let slot = lists.back(of: Self.inQueue)
        {
            ghost.append(lists.keys[slot])
            slots[lists.keys[slot]] = nil
            lists.release(slot)
        } else if let slot = lists.back(of: Self.main) {
            slots[lists.keys[slot]] = nil
            lists.release(slot)
        }
    }
}

/// ARC (Megiddo and Modha, FAST 2003): recency (T1) and frequency (T2) lists with ghosts (B1, B2)
/// whose hits move the target size of T1.
package final class ARCPolicy: ReplayPolicy {
    private static let t1 = 0
    private static let t2 = 1
    private static let b1 = 2
    private static let b2 = 3
    private let capacity: Int
    private var lists = SlotLists(lists: 4)
    private var slots: [UInt64: Int] = [:]
    private var target = 0

    package init(capacity: Int) { self.capacity = capacity }

    package func access(_ key: UInt64) -> Bool {
        guard capacity > 0 else { return false }
        let c = lists.counts
        if let slot = slots[key] {
            switch Int(lists.list[slot]) {
            case Self.t1, Self.t2:
                lists.moveToFront(slot, of: Self.t2)
                return true
            case Self.b1:
                target = min(capacity, target + max(1, c[Self.b2] / max(1, c[Self.b1])))
                replace(hitInB2: false)
                lists.moveToFront(slot, of: Self.t2)
                return false
            default:
                target = max(0, target - max(1, c[Self.b1] / max(1, c[Self.b2])))
                replace(hitInB2: true)
                lists.moveToFront(slot, of: Self.t2)
                return false
            }
        }
        let l1 = c[Self.t1] + c[Self.b1]
        let total = l1 + c[Self.t2] + c[Self.b2]
        if l1 == capacity {
            if c[Self.t1] < capacity {
                drop(lists.back(of: Self.b1)!)
                replace(hitInB2: false)
            } else {
                drop(lists.back(of: Self.t1)!)
            }
        } else if total >= capacity {
            if total == 2 * capacity { drop(lists.back(of: Self.b2)!) }
            replace(hitInB2: false)
        }
        slots[key] = lists.add(key, to: Self.t1)
        return false
    }

    private func replace(hitInB2: Bool) {
        let t1 = lists.counts[Self.t1]
        if t1 > 0 && (t1 > target || (hitInB2 && t1 == target)) {
            lists.moveToFront(lists.back(of: Self.t1)!, of: Self.b1)
        } else if let slot = lists.back(of: Self.t2) {
            lists.moveToFront(slot, of: Self.b2)
        } else if let slot = lists.back(of: Self.t1) {
            lists.moveToFront(slot, of: Self.b1)
        }
    }

    private func drop(_ slot: Int) {
        slots[lists.keys[slot]] = nil
        lists.release(slot)
    }
}
