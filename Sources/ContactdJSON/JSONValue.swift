/// A JSON value as the sender wrote it: numbers keep their spelling, objects keep their order.
///
/// Foundation's `JSONSerialization` turns `1.50` into `1.5` and reorders keys; contactd passes the
/// API's contacts to clients verbatim (SPEC §2) and echoes JSON-RPC ids exactly, so it reads JSON
/// into this type instead.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    /// A number, spelled exactly as in the input (already validated against the JSON grammar).
    case number(String)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// The string, if this is a string.
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The number as a `Double`, if this is a number.
    public var doubleValue: Double? {
        if case .number(let n) = self { return Double(n) }
        return nil
    }

    /// The number as an `Int`, if this is a number that is a whole number in range.
    public var intValue: Int? {
        guard case .number(let n) = self else { return nil }
        if let i = Int(n) { return i }
        if let d = Double(n), d.rounded() == d, abs(d) < 9.0e15 { return Int(d) }
        return nil
    }

    /// The boolean, if this is `true` or `false`.
    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// The object, if this is an object.
    public var objectValue: JSONObject? {
        if case .object(let o) = self { return o }
        return nil
    }

    /// The elements, if this is an array.
    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    /// Member lookup for objects; `nil` for other kinds or a missing key.
    public subscript(key: String) -> JSONValue? {
        objectValue?[key]
    }

    /// A number value from an integer.
    public static func int(_ value: Int) -> JSONValue { .number(String(value)) }

    /// A number value from a double, written with at most three decimals and no exponent.
    public static func double(_ value: Double) -> JSONValue {
        guard value.isFinite else { return .null }
        let rounded = (value * 1000).rounded() / 1000
        if rounded == rounded.rounded(), abs(rounded) < 9.0e15 { return .number(String(Int(rounded))) }
        return .number(String(rounded))
    }
}

/// A JSON object: members in the order they were written.
///
/// Lookups are linear, which is faster than hashing for the handful of members a request or a
/// contact has. A key written twice keeps its last value for lookups (as most parsers do).
public struct JSONObject: Sendable, Hashable, ExpressibleByDictionaryLiteral {
    /// The members in input order.
    public var members: [(key: String, value: JSONValue)]

    /// An object from members in order.
    public init(_ members: [(key: String, value: JSONValue)] = []) {
        self.members = members
    }

    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.members = elements.map { (key: $0.0, value: $0.1) }
    }

    /// The value of the last member named `key`, or `nil`; setting appends or replaces.
    public subscript(key: String) -> JSONValue? {
        get { members.last(where: { $0.key == key })?.value }
        set {
            members.removeAll { $0.key == key }
            if let newValue { members.append((key: key, value: newValue)) }
        }
    }

    /// The member names in order.
    public var keys: [String] { members.map(\.key) }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.members.count == rhs.members.count
            && zip(lhs.members, rhs.members).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(members.count)
        for member in members {
            hasher.combine(member.key)
            hasher.combine(member.value)
        }
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(nilLiteral: ()) { self = .null }
}
