import ContactdCore
import ContactdJSON
import ContactdProtocol
import ContactdTestSupport
import Logging
import NIOCore
import Testing

@testable import ContactdDaemon

/// The hand-written `contact.get` scanner must answer exactly as the full JSON-RPC path does.
@Suite struct FastPathAgreementTests {
    struct NoSource: ContactSource {
        func fetch(_ key: ContactKey, timeout: Double) async throws(LookupError) -> APIContact { throw .notFound }
    }

    /// A dispatcher whose cache holds John (by phone and id) and a not-found entry.
    func makeDispatcher() throws -> RequestDispatcher {
        let clock = ManualClock()
        let cache = ContactCache(configuration: CacheConfiguration(), clock: clock.clock)
        let john = try APIContact(apiBody: Array(DemoContactsForTests.john.utf8))
        cache.insert(.contact(john), for: .phone(PhoneNumber("+14155551234")!))
        cache.insert(.notFound, for: .phone(PhoneNumber("+15550000000")!))
        clock.advance(by: 3)
        let lookup = ContactResolver(cache: cache, source: NoSource(), clock: clock.clock)
        return RequestDispatcher(
            lookup: lookup,
            status: LiveStatus(),
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
            // The hit path writes straight into a connection buffer.
            var buffer = ByteBuffer()
            let decision = bytes.withUnsafeBytes { dispatcher.hits.answer(line: $0, into: &buffer) }
            if case .parse = decision { continue }
            accepted += 1
            guard case .single(let item) = RPCMessage.decode(bytes) else {
                Issue.record("the scanner accepted a line the parser does not take as one request: \(line)")
                continue
            }
            switch (decision, dispatcher.respond(to: item)) {
            case (.wrote, .reply(let expected?)):
                #expect(Array(buffer.readableBytesView) == expected, "different replies for \(line)")
                if String(buffer: buffer).contains(#""status":"hit""#) { hits += 1 }
            case (.lookUp(let a), .fetch(let b)):
                #expect(a == b, "different lookups for \(line)")
            default:
                Issue.record("the two paths disagree on what to do with \(line)")
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

    /// What a scanned line says, as values to compare.
    static func parts(_ line: ContactGetLine?) -> [String]? {
        line.map {
            [
                String(decoding: $0.idToken, as: UTF8.self), String(decoding: $0.key, as: UTF8.self), "\($0.kind)",
                "\(String(describing: $0.maxAge))",
            ]
        }
    }

    @Test func theCanonicalShortcutReadsWhatTheFullScannerReads() {
        var taken = 0
        for line in Self.canonicalCorpus(count: 30_000) + Self.corpus(count: 30_000) {
            let bytes = Array(line.utf8)
            let general = bytes.withUnsafeBytes { Self.parts(ContactGetLine.anyOrder($0)) }
            guard let shortcut = bytes.withUnsafeBytes({ Self.parts(ContactGetLine.canonical($0)) }) else { continue }
            taken += 1
            #expect(shortcut == general, "the shortcut reads \(line) differently")
        }
        // The shortcut must be exercised, and must not take everything.
        #expect(taken > 3000, "only \(taken) lines took the shortcut")
        #expect(taken < 50_000)
    }

    /// A line's key used as the line's bytes gives what the key made as a value gives (the full
    /// parser's way in), and only a key the daemon rejects is left to the full parser.
    @Test func keysReadAsBytesAnswerAsKeysMadeAsValues() throws {
        let dispatcher = try makeDispatcher()
        var wrote = 0
        var notFound = 0
        var lookUps = 0
        for line in Self.canonicalCorpus(count: 30_000) {
            let bytes = Array(line.utf8)
            guard let scanned = bytes.withUnsafeBytes({ Self.parts(ContactGetLine.scan($0)) }),
                let request = bytes.withUnsafeBytes({ ContactGetLine.scan($0).map { ($0.id, $0.kind, $0.maxAge) } })
            else { continue }
            let text = scanned[1]
            let key: ContactKey? =
                request.1 == .phone ? PhoneNumber(text).map { .phone($0) } : ContactID(text).map { .id($0) }
            var fromLine = ByteBuffer()
            let decision = bytes.withUnsafeBytes { dispatcher.hits.answer(line: $0, into: &fromLine) }
            guard let key else {
                guard case .parse = decision else {
                    Issue.record("\(line) has a key the daemon rejects but was answered")
                    continue
                }
                continue
            }
            var fromValue = ByteBuffer()
            let expected = dispatcher.hits.answer(key: key, maxAge: request.2, id: request.0, into: &fromValue)
            switch (decision, expected) {
            case (.wrote, .wrote):
                #expect(fromLine == fromValue, "different bytes for \(line)")
                if String(buffer: fromLine).contains("not_found") { notFound += 1 } else { wrote += 1 }
            case (.lookUp(let a), .lookUp(let b)):
                #expect(a == b, "different lookups for \(line)")
                lookUps += 1
            default:
                Issue.record("the two ways in disagree on \(line)")
            }
        }
        #expect(wrote > 1000, "only \(wrote) hits")
        #expect(notFound > 100, "only \(notFound) not-found answers")
        #expect(lookUps > 100, "only \(lookUps) lookups")
    }

    @Test func plainLinesTakeTheFastPath() {
        let lines = [
            #"{"jsonrpc":"2.0","id":1,"method":"contact.get","params":{"phone_number":"+14155551234"}}"#,
            #"{ "method" : "contact.get", "params" : { "contact_id" : "abc-1", "max_age" : 30 }, "id" : "r-9" }"#,
        ]
        for line in lines {
            #expect(Array(line.utf8).withUnsafeBytes { ContactGetLine.scan($0) } != nil, "\(line)")
        }
        let notPlain = [
            #"{"jsonrpc":"2.0","method":"contact.get","params":{"phone_number":"+14155551234"}}"#,  // notification
            #"{"id":1,"method":"contact.get","params":{"phone_number":"+1415555\u00312"}}"#,  // escape
            #"{"id":1.0,"method":"contact.get","params":{"phone_number":"+14155551234"}}"#,  // fraction
        ]
        for line in notPlain {
            #expect(Array(line.utf8).withUnsafeBytes { ContactGetLine.scan($0) } == nil, "\(line)")
        }
    }
}

enum DemoContactsForTests {
    static let john =
        #"{"id": "c1d2e3f4-5678-9abc-def0-123456789abc", "phone_number": "+14155551234", "name": "John Smith", "n": 1.50}"#
}
