import ContactdJSON
import Glibc

/// The common request line, recognised without the JSON parser:
/// `{"jsonrpc":"2.0","id":7,"method":"contact.get","params":{"phone_number":"+14155551234"}}`.
///
/// Why hand-written: with the general parser, decoding a line and reading its params took about
/// 40% of the daemon's CPU on the hit path (perf, 50 connections × 16 pipelined: JSONParser.parse
/// 19.7%, RequestDispatcher.handle 28.8% of which most was params; generic metadata lookups in the
/// unspecialised parser alone 3.9%). See docs/benchmarks.md for the before and after.
///
/// It accepts only the plain shape: one object with members `jsonrpc` ("2.0"), `id` (an integer
/// without sign, fraction or exponent, or a short string of letters, digits and `_ . : -`),
/// `method` ("contact.get") and `params`, in any order, each once; `params` an object with
/// `phone_number` or `contact_id` (a string without escapes or non-ASCII) and optionally `max_age`
/// (an unsigned integer). JSON whitespace is allowed between tokens. Anything else — a
/// notification, a batch, an escape, another method, a duplicate member, a malformed line — returns
/// `nil`, and the full parser handles the line, so behaviour is identical by construction; a test
/// checks the two agree on a large generated corpus.
public struct ContactGetScanner {
    /// What a recognised line asks for.
    public struct Request: Equatable, Sendable {
        public enum Key: Equatable, Sendable {
            case phoneNumber(String)
            case contactID(String)
        }

        public var id: JSONValue
        public var key: Key
        public var maxAge: Double?

        /// The request a canonical line's slices stand for (makes its strings).
        package init(_ raw: RawRequest) {
            let key = String(decoding: raw.key, as: UTF8.self)
            self.init(id: raw.idValue, key: raw.isPhoneNumber ? .phoneNumber(key) : .contactID(key), maxAge: nil)
        }

        public init(id: JSONValue, key: Key, maxAge: Double?) {
            self.id = id
            self.key = key
            self.maxAge = maxAge
        }
    }

    /// The request in `line` (no newline), or `nil` when the line is not of the plain shape.
    public static func scan(_ line: UnsafeRawBufferPointer) -> Request? {
        if let request = scanCanonical(line) { return request }
        return scanAnyOrder(line)
    }

    /// `scan` without the shortcut for the canonical shape: members in any order, whitespace.
    package static func scanAnyOrder(_ line: UnsafeRawBufferPointer) -> Request? {
        var scanner = Cursor(bytes: line)
        return scanner.request()
    }

    /// The shortcut: the line exactly as contactd's client library and `contactd-bench` write it,
    /// `{"jsonrpc":"2.0","id":ID,"method":"contact.get","params":{"phone_number":"…"}}` (or
    /// `"contact_id"`), with no whitespace and no `max_age`; `nil` for anything else, which
    /// `scanAnyOrder` then reads. The same rules for the id and the key's value as `Cursor`'s,
    /// checked by a test on a generated corpus.
    ///
    /// Why: the member-by-member scan was about 20% of the fast lane's CPU at 50 connections × 16
    /// (perf). Matching the fixed parts with `memcmp` took the daemon's CPU per request there from
    /// 1.16 to 0.67 µs (medians of 3 alternating runs of 2,000,000 requests; docs/benchmarks.md).
    package static func scanCanonical(_ line: UnsafeRawBufferPointer) -> Request? {
        scanCanonicalRaw(line).map(Request.init)
    }

    /// A canonical line's parts as slices of the line, valid while it is.
    package struct RawRequest {
        /// The id as written: 1 to 15 digits without a leading zero, or a quoted string of 0 to
        /// 64 bytes that need no escaping in JSON (so it can be written back as it is).
        package var id: UnsafeRawBufferPointer
        package var idIsString: Bool
        /// The key's value, no quotes: `phone_number`'s or `contact_id`'s.
        package var key: UnsafeRawBufferPointer
        package var isPhoneNumber: Bool

        /// The id as a value (makes strings).
        package var idValue: JSONValue {
            let text = String(decoding: id, as: UTF8.self)
            return idIsString ? .string(String(text.dropFirst().dropLast())) : .number(text)
        }
    }

