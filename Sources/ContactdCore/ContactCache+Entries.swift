import NIOConcurrencyHelpers

/// A cache entry as `ContactCache.forEachEntry` shows it. The buffers are valid only inside the
/// closure that receives it.
package struct CacheEntryView {
    /// The kind and bytes of the key the entry was fetched for.
    package let requestedKind: ContactKey.Kind
    package let requestedKey: UnsafeRawBufferPointer
    /// The contact's id, phone number and compact JSON; `nil` (all three) for a not-found entry,
    /// `phone` also for a contact without a valid number.
    package let id: UnsafeRawBufferPointer?
    package let phone: UnsafeRawBufferPointer?
    package let json: UnsafeRawBufferPointer?
    /// Seconds since the entry was stored.
    package let age: Double
    /// Reads of the entry since it was stored.
    package let reads: Int
}

extension ContactCache {
    /// Calls `body` with every entry, segment by segment (nursery, window, probation, protected),
    /// oldest first: restored in this order, main's order is kept (a restore puts every entry in
    /// main; a restart forgets frequencies, docs/caching.md).
    ///
    /// The lock is taken once to list the entries in order (slot and record address, no copies),
    /// then once per `batch` entries to show them: a snapshot of a million entries never holds
    /// hits up for more than one batch's copy. An entry evicted, removed or replaced in between
    /// is skipped; one added in between is not shown. `body` runs under the cache's lock: it must
    /// be short and must not call into the cache. `betweenBatches` runs after each batch, without
    /// the lock (where a writer does its I/O).
    package func forEachEntry(
        batch: Int = 4096,
        _ body: (CacheEntryView) -> Void,
        betweenBatches: () -> Void = {}
    ) {
        struct Mark {
            let slot: Int32
            let record: UInt
            let storedAt: Double
        }
        let marks = state.withLockedValue { state -> [Mark] in
            state.slotsOldestFirst().map { slot in
                let node = state.nodes[slot]
                return Mark(slot: Int32(slot), record: UInt(bitPattern: node.record), storedAt: node.storedAt)
            }
        }
        var start = 0
        while start < marks.count {
            let end = min(start + max(1, batch), marks.count)
            let now = clock.now()
            state.withLockedValue { state in
                for mark in marks[start..<end] where Int(mark.slot) < state.nodes.count {
                    let node = state.nodes[Int(mark.slot)]
                    // The same entry still: a reused slot or record has a new address or time.
                    guard UInt(bitPattern: node.record) == mark.record, node.storedAt == mark.storedAt else {
                        continue
                    }
                    let record = Record(node)
                    body(
                        CacheEntryView(
                            requestedKind: ContactKey.Kind(rawValue: record.requested.kind) ?? .id,
                            requestedKey: record.requested.bytes,
                            id: record.id?.bytes,
                            phone: record.phone?.bytes,
                            json: record.json,
                            age: max(0, now - node.storedAt),
                            reads: Int(node.reads)
                        )
                    )
                }
            }
            start = end
            betweenBatches()
        }
    }
}
