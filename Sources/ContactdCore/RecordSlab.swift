import Glibc

/// Memory for the cache's records: 1 MiB pages mapped from the kernel, each cut into chunks of one
/// size (a multiple of 8 bytes up to 4 KiB), with a free list per size; a bigger record gets an
/// allocation of its own.
///
/// A freed chunk is reused by the next record of its size, and a page stays cut for its size until
/// the cache is emptied: contacts of one API come in a narrow band of sizes, so this costs little.
/// Pages come from `mmap`, not `malloc`: a page is resident only as far as it has been cut, and no
/// short-lived heap buffer is placed among the records.
final class RecordSlab {
    static let pageBytes = 1 << 20
    static let largestChunk = 4096

    private var pages: [UnsafeMutableRawPointer] = []
    private var oversized: Set<UnsafeMutableRawPointer> = []
    private var oversizedBytes = 0
    /// Per chunk size (index: size / 8): the first free chunk, whose first 8 bytes point to the next.
    private var free = [UnsafeMutableRawPointer?](repeating: nil, count: largestChunk / 8 + 1)
    /// Per chunk size: the page being cut and where its uncut part starts.
    private var cutting = [(page: UnsafeMutableRawPointer, offset: Int)?](repeating: nil, count: largestChunk / 8 + 1)

    /// Bytes a record of `length` bytes takes.
    static func chunkBytes(_ length: Int) -> Int {
        max(8, (length + 7) & ~7)
    }

    var heldBytes: Int { pages.count * Self.pageBytes + oversizedBytes }

    /// A chunk for a record of `length` bytes; `nil` when the kernel has no page to give.
    func allocate(_ length: Int) -> UnsafeMutableRawPointer? {
        let size = Self.chunkBytes(length)
        guard size <= Self.largestChunk else {
            let record = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
            oversized.insert(record)
            oversizedBytes += size
            return record
        }
        let sizeClass = size >> 3
        if let chunk = free[sizeClass] {
            free[sizeClass] = chunk.load(as: UnsafeMutableRawPointer?.self)
            return chunk
        }
        if let (page, offset) = cutting[sizeClass], offset + size <= Self.pageBytes {
            cutting[sizeClass] = (page, offset + size)
            return page + offset
        }
        // Out of memory (or over RLIMIT_AS): the entry is not cached, and the lookup that brought
        // it is still answered. Load must never be able to stop the daemon.
        guard
            let page = mmap(nil, Self.pageBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
            page != UnsafeMutableRawPointer(bitPattern: -1)
        else { return nil }
        // Contacts are personal data: left out of any core dump (docs/security.md).
        _ = madvise(page, Self.pageBytes, MADV_DONTDUMP)
        pages.append(page)
        cutting[sizeClass] = (page, size)
        return page
    }

    func deallocate(_ record: UnsafeMutableRawPointer, length: Int) {
        let size = Self.chunkBytes(length)
        guard size <= Self.largestChunk else {
            oversized.remove(record)
            oversizedBytes -= size
            record.deallocate()
            return
        }
        record.storeBytes(of: free[size >> 3], as: UnsafeMutableRawPointer?.self)
        free[size >> 3] = record
    }

    deinit {
        for page in pages { munmap(page, Self.pageBytes) }
        for record in oversized { record.deallocate() }
    }
}