    /// `scanCanonical` without making strings: the fast lane answers a hit from these slices
    /// (making the id and key strings and checking them again was 11% of its CPU at 50 × 16).
    package static func scanCanonicalRaw(_ line: UnsafeRawBufferPointer) -> RawRequest? {
        guard let base = line.baseAddress else { return nil }
        let count = line.count
        var at = 0
        func matches(_ literal: StaticString) -> Bool {
            let length = literal.utf8CodeUnitCount
            guard count - at >= length, memcmp(base + at, literal.utf8Start, length) == 0 else { return false }
            at += length
            return true
        }
        /// The bytes up to the next `"` (which is skipped), when each is `allowed` and there are at
        /// most `maxBytes`.
        func quoted(maxBytes: Int, _ allowed: (UInt8) -> Bool) -> UnsafeRawBufferPointer? {
            let start = at
            while at < count, line[at] != UInt8(ascii: "\"") {
                guard allowed(line[at]), at - start < maxBytes else { return nil }
                at += 1
            }
            guard at < count else { return nil }
            defer { at += 1 }
            return UnsafeRawBufferPointer(rebasing: line[start..<at])
        }

        guard matches(#"{"jsonrpc":"2.0","id":"#) else { return nil }
        let idStart = at
        let idIsString = matches("\"")
        if idIsString {
            guard quoted(maxBytes: 64, Cursor.isIDByte) != nil else { return nil }
        } else {
            while at < count, (0x30...0x39).contains(line[at]) { at += 1 }
            let digits = at - idStart
            guard digits > 0, digits <= 15, digits == 1 || line[idStart] != 0x30 else { return nil }
        }
        let id = UnsafeRawBufferPointer(rebasing: line[idStart..<at])
        guard matches(#","method":"contact.get","params":{""#) else { return nil }
        let key: UnsafeRawBufferPointer
        let isPhoneNumber: Bool
        if matches(#"phone_number":""#) {
            guard let text = quoted(maxBytes: 128, Cursor.isPhoneByte) else { return nil }
            (key, isPhoneNumber) = (text, true)
        } else if matches(#"contact_id":""#) {
            guard let text = quoted(maxBytes: 128, Cursor.isIDByte) else { return nil }
            (key, isPhoneNumber) = (text, false)
        } else {
            return nil
        }
        guard matches("}}"), at == count else { return nil }
        return RawRequest(id: id, idIsString: idIsString, key: key, isPhoneNumber: isPhoneNumber)
    }

    private struct Cursor {
        let bytes: UnsafeRawBufferPointer
        var index = 0

        init(bytes: UnsafeRawBufferPointer) {
            self.bytes = bytes
        }

        mutating func skipWhitespace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0D, 0x0A: index += 1
                default: return
                }
            }
        }

        mutating func consume(_ byte: UInt8) -> Bool {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == byte else { return false }
            index += 1
            return true
        }

        /// A string literal's content, when it has no escapes and only the bytes `allowed` admits.
        mutating func plainString(maxBytes: Int, _ allowed: (UInt8) -> Bool) -> UnsafeRawBufferPointer? {
            guard consume(UInt8(ascii: "\"")) else { return nil }
            let start = index
            while index < bytes.count, bytes[index] != UInt8(ascii: "\"") {
                guard allowed(bytes[index]), index - start < maxBytes else { return nil }
                index += 1
            }
            guard index < bytes.count else { return nil }
            defer { index += 1 }
            return UnsafeRawBufferPointer(rebasing: bytes[start..<index])
        }

        /// An unsigned integer without leading zeros, at most 15 digits.
        mutating func plainInteger() -> UnsafeRawBufferPointer? {
            skipWhitespace()
            let start = index
            while index < bytes.count, (0x30...0x39).contains(bytes[index]) { index += 1 }
            let count = index - start
            guard count > 0, count <= 15, count == 1 || bytes[start] != 0x30 else { return nil }
            // A number must end here: not a fraction, exponent or anything glued on.
            if index < bytes.count,
                bytes[index] == UInt8(ascii: ".") || bytes[index] == UInt8(ascii: "e")
                    || bytes[index] == UInt8(ascii: "E")
            {
                return nil
            }
            return UnsafeRawBufferPointer(rebasing: bytes[start..<index])
        }

