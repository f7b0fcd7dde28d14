import ContactdCore
import ContactdJSON
import Glibc

/// A `contact.get` request line of the plain shape, read without the JSON parser, as slices of
/// the line (valid while the line is):
/// `{"jsonrpc":"2.0","id":7,"method":"contact.get","params":{"phone_number":"+14155551234"}}`.
///
/// Why by hand: the general parser and the params it builds were the largest part of the
/// daemon's CPU on the hit path (docs/benchmarks.md, "Request scanner").
///
/// The plain shape: one object with members `jsonrpc` ("2.0"), `id` (an integer without sign,
/// fraction or exponent, or a short string of letters, digits and `_ . : -`), `method`
/// ("contact.get") and `params`, in any order, each once; `params` an object with `phone_number`
/// or `contact_id` (a string without escapes or non-ASCII), optionally `max_age` (an unsigned
/// integer) and `traceparent` (a string of the bytes an id may hold: W3C trace context, kept for
/// a lookup that leaves the hit path, ignored by a hit). JSON whitespace is allowed between tokens. Anything else — a notification, a batch,
/// an escape, another method, a duplicate member, a malformed line — is not recognised and the
/// full parser answers the line, so the answers are the same by construction; a test checks the
/// two agree on a large generated corpus.
struct ContactGetLine {
    /// The id as written: 1 to 15 digits, or a quoted string (quotes included) that needs no
    /// escaping, so it is written back into the reply as it is.
    var idToken: UnsafeRawBufferPointer
    /// The key's value, without quotes, as the client wrote it.
    var key: UnsafeRawBufferPointer
    /// Which member held the key: `phone_number` or `contact_id`.
    var kind: ContactKey.Kind
    var maxAge: Double?
    /// The caller's W3C `traceparent`, as written; `nil` when not given.
    var traceparent: UnsafeRawBufferPointer? = nil

    /// The id as a value (makes a string).
    var id: JSONValue {
        let text = String(decoding: idToken, as: UTF8.self)
        return idToken.first == UInt8(ascii: "\"") ? .string(String(text.dropFirst().dropLast())) : .number(text)
    }

    /// The request in `line` (no newline), or `nil` when the line is not of the plain shape.
    static func scan(_ line: UnsafeRawBufferPointer) -> ContactGetLine? {
        canonical(line) ?? anyOrder(line)
    }

    /// The line exactly as contactd's client library and `contactd-bench` write it — members in
    /// that order, no whitespace, no `max_age` — matched piece by piece with `memcmp`; `nil` for
    /// anything else. The member-by-member scan was about a fifth of the fast lane's CPU.
    static func canonical(_ line: UnsafeRawBufferPointer) -> ContactGetLine? {
        var cursor = Cursor(bytes: line)
        guard cursor.literal(#"{"jsonrpc":"2.0","id":"#), let id = cursor.idToken(),
            cursor.literal(#","method":"contact.get","params":{""#)
        else { return nil }
        let kind: ContactKey.Kind
        if cursor.literal(#"phone_number":"#) {
            kind = .phone
        } else if cursor.literal(#"contact_id":"#) {
            kind = .id
        } else {
            return nil
        }
        guard let key = cursor.keyValue(kind), cursor.literal("}}"), cursor.atEnd else { return nil }
        return ContactGetLine(idToken: id, key: key, kind: kind, maxAge: nil)
    }

    /// The plain shape with members in any order and whitespace between tokens.
    static func anyOrder(_ line: UnsafeRawBufferPointer) -> ContactGetLine? {
        var cursor = Cursor(bytes: line)
        return cursor.request()
    }

    /// Longest string id, in bytes between the quotes.
    static let maximumIDBytes = 64
    /// Longest integer id, in digits (an integer a double holds exactly).
    static let maximumIDDigits = 15

    /// Reads the line left to right; every value reader skips whitespace before its token. The
    /// readers the canonical shortcut uses are inlined into it: it runs for every hit.
    private struct Cursor {
        let bytes: UnsafeRawBufferPointer
        var index = 0

        var atEnd: Bool { index == bytes.count }

        @inline(__always)
        mutating func skipWhitespace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0D, 0x0A: index += 1
                default: return
                }
            }
        }

