import CLinux
import CZlib
import ContactdCore
import Glibc
import PlainErrors

/// The cache written out for a warm restart, and read back.
///
/// Layout, little-endian (docs/operations.md, "Warm restart"):
///
///     header  "CONTACTD", format version (u32), header length (u32), boot id (16 bytes),
///             CLOCK_BOOTTIME and CLOCK_REALTIME at the snapshot (ns, u64 and i64), entries (u64),
///             body length (u64), body CRC-32 (u32), API URL (u16 length + UTF-8),
///             header CRC-32 (u32) over all of the above
///     body    the entries, least recently used first, each:
///             flags (u8: 1 contact, 2 has a phone number, 4 the key asked for is a phone number),
///             the key asked for (u8 length + bytes), age in seconds (f64), reads (u32), and for a
///             contact its id (u8 length + bytes), its phone number if it has one (the same), and
///             its compact JSON (u32 length + bytes)
///
/// A reader of another format version ignores the snapshot: bump `version` whenever this layout
/// changes. Ages are the entries' ages when the snapshot was taken; on restore the time since
/// then is added (the boot clock when it is the same boot, the wall clock across a reboot).
package enum CacheSnapshot {
    static let magic = Array("CONTACTD".utf8)
    static let version: UInt32 = 1

    /// Bytes of the header before the API URL.
    private static let fixedHeaderBytes = 70

    /// Entry flags.
    private static let isContact: UInt8 = 1
    private static let hasPhone: UInt8 = 2
    private static let requestedIsPhone: UInt8 = 4

    /// How old an entry may be and still be restored: past these it could never be answered again.
    package struct Limits: Sendable {
        /// A contact: its TTL plus the longer of the stale windows.
        var contact: Double
        /// A not-found entry: its TTL (they are never answered stale).
        var notFound: Double

        package init(contact: Double, notFound: Double) {
            self.contact = contact
            self.notFound = notFound
        }
    }

    /// What a restore did.
    struct Restored: Sendable, Equatable {
        /// Entries put back in the cache.
        var entries = 0
        /// Entries left out because they had expired.
        var expired = 0
        /// Seconds between the snapshot and the restore.
        var elapsed = 0.0
    }

    /// What a write did.
    struct Written: Sendable, Equatable {
        var entries = 0
        var bytes = 0
    }

    /// Why a snapshot was not restored, in the words of the one log line that says so.
    enum Rejection: Error, Equatable, CustomStringConvertible {
        case notASnapshot
        case otherVersion(UInt32)
        case damagedHeader
        case otherAPI(String)
        case truncated(expected: Int, found: Int)
        case damagedBody
        case malformedEntry(Int)

        var description: String {
            switch self {
            case .notASnapshot: "it is not a contactd cache snapshot"
            case .otherVersion(let version):
                "it is in format version \(version), and this contactd reads version \(CacheSnapshot.version)"
            case .damagedHeader: "its header fails its checksum (the snapshot is damaged)"
            case .otherAPI(let url): "it was taken for another API (\(url))"
            case .truncated(let expected, let found):
                "it is truncated (\(found) bytes, at least \(expected) expected)"
            case .damagedBody: "its entries fail their checksum (the snapshot is damaged)"
            case .malformedEntry(let index): "entry \(index + 1) is malformed"
            }
        }
    }

    /// Why a snapshot could not be written.
    struct WriteError: Error, CustomStringConvertible {
        let description: String
    }

    /// Why a snapshot file could not be opened or mapped to be read.
    struct ReadError: Error, CustomStringConvertible {
        let description: String
    }

    // MARK: Writing

    /// Writes every entry of `cache` to `fd` (an empty file or memfd), least recently used first.
    ///
    /// The cache is read a batch at a time (`ContactCache.forEachEntry`); each batch is written
    /// with the lock released.
    static func write(
        _ cache: ContactCache,
        api: String,
        time: SnapshotTime,
        to fd: Int32
    ) throws(WriteError) -> Written {
        let apiBytes = Array(api.utf8.prefix(Int(UInt16.max)))
        let headerBytes = fixedHeaderBytes + apiBytes.count + 4
        var output = Output(fd: fd, offset: headerBytes)
        var entries = 0
        var failure: WriteError?
        cache.forEachEntry { entry in
            output.append(entry)
            entries += 1
        } betweenBatches: {
            if failure == nil { failure = output.flush() }
        }
        if failure == nil { failure = output.flush() }
        if let failure { throw failure }

        var header: [UInt8] = []
        header.reserveCapacity(headerBytes)
        header += magic
        header.appendLittleEndian(version)
        header.appendLittleEndian(UInt32(headerBytes))
        header += time.bootID
        header.appendLittleEndian(time.sinceBoot)
        header.appendLittleEndian(time.wall)
        header.appendLittleEndian(UInt64(entries))
        header.appendLittleEndian(UInt64(output.bodyBytes))
        header.appendLittleEndian(UInt32(truncatingIfNeeded: output.crc))
        header.appendLittleEndian(UInt16(apiBytes.count))
        header += apiBytes
        header.appendLittleEndian(UInt32(truncatingIfNeeded: checksum(header)))
        if let failure = writeAll(header, to: fd, at: 0) { throw failure }
        return Written(entries: entries, bytes: headerBytes + output.bodyBytes)
    }

    /// The body as it is written: a buffer of about one batch, its CRC and where it goes next.
    private struct Output {
        let fd: Int32
        var offset: Int
        var buffer: [UInt8] = []
        var crc: UInt = crc32(0, nil, 0)
        var bodyBytes = 0

        init(fd: Int32, offset: Int) {
            self.fd = fd
            self.offset = offset
            buffer.reserveCapacity(4 << 20)
        }

        mutating func append(_ entry: CacheEntryView) {
            var flags: UInt8 = 0
            if entry.json != nil { flags |= CacheSnapshot.isContact }
            if entry.phone != nil { flags |= CacheSnapshot.hasPhone }
            if entry.requestedKind == .phone { flags |= CacheSnapshot.requestedIsPhone }
            buffer.append(flags)
            appendShort(entry.requestedKey)
            buffer.appendLittleEndian(entry.age.bitPattern)
            buffer.appendLittleEndian(UInt32(clamping: entry.reads))
            guard let json = entry.json, let id = entry.id else { return }
            appendShort(id)
            if let phone = entry.phone { appendShort(phone) }
            buffer.appendLittleEndian(UInt32(json.count))
            buffer.append(contentsOf: json)
        }

        /// A key: one length byte (keys are at most 128 bytes) and its bytes.
        private mutating func appendShort(_ bytes: UnsafeRawBufferPointer) {
            buffer.append(UInt8(truncatingIfNeeded: bytes.count))
            buffer.append(contentsOf: bytes)
        }

        mutating func flush() -> WriteError? {
            guard !buffer.isEmpty else { return nil }
            crc = CacheSnapshot.checksum(buffer, continuing: crc)
            if let failure = CacheSnapshot.writeAll(buffer, to: fd, at: offset) { return failure }
            offset += buffer.count
            bodyBytes += buffer.count
            buffer.removeAll(keepingCapacity: true)
            return nil
        }
    }

    private static func writeAll(_ bytes: [UInt8], to fd: Int32, at start: Int) -> WriteError? {
        bytes.withUnsafeBytes { writeAll($0, to: fd, at: start) }
    }

    /// Writes all of `bytes` to `fd` at offset `start`.
    static func writeAll(_ bytes: UnsafeRawBufferPointer, to fd: Int32, at start: Int) -> WriteError? {
        var done = 0
        while done < bytes.count {
            let written = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(start + done))
            if written < 0 {
                if errno == EINTR { continue }
                return WriteError(description: "could not write the snapshot: \(ErrnoText.plain(errno))")
            }
            done += written
        }
        return nil
    }

    // MARK: Reading

    /// Restores the entries of the snapshot in `bytes` into `cache` (empty, not yet serving), each
    /// with its age plus the time since the snapshot; entries older than `limits` are left out.
    ///
    /// All or nothing: a snapshot that turns out to be malformed part-way leaves the cache empty.
    static func restore(
        _ bytes: UnsafeRawBufferPointer,
        into cache: ContactCache,
        api: String,
        now: SnapshotTime,
        limits: Limits
    ) throws(Rejection) -> Restored {
        var header = Reader(bytes)
        guard header.bytes(magic.count).elementsEqual(magic) else { throw .notASnapshot }
        let formatVersion = header.uint32()
        let headerBytes = Int(header.uint32())
        guard !header.failed else { throw .truncated(expected: fixedHeaderBytes + 4, found: bytes.count) }
        // The version is read before anything else is trusted: every version keeps it here.
        guard formatVersion == version else { throw .otherVersion(formatVersion) }
        // An API URL is at most 65,535 bytes: a longer header is damaged, not truncated.
        guard headerBytes >= fixedHeaderBytes + 4, headerBytes <= fixedHeaderBytes + 4 + Int(UInt16.max) else {
            throw .damagedHeader
        }
        guard headerBytes <= bytes.count else { throw .truncated(expected: headerBytes, found: bytes.count) }
        var storedHeaderCRC = Reader(UnsafeRawBufferPointer(rebasing: bytes[(headerBytes - 4)...]))
        guard checksum(UnsafeRawBufferPointer(rebasing: bytes[..<(headerBytes - 4)])) == UInt(storedHeaderCRC.uint32())
        else { throw .damagedHeader }
        let taken = SnapshotTime(bootID: Array(header.bytes(16)), sinceBoot: header.uint64(), wall: header.int64())
        let entries = Int(clamping: header.uint64())
        let bodyBytes = Int(clamping: header.uint64())
        let bodyCRC = UInt(header.uint32())
        let apiLength = Int(header.uint16())
        guard fixedHeaderBytes + apiLength + 4 == headerBytes else { throw .damagedHeader }
        let takenFor = String(decoding: header.bytes(apiLength), as: UTF8.self)
        guard takenFor == api else { throw .otherAPI(takenFor) }
        guard bytes.count - headerBytes == bodyBytes else {
            throw .truncated(expected: headerBytes + bodyBytes, found: bytes.count)
        }
        let body = UnsafeRawBufferPointer(rebasing: bytes[headerBytes...])
        guard checksum(body) == bodyCRC else { throw .damagedBody }

        var restored = Restored(elapsed: now.seconds(since: taken))
        var reader = Reader(body)
        for index in 0..<entries {
            guard let entry = reader.entry() else {
                _ = cache.removeAll()
                throw .malformedEntry(index)
            }
            let age = entry.age + restored.elapsed
            let limit: Double
            switch entry.value {
            case .contact: limit = limits.contact
            case .notFound: limit = limits.notFound
            }
            guard age < limit else {
                restored.expired += 1
                continue
            }
            cache.insert(entry.value, for: entry.key, age: age, reads: entry.reads, restored: true)
            restored.entries += 1
        }
        guard reader.isAtEnd else {
            _ = cache.removeAll()
            throw .malformedEntry(entries)
        }
        return restored
    }

    /// Bounds-checked little-endian reads; a read past the end gives zeros and marks it failed.
    private struct Reader {
        let data: UnsafeRawBufferPointer
        var offset = 0
        var failed = false

        init(_ data: UnsafeRawBufferPointer) { self.data = data }

        var isAtEnd: Bool { !failed && offset == data.count }

        mutating func bytes(_ count: Int) -> UnsafeRawBufferPointer {
            guard !failed, count >= 0, count <= data.count - offset else {
                failed = true
                return UnsafeRawBufferPointer(start: nil, count: 0)
            }
            defer { offset += count }
            return UnsafeRawBufferPointer(rebasing: data[offset..<offset + count])
        }

        private mutating func integer<T: FixedWidthInteger>(_: T.Type) -> T {
            let raw = bytes(MemoryLayout<T>.size)
            guard raw.count == MemoryLayout<T>.size else { return 0 }
            return T(littleEndian: raw.loadUnaligned(as: T.self))
        }

        mutating func uint16() -> UInt16 { integer(UInt16.self) }
        mutating func uint32() -> UInt32 { integer(UInt32.self) }
        mutating func uint64() -> UInt64 { integer(UInt64.self) }
        mutating func int64() -> Int64 { integer(Int64.self) }
        mutating func short() -> UnsafeRawBufferPointer { bytes(Int(integer(UInt8.self))) }

        /// The next entry, or `nil` if it is malformed.
        mutating func entry() -> (key: ContactKey, value: CachedValue, age: Double, reads: Int)? {
            let flags = integer(UInt8.self)
            let requested = short()
            let age = Double(bitPattern: uint64())
            let reads = Int(uint32())
            guard !failed, age.isFinite, age >= 0, flags & ~0b111 == 0,
                let key = ContactKey(kind: flags & CacheSnapshot.requestedIsPhone != 0 ? .phone : .id, bytes: requested)
            else { return nil }
            guard flags & CacheSnapshot.isContact != 0 else {
                return flags == 0 || flags == CacheSnapshot.requestedIsPhone ? (key, .notFound, age, reads) : nil
            }
            let id = short()
            let phone = flags & CacheSnapshot.hasPhone != 0 ? short() : nil
            let json = bytes(Int(uint32()))
            guard !failed, !json.isEmpty,
                case .id(let contactID)? = ContactKey(kind: .id, bytes: id)
            else { return nil }
            var phoneNumber: PhoneNumber?
            if let phone {
                guard case .phone(let number)? = ContactKey(kind: .phone, bytes: phone) else { return nil }
                phoneNumber = number
            }
            // Read as an API body, as if the API had sent it: its bytes are spliced into replies,
            // so a snapshot could otherwise forge them (a newline in them ends a reply line).
            guard let contact = try? APIContact(apiBody: json), contact.id == contactID,
                contact.phoneNumber == phoneNumber, contact.json.elementsEqual(json)
            else { return nil }
            return (key, .contact(contact), age, reads)
        }
    }

    // MARK: Checksums

    /// zlib's CRC-32 of `bytes`, continuing `crc`.
    static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt = crc32(0, nil, 0)) -> UInt {
        guard let base = bytes.baseAddress else { return crc }
        return crc32_z(crc, base.assumingMemoryBound(to: UInt8.self), bytes.count)
    }

    static func checksum(_ bytes: [UInt8], continuing crc: UInt = crc32(0, nil, 0)) -> UInt {
        bytes.withUnsafeBytes { checksum($0, continuing: crc) }
    }
}

extension [UInt8] {
    fileprivate mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }
}
