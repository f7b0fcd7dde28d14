import ContactdCore
import ContactdDaemon
import ContactdJSON
import ContactdProtocol
import ContactdTestSupport
import Logging
import NIOCore
import Testing

/// The hand-written `contact.get` scanner must answer exactly as the full JSON-RPC path does.
@Suite struct FastPathAgreementTests {
    struct NoSource: ContactSource {
        func fetch(_ key: ContactKey, timeout: Double) async throws(LookupError) -> Contact { throw .notFound }
    }

    /// A dispatcher whose cache holds John (by phone and id) and a not-found entry.
    func makeDispatcher() throws -> RequestDispatcher {
        let clock = ManualClock()
        let cache = ContactCache(configuration: CacheConfiguration(), clock: clock.clock)
        let john = try Contact(apiBody: Array(DemoContactsForTests.john.utf8))
        cache.insert(.contact(john), for: .phone(PhoneNumber("+14155551234")!))
        cache.insert(.notFound, for: .phone(PhoneNumber("+15550000000")!))
        clock.advance(by: 3)
        let lookup = ContactLookup(cache: cache, source: NoSource(), clock: clock.clock)
        return RequestDispatcher(
            lookup: lookup,
            status: DaemonStatus(),
            logger: Logger(label: "t", factory: { _ in SwiftLogNoOpLogHandler() })
        )
    }