        /// Consumes `text` if the line continues with exactly it (no whitespace skipped).
        @inline(__always)
        mutating func literal(_ text: StaticString) -> Bool {
            let length = text.utf8CodeUnitCount
            guard bytes.count - index >= length, memcmp(bytes.baseAddress! + index, text.utf8Start, length) == 0
            else { return false }
            index += length
            return true
        }

        @inline(__always)
        mutating func consume(_ byte: UInt8) -> Bool {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == byte else { return false }
            index += 1
            return true
        }

        /// The bytes a string may hold, by where it stands (an enum, not a closure: the check is
        /// made per byte, and a closure would be an indirect call each time).
        enum Allowed {
            case phone, id, memberName, any

            @inline(__always)
            func admits(_ byte: UInt8) -> Bool {
                switch self {
                case .phone: Cursor.isPhoneByte(byte)
                case .id: Cursor.isIDByte(byte)
                case .memberName: byte >= 0x61 && byte <= 0x7A || byte == UInt8(ascii: "_")
                case .any: true
                }
            }
        }

        /// A string literal's content, when it has no escapes and at most `maxBytes` bytes that
        /// `allowed` admits.
        @inline(__always)
        mutating func plainString(maxBytes: Int, _ allowed: Allowed) -> UnsafeRawBufferPointer? {
            guard consume(UInt8(ascii: "\"")) else { return nil }
            let start = index
            while index < bytes.count, bytes[index] != UInt8(ascii: "\"") {
                guard allowed.admits(bytes[index]), index - start < maxBytes else { return nil }
                index += 1
            }
            guard index < bytes.count else { return nil }
            defer { index += 1 }
            return UnsafeRawBufferPointer(rebasing: bytes[start..<index])
        }

        /// An unsigned integer without leading zeros, at most `maximumIDDigits` digits.
        @inline(__always)
        mutating func plainInteger() -> UnsafeRawBufferPointer? {
            skipWhitespace()
            let start = index
            while index < bytes.count, (0x30...0x39).contains(bytes[index]) { index += 1 }
            let count = index - start
            guard count > 0, count <= ContactGetLine.maximumIDDigits, count == 1 || bytes[start] != 0x30
            else { return nil }
            // A number must end here: not a fraction, exponent or anything glued on.
            if index < bytes.count,
                bytes[index] == UInt8(ascii: ".") || bytes[index] == UInt8(ascii: "e")
                    || bytes[index] == UInt8(ascii: "E")
            {
                return nil
            }
            return UnsafeRawBufferPointer(rebasing: bytes[start..<index])
        }

        /// The id as written (a string with its quotes).
        @inline(__always)
        mutating func idToken() -> UnsafeRawBufferPointer? {
            skipWhitespace()
            let start = index
            if index < bytes.count, bytes[index] == UInt8(ascii: "\"") {
                guard plainString(maxBytes: ContactGetLine.maximumIDBytes, .id) != nil else { return nil }
                return UnsafeRawBufferPointer(rebasing: bytes[start..<index])
            }
            return plainInteger()
        }

        /// A key's value: the bytes a phone number or an id may be written with, at most as
        /// many as the full path accepts.
        @inline(__always)
        mutating func keyValue(_ kind: ContactKey.Kind) -> UnsafeRawBufferPointer? {
            switch kind {
            case .phone: plainString(maxBytes: PhoneNumber.maximumInputBytes, .phone)
            case .id: plainString(maxBytes: ContactID.maximumBytes, .id)
            }
        }

        mutating func memberName() -> UnsafeRawBufferPointer? {
            plainString(maxBytes: 16, .memberName)
        }

