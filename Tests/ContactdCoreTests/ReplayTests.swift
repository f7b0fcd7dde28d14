import ContactdCore
import ContactdReplay
import ContactdTestSupport
import Foundation
import Testing

/// The replay tool's parts (issue #24, item 1): trace formats, LRU and Belady's optimum against
/// hand-computed traces, and properties every policy must have on random ones.
@Suite struct ReplayTests {
    // MARK: Traces

    @Test func cache2kKeysAreBigEndianSigned32Bit() throws {
        let bytes: [UInt8] = [0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF]
        let keys = try Trace.parse(bytes, format: .cache2k)
        #expect(keys == [1, UInt64(bitPattern: -1), 0x7FFF_FFFF])
    }

    @Test func scarabKeysAreBigEndian64Bit() throws {
        let bytes: [UInt8] = [0, 0, 0, 0, 0, 0, 1, 0, 0x80, 0, 0, 0, 0, 0, 0, 2]
        #expect(try Trace.parse(bytes, format: .scarab) == [256, 0x8000_0000_0000_0002])
    }

    @Test func linesNumberEachDistinctLine() throws {
        let keys = try Trace.parse(Array("+14155551234\nc-7\n+14155551234\n".utf8), format: .lines)
        #expect(keys == [0, 1, 0])
    }

    @Test func aTruncatedBinaryTraceIsRefused() {
        #expect(throws: Trace.ReadError.self) { try Trace.parse([0, 0, 1], format: .cache2k) }
        #expect(throws: Trace.ReadError.self) { try Trace.parse([0, 0, 0, 0], format: .scarab) }
    }

    @Test func aMissingFileNamesItself() {
        #expect {
            try Trace.read(path: "/nonexistent/web99.trace.xz", format: .cache2k)
        } throws: { error in
            (error as? Trace.ReadError)?.description.contains("/nonexistent/web99.trace.xz") == true
        }
    }

    @Test func theBundledTraceReadsAsItsREADMESays() async throws {
        await Task.yield()
        let trace = try Trace.read(path: Self.web07, format: .cache2k)
        #expect(trace.name == "web07")
        #expect(trace.keys.count == 76_118)
        #expect(trace.distinctKeys == 20_484)
    }

    // MARK: Hand-computed

    /// 1 2 3 1 4 1 2 through two entries: LRU misses all but the second 1 (3 pushes 1 out, 1
    /// pushes 2 out, 4 pushes 3 out, then 1 is there and 2 is not).
    @Test func lruOnAHandComputedTrace() {
        #expect(Replay.hits([1, 2, 3, 1, 4, 1, 2], through: LRUPolicy(capacity: 2)) == 1)
        #expect(Replay.hits([1, 1, 1], through: LRUPolicy(capacity: 1)) == 2)
        #expect(Replay.hits([1, 2, 1, 2], through: LRUPolicy(capacity: 1)) == 0)
        #expect(Replay.hits([1, 2], through: LRUPolicy(capacity: 0)) == 0)
    }

    /// The same trace, knowing the future: 3 and 4 are never asked again, so the optimum keeps 1
    /// and 2 throughout and hits 1, 1 and 2.
    @Test func beladyOnHandComputedTraces() {
        #expect(Belady.hits([1, 2, 3, 1, 4, 1, 2], capacity: 2) == 3)
        // One entry, 1 2 1 2 1: keeping 1 hits twice; no choice does better.
        #expect(Belady.hits([1, 2, 1, 2, 1], capacity: 1) == 2)
        // 1 2 3 2 1 3 with two: at 3 evict 1 (next at 4) rather than 2 (next at 3): hit 2; at 1
        // (a miss) keep 3 and 1, evicting 2 (never again): hit 3. Two hits.
        #expect(Belady.hits([1, 2, 3, 2, 1, 3], capacity: 2) == 2)
        #expect(Belady.hits([1, 2, 3], capacity: 0) == 0)
    }

    @Test func capacityIsAShareOfTheDistinctKeys() {
        #expect(Replay.capacity(fraction: 0.01, distinctKeys: 20_484) == 205)
        #expect(Replay.capacity(fraction: 0.001, distinctKeys: 100) == 1)
    }

    /// A scanning client's keys are asked for and never counted: only the trace's own hits are.
    @Test func mixedScanKeysAreNotCounted() {
        // Every trace access is followed by a one-time key: with one entry, nothing stays.
        #expect(Replay.hits([1, 1, 1], through: LRUPolicy(capacity: 1), mixScan: 1) == 0)
        #expect(Replay.hits([1, 1, 1], through: LRUPolicy(capacity: 2), mixScan: 1) == 2)
    }

    // MARK: Properties on random traces

    /// No policy beats the optimum (contactd's own cache included), and every policy's hit count
    /// is the same on a second replay.
    @Test func noPolicyBeatsTheOptimum() async {
        var random = SplitMix64(seed: 24)
        for round in 0..<60 {
            await Task.yield()
            let keys = 1 + random.next(200)
            let trace = (0..<(500 + random.next(1500))).map { _ in
                // Skewed: small keys far more often, as real traces are.
                UInt64(random.next(1 + random.next(keys)))
            }
            let capacity = random.next(60)
            let optimum = Belady.hits(trace, capacity: capacity)
            for name in PolicyName.allCases {
                let hits = Replay.hits(trace, through: name.make(capacity: capacity))
                #expect(hits <= optimum, "round \(round): \(name.rawValue) \(hits) > optimum \(optimum)")
                #expect(hits == Replay.hits(trace, through: name.make(capacity: capacity)))
            }
        }
    }

    /// A cache that can hold every key misses each key once and hits the rest, whatever its policy.
    @Test func aCacheAsBigAsTheTraceMissesOnlyFirstAccesses() {
        var random = SplitMix64(seed: 7)
        let trace = (0..<3000).map { _ in UInt64(random.next(300)) }
        let distinct = Set(trace).count
        for name in PolicyName.allCases {
            #expect(Replay.hits(trace, through: name.make(capacity: distinct)) == trace.count - distinct, "\(name)")
        }
        #expect(Belady.hits(trace, capacity: distinct) == trace.count - distinct)
    }

    static let web07 = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Traces/web07.trace.xz").path
}