    /// Lines like clients send, and many that are slightly or badly off.
    static func corpus(count: Int) -> [String] {
        var rng = SplitMix64(seed: 0x5EED)
        let ids = [
            "7", "0", "42", "123456789012345", "1234567890123456", "007", "-1", "1.5", "1e3", "2E1", #""abc""#,
            #""a-b:c.d_9""#, #""with space""#, #""esc\nape""#, #""ünï""#, #""""#, "null", "true", "{}", "[1]",
        ]
        let versions = [#""2.0""#, #""2.0""#, #""1.0""#, "2.0", #""2.00""#, #""2\u002e0""#]
        let methods = [
            #""contact.get""#, #""contact.get""#, #""contact.get""#, #""contact.gets""#, #""cache.stats""#,
            #""contact.ge\u0074""#, "7",
        ]
        let phones = [
            #""+14155551234""#, #""+1 (415) 555-1234""#, #""+1.415.555.1234""#, #""+15550000000""#,
            #""+442079460958""#, #""+0123""#, #""12345""#, #""+1415555123456789""#, #""""#, #""+1415abc""#,
            #""+1\u0034155551234""#, "14155551234", "null",
        ]
        let contactIDs = [
            #""c1d2e3f4-5678-9abc-def0-123456789abc""#, #""ok_id-1""#, #""bad id""#,
            "\"" + String(repeating: "x", count: 129) + "\"", "\"" + String(repeating: "y", count: 128) + "\"",
            #""""#, #""ünï""#, "5",
        ]
        let maxAges = ["0", "5", "300", "5.5", "-1", #""5""#, "1e2", "00", "null", "123456789012345678"]
        /// Mostly one of the first `good` values (plain lines), else any (odd ones).
        func pick(_ values: [String], good: Int) -> String {
            rng.next(10) < 7 ? values[rng.next(good)] : values[rng.next(values.count)]
        }
        func ws() -> String { ["", "", "", " ", "  ", "\t", " \r "][rng.next(7)] }
        func member(_ name: String, _ value: String) -> String {
            ws() + "\"\(name)\"" + ws() + ":" + ws() + value + ws()
        }

        var lines: [String] = []
        for _ in 0..<count {
            var params: [String] = []
            switch rng.next(10) {
            case 0: params = []
            case 1:
                params = [member("phone_number", phones[rng.next(phones.count)]), member("contact_id", contactIDs[0])]
            case 2, 3: params = [member("contact_id", pick(contactIDs, good: 2))]
            default: params = [member("phone_number", pick(phones, good: 5))]
            }
            if rng.next(4) == 0 { params.append(member("max_age", pick(maxAges, good: 3))) }
            if rng.next(20) == 0 { params.append(member("extra", "1")) }
            if rng.next(30) == 0 { params.append(params.first ?? member("max_age", "1")) }  // duplicate
            params.shuffle(using: &rng)
            var paramsValue = "{" + params.joined(separator: ",") + "}"
            if rng.next(40) == 0 { paramsValue = ["[]", "null", #""x""#, "{"][rng.next(4)] }

            var members: [String] = []
            if rng.next(5) != 0 { members.append(member("jsonrpc", pick(versions, good: 2))) }
            if rng.next(12) != 0 { members.append(member("id", pick(ids, good: 5))) }
            if rng.next(25) != 0 { members.append(member("method", pick(methods, good: 3))) }
            if rng.next(25) != 0 { members.append(member("params", paramsValue)) }
            if rng.next(30) == 0 { members.append(member("x", "[1,2]")) }
            if rng.next(30) == 0, let first = members.first { members.append(first) }  // duplicate
            members.shuffle(using: &rng)
            var line = ws() + "{" + members.joined(separator: ",") + "}" + ws()
            switch rng.next(25) {
            case 0: line = "[" + line + "]"
            case 1: line.removeLast(min(line.count, 1 + rng.next(5)))
            case 2: line += "}"
            case 3:
                var bytes = Array(line.utf8)
                if !bytes.isEmpty { bytes.remove(at: rng.next(bytes.count)) }
                line = String(decoding: bytes, as: UTF8.self)
            default: break
            }
            lines.append(line)
        }
        return lines
    }

    @Test func scannerAndFullParserGiveTheSameAnswers() throws {
        let dispatcher = try makeDispatcher()
        var accepted = 0
        var hits = 0
        for line in Self.corpus(count: 30_000) {
            let bytes = Array(line.utf8)
            guard
                let request = bytes.withUnsafeBytes({ ContactGetScanner.scan($0) }),
                let key = RequestDispatcher.key(for: request)
            else { continue }
            accepted += 1
            let fast = dispatcher.respond(to: request, key: key)
            guard case .single(let item) = RPCMessage.decode(bytes) else {
                Issue.record("the scanner accepted a line the parser does not take as one request: \(line)")
                continue
            }
            let full = dispatcher.respond(to: item)
            // The hit path writes straight into a connection buffer: same bytes, plus the newline.
            var buffer = ByteBuffer()
            if dispatcher.writeHit(for: request, key: key, appendingTo: &buffer) {
                guard case .reply(let expected?) = full else {
                    Issue.record("writeHit answered a line the full path does not reply to at once: \(line)")
                    continue
                }
                #expect(Array(buffer.readableBytesView) == expected + [0x0A], "different hit bytes for \(line)")
            }
            switch (fast, full) {
            case (.reply(let a), .reply(let b)):
                #expect(a == b, "different replies for \(line)")
                if let a, String(decoding: a, as: UTF8.self).contains(#""status":"hit""#) { hits += 1 }
            case (.fetch(let a), .fetch(let b)):
                #expect(a == b, "different lookups for \(line)")
            default:
                Issue.record("one path fetches, the other replies, for \(line)")
            }
        }
        // The corpus must exercise the fast path, hits included, not only its refusals.
        #expect(accepted > 3000, "only \(accepted) lines took the fast path")
        #expect(hits > 300, "only \(hits) fast-path hits")
    }

    /// Lines in the canonical shape (what contactd's client sends), with the ids and keys of the
    /// corpus, and a byte changed, added or removed in some.
    static func canonicalCorpus(count: Int) -> [String] {
        var rng = SplitMix64(seed: 0xCA40)
        let ids = [
            "7", "0", "42", "123456789012345", "1234567890123456", "007", "-1", "1.5", "1e3", #""abc""#,
            #""a-b:c.d_9""#, #""with space""#, #""esc\nape""#, #""ünï""#, #""""#,
            "\"" + String(repeating: "i", count: 64) + "\"", "\"" + String(repeating: "i", count: 65) + "\"", "null",
        ]
        let keys = [
            #""phone_number":"+14155551234""#, #""phone_number":"+1 (415) 555-1234""#,
            #""phone_number":"+15550000000""#, #""phone_number":"+0123""#, #""phone_number":"""#,
            #""phone_number":"+1415abc""#, #""phone_number":"+1\u0034155551234""#, #""phone_number":14155551234"#,
            #""contact_id":"c1d2e3f4-5678-9abc-def0-123456789abc""#, #""contact_id":"bad id""#,
            #""contact_id":""# + String(repeating: "y", count: 128) + "\"",
            #""contact_id":""# + String(repeating: "y", count: 129) + "\"",
            #""phone_number":"+14155551234","max_age":5"#,
        ]
        var lines: [String] = []
        for _ in 0..<count {
            let line =
                #"{"jsonrpc":"2.0","id":"# + ids[rng.next(ids.count)] + #","method":"contact.get","params":{"#
                + keys[rng.next(keys.count)] + "}}"
            var bytes = Array(line.utf8)
            switch rng.next(6) {
            case 0: bytes.remove(at: rng.next(bytes.count))
            case 1: bytes.insert([0x20, 0x22, 0x7D, 0x2C, 0x30][rng.next(5)], at: rng.next(bytes.count + 1))
            case 2: bytes[rng.next(bytes.count)] = UInt8(truncatingIfNeeded: rng.next(128))
            default: break
            }
            lines.append(String(decoding: bytes, as: UTF8.self))
        }
        return lines
    }

    @Test func theCanonicalShortcutReadsWhatTheFullScannerReads() {
        var taken = 0
        for line in Self.canonicalCorpus(count: 30_000) + Self.corpus(count: 30_000) {
            let bytes = Array(line.utf8)
            let general = bytes.withUnsafeBytes { ContactGetScanner.scanAnyOrder($0) }
            guard let shortcut = bytes.withUnsafeBytes({ ContactGetScanner.scanCanonical($0) }) else { continue }
            taken += 1
            #expect(shortcut == general, "the shortcut reads \(line) differently")
        }
        // The shortcut must be exercised, and must not take everything.
        #expect(taken > 3000, "only \(taken) lines took the shortcut")
        #expect(taken < 50_000)
    }

    /// The fast lane's hit path, from the canonical line's slices, writes what the string path
    /// writes, and leaves to it exactly the lines it must.
    @Test func theRawHitPathWritesWhatTheStringPathWrites() throws {
        let dispatcher = try makeDispatcher()
        var wrote = 0
        var notFound = 0
        var declined = 0
        for line in Self.canonicalCorpus(count: 30_000) {
            let bytes = Array(line.utf8)
            var rawReply = ByteBuffer()
            var rawKey = (isPhoneNumber: false, text: "")
            guard
                let outcome = bytes.withUnsafeBytes({ line -> RequestDispatcher.RawHit? in
                    guard let raw = ContactGetScanner.scanCanonicalRaw(line) else { return nil }
                    rawKey = (raw.isPhoneNumber, String(decoding: raw.key, as: UTF8.self))
                    return dispatcher.writeHit(raw: raw, appendingTo: &rawReply)
                })
            else { continue }
            let request = try #require(bytes.withUnsafeBytes { ContactGetScanner.scanCanonical($0) })
            let key = RequestDispatcher.key(for: request)
            var reply = ByteBuffer()
            let written = key.map { dispatcher.writeHit(for: request, key: $0, appendingTo: &reply) }
            switch outcome {
            case .wrote:
                #expect(written == true, "the raw path answered \(line), the string path does not")
                #expect(rawReply == reply, "different bytes for \(line)")
                if String(buffer: rawReply).contains("not_found") { notFound += 1 } else { wrote += 1 }
            case .notAHit:
                #expect(written == false, "the raw path declined \(line), the string path answers it")
                declined += 1
            case .unusable:
                // Only a number still to normalise, or an empty id, goes the string way.
                if rawKey.isPhoneNumber {
                    #expect(PhoneNumber(rawKey.text)?.e164 != rawKey.text, "\(line)")
                } else {
                    #expect(rawKey.text.isEmpty, "\(line)")
                }
            }
        }
        #expect(wrote > 1000, "only \(wrote) raw hits")
        #expect(notFound > 100, "only \(notFound) raw not-found answers")
        #expect(declined > 100, "only \(declined) lines declined")
    }

    @Test func plainLinesTakeTheFastPath() {
        let lines = [
            #"{"jsonrpc":"2.0","id":1,"method":"contact.get","params":{"phone_number":"+14155551234"}}"#,
            #"{ "method" : "contact.get", "params" : { "contact_id" : "abc-1", "max_age" : 30 }, "id" : "r-9" }"#,
        ]
        for line in lines {
            #expect(Array(line.utf8).withUnsafeBytes { ContactGetScanner.scan($0) } != nil, "\(line)")
        }
        let notPlain = [
            #"{"jsonrpc":"2.0","method":"contact.get","params":{"phone_number":"+14155551234"}}"#,  // notification
            #"{"id":1,"method":"contact.get","params":{"phone_number":"+1415555\u00312"}}"#,  // escape
            #"{"id":1.0,"method":"contact.get","params":{"phone_number":"+14155551234"}}"#,  // fraction
        ]
        for line in notPlain {
            #expect(Array(line.utf8).withUnsafeBytes { ContactGetScanner.scan($0) } == nil, "\(line)")
        }
    }
}

enum DemoContactsForTests {
    static let john =
        #"{"id": "c1d2e3f4-5678-9abc-def0-123456789abc", "phone_number": "+14155551234", "name": "John Smith", "n": 1.50}"#
}
