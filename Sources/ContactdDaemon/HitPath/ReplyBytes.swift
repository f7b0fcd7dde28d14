import ContactdProtocol

/// The fast lane's reply buffer: a pointer, a count and a capacity.
///
/// Why not a `ByteBuffer`: each of its writes goes through its storage object, with a uniqueness
/// check and a dynamic exclusivity check (a thread-local access set) every time, which on the
/// lane's hit path cost more than the copying (docs/benchmarks.md, "Where the time goes").
///
/// Owned by one loop, which frees it: a copy shares the storage, so it is never copied but to
/// move it into a local variable and back.
struct ReplyBytes: ReplySink {
    private(set) var base: UnsafeMutableRawPointer
    private(set) var count = 0
    private var capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
        base = .allocate(byteCount: capacity, alignment: 16)
    }

    /// The bytes written so far.
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    mutating func clear() { count = 0 }

    func deallocate() { base.deallocate() }

    // The appends and the room check are inlined into the hit writer; growing is not.
    @inline(__always)
    mutating func reserve(_ extra: Int) {
        if count + extra > capacity { grow(toHold: count + extra) }
    }

    @inline(never)
    private mutating func grow(toHold needed: Int) {
        var newCapacity = capacity * 2
        while newCapacity < needed { newCapacity *= 2 }
        let grown = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
        grown.copyMemory(from: base, byteCount: count)
        base.deallocate()
        base = grown
        capacity = newCapacity
    }

    @inline(__always)
    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, !bytes.isEmpty else { return }
        reserve(bytes.count)
        (base + count).copyMemory(from: source, byteCount: bytes.count)
        count += bytes.count
    }

    @inline(__always)
    mutating func append(_ text: StaticString) {
        append(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }
}
