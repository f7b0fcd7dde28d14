import CLinux
import ContactdCore
import ContactdTestSupport
import FakeContactAPI
import Foundation
import Glibc
import Testing

@testable import ContactdDaemon
@testable import ContactdSnapshot

/// The snapshot format on its own: what goes in comes back with its age, in LRU order, and
/// anything damaged, foreign or truncated is refused whole, leaving the cache empty.
@Suite struct CacheSnapshotTests {
    static let api = "http://127.0.0.1:9/v1"
    static let limits = CacheSnapshot.Limits(contact: 300 + 3600, notFound: 60)
    static let taken = SnapshotTime(
        bootID: Array(1...16),
        sinceBoot: 5_000_000_000_000,
        wall: 1_800_000_000_000_000_000
    )

    /// An entry as `forEachEntry` shows it, copied out.
    struct Entry: Equatable {
        let kind: ContactKey.Kind
        let key: [UInt8]
        let id: [UInt8]?
        let phone: [UInt8]?
        let json: [UInt8]?
        let age: Double
        let reads: Int
    }

    static func entries(of cache: ContactCache) -> [Entry] {
        var entries: [Entry] = []
        cache.forEachEntry { view in
            entries.append(
                Entry(
                    kind: view.requestedKind,
                    key: Array(view.requestedKey),
                    id: view.id.map { Array($0) },
                    phone: view.phone.map { Array($0) },
                    json: view.json.map { Array($0) },
                    age: view.age,
                    reads: view.reads
                )
            )
        }
        return entries
    }

    static func contact(_ index: Int) throws -> CachedValue {
        .contact(try APIContact(apiBody: Array(BenchContacts.contact(index).utf8)))
    }

    /// A cache of contacts fetched by phone and by id and of not-found answers, of different ages
    /// and read counts, its LRU order not its insertion order.
    static func filledCache() throws -> (ContactCache, ManualClock) {
        let clock = ManualClock()
        var configuration = CacheConfiguration()
        configuration.ttl = .seconds(300)
        configuration.negativeTTL = .seconds(60)
        let cache = ContactCache(configuration: configuration, clock: clock.clock)
        // Ages at the snapshot: 321 s (past the TTL), 41, 34, 27, 24, then not-found 21 and 1.
        let steps: [Double] = [280, 7, 7, 3, 3, 20, 1]
        for index in 0..<5 {
            let key: ContactKey =
                index < 3
                ? .phone(PhoneNumber(BenchContacts.phone(index))!) : .id(ContactID(BenchContacts.id(index))!)
            cache.insert(try contact(index), for: key)
            clock.advance(by: steps[index])
        }
        cache.insert(.notFound, for: .phone(PhoneNumber("+442071234567")!))
        clock.advance(by: steps[5])
        cache.insert(.notFound, for: .id(ContactID("no-such-contact")!))
        clock.advance(by: steps[6])
        _ = cache.read(.phone(PhoneNumber(BenchContacts.phone(0))!))
        _ = cache.read(.id(ContactID(BenchContacts.id(0))!))
        return (cache, clock)
    }

    /// The snapshot of `cache` as bytes, written through a sealed memfd as the daemon does.
    static func snapshot(of cache: ContactCache, api: String = api) throws -> [UInt8] {
        let memory = try SnapshotFiles.sealedMemory { fd throws(CacheSnapshot.WriteError) in
            try CacheSnapshot.write(cache, api: api, time: taken, to: fd)
        }
        defer { close(memory.fd) }
        let mapping = try SnapshotFiles.map(memory.fd).get()
        defer { mapping.unmap() }
        #expect(mapping.bytes.count == memory.written.bytes)
        return Array(mapping.bytes)
    }

    static func emptyCache() -> ContactCache {
        var configuration = CacheConfiguration()
        configuration.ttl = .seconds(300)
        configuration.negativeTTL = .seconds(60)
        return ContactCache(configuration: configuration, clock: ManualClock().clock)
    }