        mutating func key() -> UnsafeRawBufferPointer? {
            plainString(maxBytes: 16) { $0 >= 0x61 && $0 <= 0x7A || $0 == UInt8(ascii: "_") }
        }

        mutating func request() -> Request? {
            guard consume(UInt8(ascii: "{")) else { return nil }
            var id: JSONValue?
            var sawVersion = false
            var sawMethod = false
            var params: (key: Request.Key, maxAge: Double?)?
            repeat {
                guard let name = key(), consume(UInt8(ascii: ":")) else { return nil }
                switch name {
                case _ where Self.is(name, "jsonrpc"):
                    guard fixedValue("2.0", once: &sawVersion) else { return nil }
                case _ where Self.is(name, "id"):
                    guard id == nil else { return nil }
                    skipWhitespace()
                    if index < bytes.count, bytes[index] == UInt8(ascii: "\"") {
                        guard let text = plainString(maxBytes: 64, Self.isIDByte) else { return nil }
                        id = .string(String(decoding: text, as: UTF8.self))
                    } else {
                        guard let digits = plainInteger() else { return nil }
                        id = .number(String(decoding: digits, as: UTF8.self))
                    }
                case _ where Self.is(name, "method"):
                    guard fixedValue("contact.get", once: &sawMethod) else { return nil }
                case _ where Self.is(name, "params"):
                    guard params == nil, let parsed = self.params() else { return nil }
                    params = parsed
                default:
                    return nil
                }
            } while consume(UInt8(ascii: ","))
            guard consume(UInt8(ascii: "}")), sawMethod, let id, let params else { return nil }
            skipWhitespace()
            guard index == bytes.count else { return nil }
            return Request(id: id, key: params.key, maxAge: params.maxAge)
        }

        /// A member value that must be the string `literal`, in a member not seen before.
        mutating func fixedValue(_ literal: StaticString, once seen: inout Bool) -> Bool {
            guard !seen, let value = plainString(maxBytes: literal.utf8CodeUnitCount, { _ in true }),
                Self.is(value, literal)
            else { return false }
            seen = true
            return true
        }

        mutating func params() -> (key: Request.Key, maxAge: Double?)? {
            guard consume(UInt8(ascii: "{")) else { return nil }
            var key: Request.Key?
            var maxAge: Double?
            repeat {
                guard let name = self.key(), consume(UInt8(ascii: ":")) else { return nil }
                switch name {
                case _ where Self.is(name, "phone_number"):
                    guard key == nil, let text = plainString(maxBytes: 128, Self.isPhoneByte) else { return nil }
                    key = .phoneNumber(String(decoding: text, as: UTF8.self))
                case _ where Self.is(name, "contact_id"):
                    guard key == nil, let text = plainString(maxBytes: 128, Self.isIDByte) else { return nil }
                    key = .contactID(String(decoding: text, as: UTF8.self))
                case _ where Self.is(name, "max_age"):
                    guard maxAge == nil, let digits = plainInteger(),
                        let value = Double(String(decoding: digits, as: UTF8.self))
                    else { return nil }
                    maxAge = value
                default:
                    return nil
                }
            } while consume(UInt8(ascii: ","))
            guard consume(UInt8(ascii: "}")), let key else { return nil }
            return (key, maxAge)
        }

        /// Whether `name` (a member name or a value) is `literal`, compared as bytes (a `String`
        /// per name to switch on, and comparisons with `String.UTF8View`, were 3–4% of the
        /// daemon's CPU at 50 × 16; `elementsEqual` over the bytes still 3.9% on the fast lane,
        /// hence `memcmp`).
        static func `is`(_ name: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
            guard name.count == literal.utf8CodeUnitCount else { return false }
            guard let base = name.baseAddress else { return literal.utf8CodeUnitCount == 0 }
            return memcmp(base, literal.utf8Start, name.count) == 0
        }

        static func isPhoneByte(_ byte: UInt8) -> Bool {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "+"), UInt8(ascii: " "), UInt8(ascii: "-"),
                UInt8(ascii: "."), UInt8(ascii: "("), UInt8(ascii: ")"):
                true
            default: false
            }
        }

        static func isIDByte(_ byte: UInt8) -> Bool {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: ":"),
                UInt8(ascii: "-"):
                true
            default: false
            }
        }
    }
}
