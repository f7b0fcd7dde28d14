/// A fill in progress: the invalidation count when its fetch began.
package struct FillTicket: Sendable, Hashable {
    fileprivate let sequence: UInt64
}

/// The invalidation rule's memory (docs/caching.md, "The invalidation rule"): a fetch's result
/// may be stored only if none of the keys it would be stored under was invalidated after the
/// fetch began.
///
/// Every invalidation takes the next number of one sequence; a fill's ticket is the number when
/// its fetch began. The log keeps, for each key invalidated while any fill is open, the number of
/// its last invalidation, and the number of the last "invalidate everything". With no fill open
/// nothing needs remembering, and the log is emptied. Kept under `ContactCache`'s lock.
struct InvalidationLog {
    private var sequence: UInt64 = 0
    private var openFills = 0
    private var lastAll: UInt64 = 0
    private var byKey: [ContactKey: UInt64] = [:]
    /// Keys remembered at most: past it, every open fill is voided instead (as by an
    /// invalidation of everything), which is safe and keeps the log bounded.
    static let keyLimit = 100_000

    mutating func begin() -> FillTicket {
        openFills += 1
        return FillTicket(sequence: sequence)
    }

    mutating func end(_ ticket: FillTicket) {
        openFills = max(0, openFills - 1)
        if openFills == 0 { byKey = [:] }
    }

    mutating func invalidate(_ keys: [ContactKey]) {
        sequence += 1
        guard openFills > 0 else { return }
        if byKey.count + keys.count > Self.keyLimit {
            byKey = [:]
            lastAll = sequence
            return
        }
        for key in keys { byKey[key] = sequence }
    }

    mutating func invalidateAll() {
        sequence += 1
        lastAll = sequence
        byKey = [:]
    }

    /// Whether a fill begun with `ticket` may no longer store under `keys`.
    func voids(_ ticket: FillTicket, keys: [ContactKey]) -> Bool {
        if lastAll > ticket.sequence { return true }
        if byKey.isEmpty { return false }
        return keys.contains { (byKey[$0] ?? 0) > ticket.sequence }
    }
}