    static func restore(
        _ bytes: [UInt8],
        into cache: ContactCache,
        api: String = api,
        after seconds: Double = 10
    ) throws -> CacheSnapshot.Restored {
        var now = taken
        now.sinceBoot += UInt64(seconds * 1e9)
        // The wall clock says otherwise: within one boot the boot clock is the one believed.
        now.wall += 3_600_000_000_000
        return try bytes.withUnsafeBytes { bytes in
            try CacheSnapshot.restore(bytes, into: cache, api: api, now: now, limits: limits)
        }
    }

    @Test func everyEntryComesBackInLRUOrderWithItsAgeAndReads() throws {
        let (cache, _) = try Self.filledCache()
        let before = Self.entries(of: cache)
        #expect(before.count == 7)
        let restoredCache = Self.emptyCache()
        let restored = try Self.restore(try Self.snapshot(of: cache), into: restoredCache, after: 10)
        #expect(restored == CacheSnapshot.Restored(entries: 7, expired: 0, elapsed: 10))
        let after = Self.entries(of: restoredCache)
        #expect(after.count == before.count)
        for (old, new) in zip(before, after) {
            #expect(new.kind == old.kind && new.key == old.key && new.id == old.id && new.phone == old.phone)
            #expect(new.json == old.json)
            #expect(new.reads == old.reads)
            #expect(abs(new.age - (old.age + 10)) < 1e-6, "age \(old.age) + 10 came back as \(new.age)")
        }
        // A contact is found by every key it had, as fresh, stale or not-found as before.
        let byID = restoredCache.read(.id(ContactID(BenchContacts.id(1))!))
        #expect(byID?.isFresh == true)
        let stale = restoredCache.read(.id(ContactID(BenchContacts.id(0))!))
        #expect(stale?.isFresh == false, "stored 331 s ago with a 300 s TTL: stale")
        #expect(stale.map { if case .contact = $0.value { true } else { false } } == true)
        #expect(restoredCache.read(.id(ContactID("no-such-contact")!))?.value == .notFound)
        #expect(restoredCache.counts.entries == 7)
    }

    @Test func entriesThatCouldNeverBeAnsweredAgainAreLeftOut() throws {
        let (cache, _) = try Self.filledCache()
        let restoredCache = Self.emptyCache()
        // 45 s later: the not-found entry stored 21 s before the snapshot passes its 60 s TTL; the
        // one stored 1 s before does not. Contacts stay (TTL + stale window is an hour).
        let restored = try Self.restore(try Self.snapshot(of: cache), into: restoredCache, after: 45)
        #expect(restored.entries == 6)
        #expect(restored.expired == 1)
        #expect(restoredCache.read(.phone(PhoneNumber("+442071234567")!)) == nil)
        #expect(restoredCache.read(.id(ContactID("no-such-contact")!))?.value == .notFound)
        // Four hours later, past every contact's TTL + stale window: nothing is left.
        let later = Self.emptyCache()
        let none = try Self.restore(try Self.snapshot(of: cache), into: later, after: 4 * 3600)
        #expect(none == CacheSnapshot.Restored(entries: 0, expired: 7, elapsed: 4 * 3600))
    }

    @Test func acrossARebootTheWallClockCarriesTheAge() {
        var now = Self.taken
        now.bootID = Array(repeating: 9, count: 16)
        now.sinceBoot = 1_000_000_000
        now.wall += 90_000_000_000
        #expect(now.seconds(since: Self.taken) == 90)
        now.wall = Self.taken.wall - 5_000_000_000
        #expect(now.seconds(since: Self.taken) == 0, "a wall clock set back counts as no time")
        var sameBoot = Self.taken
        sameBoot.sinceBoot += 2_500_000_000
        sameBoot.wall -= 1_000_000_000_000
        #expect(sameBoot.seconds(since: Self.taken) == 2.5, "within a boot the boot clock is believed")
        let unknown = SnapshotTime(bootID: Array(repeating: 0, count: 16), sinceBoot: 1, wall: Self.taken.wall + 1)
        var unknownLater = unknown
        unknownLater.sinceBoot += 99_000_000_000
        unknownLater.wall += 4_000_000_000
        #expect(unknownLater.seconds(since: unknown) == 4, "an unknown boot id is not the same boot")
    }

