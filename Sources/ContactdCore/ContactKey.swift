/// The key a contact is looked up by: a normalised phone number or an API contact id.
package enum ContactKey: Sendable, Hashable, CustomStringConvertible {
    case phone(PhoneNumber)
    case id(ContactID)

    /// What a key's bytes are, for lookups by bytes (`ContactCache.read(kind:bytes:_:)`).
    package enum Kind: UInt8, Sendable {
        case id = 0
        case phone = 1
    }

    /// The key's kind and its bytes (a normalised number, or the id): what the cache indexes.
    package func withBytes<Result>(_ body: (Kind, UnsafeRawBufferPointer) -> Result) -> Result {
        var text: String
        let kind: Kind
        switch self {
        case .phone(let phone): (text, kind) = (phone.e164, .phone)
        case .id(let id): (text, kind) = (id.rawValue, .id)
        }
        // No copy for a native string; a phone number or a short id is held inline.
        return text.withUTF8 { body(kind, UnsafeRawBufferPointer($0)) }
    }

    /// The key whose bytes `withBytes` gives as `kind` and `bytes`; `nil` if they are not valid.
    package init?(kind: Kind, bytes: UnsafeRawBufferPointer) {
        let text = String(decoding: bytes, as: UTF8.self)
        switch kind {
        case .phone:
            guard let phone = PhoneNumber(text), phone.e164 == text else { return nil }
            self = .phone(phone)
        case .id:
            guard let id = ContactID(text) else { return nil }
            self = .id(id)
        }
    }

    package var description: String {
        switch self {
        case .phone(let p): "phone:\(p.e164)"
        case .id(let i): "id:\(i.rawValue)"
        }
    }
}

/// A phone number in E.164 form: `+` then 2 to 15 digits, the first not 0.
package struct PhoneNumber: Sendable, Hashable {
    /// Longest number accepted as written (spaces and punctuation included), in UTF-8 bytes.
    package static let maximumInputBytes = 128

    /// The normalised number, e.g. `+14155551234`.
    package let e164: String

    /// Normalises `input` by dropping spaces, `-`, `.`, `(` and `)`; `nil` unless the rest is E.164.
    package init?(_ input: String) {
        // Already normalised (what clients almost always send): keep the string as it is. This
        // skips building a digit array, the one allocation left per cache hit (docs/benchmarks.md).
        var input = input
        if input.withUTF8({ Self.isNormalised(UnsafeRawBufferPointer($0)) }) {
            e164 = input
            return
        }
        var digits: [UInt8] = []
        digits.reserveCapacity(16)
        var sawPlus = false
        for byte in input.utf8 {
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "("), UInt8(ascii: ")"):
                continue
            case UInt8(ascii: "+") where !sawPlus && digits.isEmpty:
                sawPlus = true
            case UInt8(ascii: "0")...UInt8(ascii: "9") where sawPlus:
                if digits.isEmpty && byte == UInt8(ascii: "0") { return nil }
                digits.append(byte)
                if digits.count > 15 { return nil }
            default:
                return nil
            }
        }
        guard sawPlus, digits.count >= 2 else { return nil }
        e164 = "+" + String(decoding: digits, as: UTF8.self)
    }
}

extension PhoneNumber {
    /// Whether `bytes` are a number in E.164 form already (what `init` keeps as it is).
    package static func isNormalised(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count >= 3, bytes.count <= 16, bytes[0] == UInt8(ascii: "+"), bytes[1] != UInt8(ascii: "0")
        else { return false }
        for byte in bytes.dropFirst() where byte < UInt8(ascii: "0") || byte > UInt8(ascii: "9") { return false }
        return true
    }
}

/// An API contact id: 1 to 128 bytes of printable characters, no whitespace.
package struct ContactID: Sendable, Hashable {
    /// Longest id accepted, in UTF-8 bytes (SPEC §3).
    package static let maximumBytes = 128

    package let rawValue: String

    /// `nil` if `rawValue` is empty, longer than 128 bytes, or holds whitespace or control characters.
    package init?(_ rawValue: String) {
        let utf8 = rawValue.utf8
        guard !utf8.isEmpty, utf8.count <= Self.maximumBytes else { return nil }
        guard
            !rawValue.unicodeScalars.contains(where: {
                $0.properties.isWhitespace || $0.value < 0x20 || $0.value == 0x7F
            })
        else { return nil }
        self.rawValue = rawValue
    }
}