        mutating func request() -> ContactGetLine? {
            guard consume(UInt8(ascii: "{")) else { return nil }
            var id: UnsafeRawBufferPointer?
            var sawVersion = false
            var sawMethod = false
            var params: Params?
            repeat {
                guard let name = memberName(), consume(UInt8(ascii: ":")) else { return nil }
                if Self.is(name, "jsonrpc") {
                    guard fixedValue("2.0", once: &sawVersion) else { return nil }
                } else if Self.is(name, "id") {
                    guard id == nil, let token = idToken() else { return nil }
                    id = token
                } else if Self.is(name, "method") {
                    guard fixedValue("contact.get", once: &sawMethod) else { return nil }
                } else if Self.is(name, "params") {
                    guard params == nil, let parsed = self.params() else { return nil }
                    params = parsed
                } else {
                    return nil
                }
            } while consume(UInt8(ascii: ","))
            guard consume(UInt8(ascii: "}")), sawMethod, let id, let params else { return nil }
            skipWhitespace()
            guard atEnd else { return nil }
            return ContactGetLine(
                idToken: id,
                key: params.key,
                kind: params.kind,
                maxAge: params.maxAge,
                traceparent: params.traceparent
            )
        }

        /// What `params` holds.
        struct Params {
            var key: UnsafeRawBufferPointer
            var kind: ContactKey.Kind
            var maxAge: Double?
            var traceparent: UnsafeRawBufferPointer?
        }

        /// Longest `traceparent` the scanner takes (version 00's is 55 bytes; a later version may
        /// be longer). A longer one goes to the full parser, which takes any string.
        static let maximumTraceparentBytes = 128

        /// A member value that must be the string `literal`, in a member not seen before.
        mutating func fixedValue(_ literal: StaticString, once seen: inout Bool) -> Bool {
            guard !seen, let value = plainString(maxBytes: literal.utf8CodeUnitCount, .any),
                Self.is(value, literal)
            else { return false }
            seen = true
            return true
        }

        mutating func params() -> Params? {
            guard consume(UInt8(ascii: "{")) else { return nil }
            var key: (UnsafeRawBufferPointer, ContactKey.Kind)?
            var maxAge: Double?
            var traceparent: UnsafeRawBufferPointer?
            repeat {
                guard let name = memberName(), consume(UInt8(ascii: ":")) else { return nil }
                let kind: ContactKey.Kind
                if Self.is(name, "phone_number") {
                    kind = .phone
                } else if Self.is(name, "contact_id") {
                    kind = .id
                } else if Self.is(name, "max_age") {
                    guard maxAge == nil, let digits = plainInteger(),
                        let value = Double(String(decoding: digits, as: UTF8.self))
                    else { return nil }
                    maxAge = value
                    continue
                } else if Self.is(name, "traceparent") {
                    guard traceparent == nil, let value = plainString(maxBytes: Self.maximumTraceparentBytes, .id)
                    else { return nil }
                    traceparent = value
                    continue
                } else {
                    return nil
                }
                guard key == nil, let value = keyValue(kind) else { return nil }
                key = (value, kind)
            } while consume(UInt8(ascii: ","))
            guard consume(UInt8(ascii: "}")), let key else { return nil }
            return Params(key: key.0, kind: key.1, maxAge: maxAge, traceparent: traceparent)
        }

        /// Whether `name` is `literal`, compared as bytes (no string is made per member).
        static func `is`(_ name: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
            guard name.count == literal.utf8CodeUnitCount else { return false }
            guard let base = name.baseAddress else { return literal.utf8CodeUnitCount == 0 }
            return memcmp(base, literal.utf8Start, name.count) == 0
        }

        @inline(__always)
        static func isPhoneByte(_ byte: UInt8) -> Bool {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "+"), UInt8(ascii: " "), UInt8(ascii: "-"),
                UInt8(ascii: "."), UInt8(ascii: "("), UInt8(ascii: ")"):
                true
            default: false
            }
        }

        @inline(__always)
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