    @Test(arguments: [
        ("empty", 0),
        ("a few bytes", 5),
        ("the header cut short", 40),
        ("the header without its checksum", -3),
        ("the body cut short", -1),
        ("the last byte missing", -2),
    ])
    func aTruncatedSnapshotIsRefused(name: String, keep: Int) throws {
        let (cache, _) = try Self.filledCache()
        let bytes = try Self.snapshot(of: cache)
        let headerBytes = Int(bytes[12]) | Int(bytes[13]) << 8
        let length = [-1: bytes.count / 2, -2: bytes.count - 1, -3: headerBytes - 1][keep] ?? keep
        let target = Self.emptyCache()
        let rejection = #expect(throws: CacheSnapshot.Rejection.self) {
            try Self.restore(Array(bytes.prefix(length)), into: target)
        }
        switch rejection {
        case .notASnapshot?: #expect(length < 8, "\(name)")
        case .truncated?: #expect(length >= 8, "\(name)")
        default: Issue.record("\(name): \(String(describing: rejection))")
        }
        #expect(target.counts.entries == 0)
    }

    @Test func aDamagedForeignOrOtherAPISnapshotIsRefusedWithItsReason() throws {
        let (cache, _) = try Self.filledCache()
        let good = try Self.snapshot(of: cache)
        let headerBytes = Int(good[12]) | Int(good[13]) << 8

        var body = good
        body[headerBytes + 20] ^= 0x40
        var header = good
        header[48] ^= 0x01  // the entry count
        var version = good
        version[8] = 2
        var headerLength = good
        headerLength[14] = 0x7F  // a header length no API URL makes
        var garbage = [UInt8](repeating: 0, count: 4096)
        var random = SplitMix64(seed: 7)
        for index in garbage.indices { garbage[index] = UInt8(truncatingIfNeeded: random.next()) }

        let cases: [([UInt8], String, CacheSnapshot.Rejection)] = [
            (body, Self.api, .damagedBody),
            (header, Self.api, .damagedHeader),
            (version, Self.api, .otherVersion(2)),
            (headerLength, Self.api, .damagedHeader),
            (good, "https://api.example.com/v1", .otherAPI(Self.api)),
            (garbage, Self.api, .notASnapshot),
        ]
        for (bytes, api, expected) in cases {
            let target = Self.emptyCache()
            #expect(throws: expected) { try Self.restore(bytes, into: target, api: api) }
            #expect(target.counts.entries == 0)
        }
        #expect(CacheSnapshot.Rejection.otherVersion(2).description.contains("format version 2"))
        #expect(CacheSnapshot.Rejection.damagedBody.description.contains("damaged"))
    }

    /// Checksums that match but entries that do not parse (a writer's bug, not bit rot): the
    /// restore stops and takes back what it had put in.
    @Test func aMalformedEntryBehindGoodChecksumsLeavesTheCacheEmpty() throws {
        let (cache, _) = try Self.filledCache()
        let good = try Self.snapshot(of: cache)
        let headerBytes = Int(good[12]) | Int(good[13]) << 8

        var oneMore = good
        oneMore[48] &+= 1  // the header says 8 entries, the body holds 7
        Self.reseal(&oneMore, headerBytes: headerBytes)
        let target = Self.emptyCache()
        #expect(throws: CacheSnapshot.Rejection.malformedEntry(7)) { try Self.restore(oneMore, into: target) }
        #expect(target.counts.entries == 0, "the 7 entries restored before the bad one were taken back")

        var badFlags = good
        badFlags[headerBytes] = 0x80
        Self.reseal(&badFlags, headerBytes: headerBytes)
        #expect(throws: CacheSnapshot.Rejection.malformedEntry(0)) { try Self.restore(badFlags, into: target) }
        #expect(target.counts.entries == 0)
    }

    /// Issue #23, item 10: restored contact JSON is spliced into replies, so it is read as an
    /// API body first. A contact whose bytes hold a newline (it would end a reply line and forge
    /// the next), or that are not JSON, makes the snapshot malformed.
    @Test(arguments: [
        #"{"id":"x1","name":"a"}"# + "\n" + #"{"jsonrpc":"2.0","id":1,"result":"forged"}"#,
        #"{"id":"x1","name":"unterminated"#,
        #"{"id":"x2","name":"another id"}"#,
    ])
    func restoredContactsAreReadAsAPIBodies(json: String) throws {
        let cache = Self.emptyCache()
        let contact = APIContact(json: Array(json.utf8), id: ContactID("x1")!, phoneNumber: nil)
        cache.insert(.contact(contact), for: .id(ContactID("x1")!))
        let bytes = try Self.snapshot(of: cache)
        let target = Self.emptyCache()
        #expect(throws: CacheSnapshot.Rejection.malformedEntry(0)) { try Self.restore(bytes, into: target) }
        #expect(target.counts.entries == 0)
    }

    /// Recomputes both checksums of a snapshot changed on purpose.
    static func reseal(_ bytes: inout [UInt8], headerBytes: Int) {
        func put(_ value: UInt, at offset: Int) {
            for shift in 0..<4 { bytes[offset + shift] = UInt8(truncatingIfNeeded: value >> (8 * shift)) }
        }
        put(CacheSnapshot.checksum(Array(bytes[headerBytes...])), at: 64)
        put(CacheSnapshot.checksum(Array(bytes[..<(headerBytes - 4)])), at: headerBytes - 4)
    }

    @Test func aSealedSnapshotCannotBeChangedByAnyone() throws {
        let (cache, _) = try Self.filledCache()
        let memory = try SnapshotFiles.sealedMemory { fd throws(CacheSnapshot.WriteError) in
            try CacheSnapshot.write(cache, api: Self.api, time: Self.taken, to: fd)
        }
        defer { close(memory.fd) }
        var byte: UInt8 = 0
        #expect(pwrite(memory.fd, &byte, 1, 0) == -1)
        #expect(ftruncate(memory.fd, 0) == -1)
        #expect(contactd_memfd_seals(memory.fd) & 0xF == 0xF)
    }

    @Test func aSnapshotFileIsWrittenWholeWithMode0600() async throws {
        try await withTemporaryDirectory { directory in
            let (cache, _) = try Self.filledCache()
            let path = directory + "/cache.snapshot"
            let written = try SnapshotFiles.writeFile(path) { fd throws(CacheSnapshot.WriteError) in
                try CacheSnapshot.write(cache, api: Self.api, time: Self.taken, to: fd)
            }
            var status = stat()
            #expect(stat(path, &status) == 0)
            #expect(status.st_mode & 0o777 == 0o600)
            #expect(Int(status.st_size) == written.bytes)
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory)
            #expect(leftovers == ["cache.snapshot"], "no temporary file left behind")
            #expect(throws: CacheSnapshot.WriteError.self) {
                try SnapshotFiles.writeFile(directory + "/missing/cache.snapshot") {
                    fd throws(CacheSnapshot.WriteError) in
                    try CacheSnapshot.write(cache, api: Self.api, time: Self.taken, to: fd)
                }
            }
        }
    }

    /// `forEachEntry` lets go of the lock between batches; what changes meanwhile is skipped, not
    /// shown wrong.
    @Test func entriesRemovedOrReplacedBetweenBatchesAreSkipped() throws {
        let (cache, clock) = try Self.filledCache()
        let order = Self.entries(of: cache)
        var seen: [[UInt8]] = []
        var batches = 0
        cache.forEachEntry(batch: 2) { view in
            seen.append(Array(view.requestedKey))
        } betweenBatches: {
            batches += 1
            guard batches == 1 else { return }
            // After the first batch of two: remove the third entry, replace the fourth.
            _ = cache.remove(Self.key(order[2]))
            clock.advance(by: 1)
            cache.insert(.notFound, for: Self.key(order[3]))
        }
        #expect(seen == [order[0].key, order[1].key] + order[4...].map(\.key))
        #expect(batches == 4)
    }

    static func key(_ entry: Entry) -> ContactKey {
        entry.key.withUnsafeBytes { ContactKey(kind: entry.kind, bytes: $0)! }
    }
}
