/// Belady's optimum (MIN): knowing the whole trace, keep the keys asked for again soonest, and do
/// not keep a key that is never asked for again. No policy can hit more often at this capacity.
package enum Belady {
    /// Hits of the best possible cache of `capacity` keys on `trace` (unit-sized keys).
    package static func hits(_ trace: [UInt64], capacity: Int) -> Int {
        guard capacity > 0 else { return 0 }
        let never = Int.max
        // nextUse[i]: where trace[i]'s key is asked for next.
        var nextUse = [Int](repeating: never, count: trace.count)
        var seen: [UInt64: Int] = [:]
        for i in stride(from: trace.count - 1, through: 0, by: -1) {
            nextUse[i] = seen[trace[i]] ?? never
            seen[trace[i]] = i
        }
        // Cached key → its next use; a max-heap of (next use, key) with stale pairs skipped.
        var cached: [UInt64: Int] = [:]
        var heap = MaxHeap()
        var hits = 0
        for (i, key) in trace.enumerated() {
            if cached[key] != nil {
                hits += 1
            }
            if nextUse[i] == never {
                cached[key] = nil
                continue
            }
            cached[key] = nextUse[i]
            heap.push(nextUse[i], key)
            while cached.count > capacity {
                let (next, victim) = heap.pop()
                if cached[victim] == next { cached[victim] = nil }
            }
        }
        return hits
    }
}

/// A binary max-heap of (next use, key) pairs.
private struct MaxHeap {
    private var items: [(next: Int, key: UInt64)] = []

    mutating func push(_ next: Int, _ key: UInt64) {
        items.append((next, key))
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[parent].next < items[child].next else { break }
            items.swapAt(parent, child)
            child = parent
        }
    }

    mutating func pop() -> (Int, UInt64) {
        let top = items[0]
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1
                let right = left + 1
                var largest = parent
                if left < items.count, items[left].next > items[largest].next { largest = left }
                if right < items.count, items[right].next > items[largest].next { largest = right }
                guard largest != parent else { break }
                items.swapAt(parent, largest)
                parent = largest
            }
        }
        return (top.next, top.key)
    }
}
