/// Encodes an `Encodable` value as a ``JSONValue``, members in the order the value encodes them
/// (a synthesized `encode(to:)` follows the properties' order): the daemon's typed reports keep
/// the order their types declare, which Foundation's `JSONEncoder` does not promise. Numbers are
/// written as ``JSONValue/int(_:)`` and ``JSONValue/double(_:)`` write them; `nil` optionals are
/// left out, as synthesized conformances leave them.
public struct JSONValueEncoder: Sendable {
    public init() {}

    /// `value` as a JSON value.
    public func encode(_ value: some Encodable) throws -> JSONValue {
        let slot = Slot()
        try value.encode(to: SlotEncoder(slot: slot, codingPath: []))
        return slot.resolved
    }
}

/// Where one value is written while encoding; containers hold slots of their own, resolved into a
/// `JSONValue` at the end (a container may be written after its child containers were made).
private final class Slot {
    enum Content {
        case empty
        case value(JSONValue)
        case object([(String, Slot)])
        case array([Slot])
    }

    var content = Content.empty

    init(_ content: Content = .empty) { self.content = content }

    var resolved: JSONValue {
        switch content {
        case .empty: .object([:])
        case .value(let value): value
        case .object(let members): .object(JSONObject(members.map { (key: $0.0, value: $0.1.resolved) }))
        case .array(let slots): .array(slots.map(\.resolved))
        }
    }

    func append(_ key: String, _ child: Slot) {
        if case .object(var members) = content {
            members.removeAll { $0.0 == key }
            members.append((key, child))
            content = .object(members)
        } else {
            content = .object([(key, child)])
        }
    }

    func append(_ child: Slot) {
        if case .array(var slots) = content {
            slots.append(child)
            content = .array(slots)
        } else {
            content = .array([child])
        }
    }

    /// Writes `value`: a number, string or bool directly, anything else through its `encode(to:)`.
    func write(_ value: some Encodable, codingPath: [any CodingKey]) throws {
        switch value {
        case let value as Bool: content = .value(.bool(value))
        case let value as String: content = .value(.string(value))
        case let value as Double: content = .value(.double(value))
        case let value as Float: content = .value(.double(Double(value)))
        case let value as Int: content = .value(.int(value))
        case let value as any BinaryInteger: content = .value(.number(String(describing: value)))
        case let value as JSONValue: content = .value(value)
        default: try value.encode(to: SlotEncoder(slot: self, codingPath: codingPath))
        }
    }
}

private struct SlotEncoder: Encoder {
    let slot: Slot
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if case .object = slot.content {} else { slot.content = .object([]) }
        return KeyedEncodingContainer(KeyedSlot<Key>(slot: slot, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if case .array = slot.content {} else { slot.content = .array([]) }
        return UnkeyedSlot(slot: slot, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        SingleSlot(slot: slot, codingPath: codingPath)
    }
}

private struct KeyedSlot<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let slot: Slot
    let codingPath: [any CodingKey]

    mutating func encodeNil(forKey key: Key) throws { slot.append(key.stringValue, Slot(.value(.null))) }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        let child = Slot()
        slot.append(key.stringValue, child)
        try child.write(value, codingPath: codingPath + [key])
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type,
        forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        let child = Slot(.object([]))
        slot.append(key.stringValue, child)
        return KeyedEncodingContainer(KeyedSlot<NestedKey>(slot: child, codingPath: codingPath + [key]))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let child = Slot(.array([]))
        slot.append(key.stringValue, child)
        return UnkeyedSlot(slot: child, codingPath: codingPath + [key])
    }

    mutating func superEncoder() -> any Encoder { SlotEncoder(slot: slot, codingPath: codingPath) }
    mutating func superEncoder(forKey key: Key) -> any Encoder {
        let child = Slot()
        slot.append(key.stringValue, child)
        return SlotEncoder(slot: child, codingPath: codingPath + [key])
    }
}

private struct UnkeyedSlot: UnkeyedEncodingContainer {
    let slot: Slot
    let codingPath: [any CodingKey]
    var count: Int { if case .array(let slots) = slot.content { slots.count } else { 0 } }

    mutating func encodeNil() throws { slot.append(Slot(.value(.null))) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        let child = Slot()
        slot.append(child)
        try child.write(value, codingPath: codingPath)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type
    ) -> KeyedEncodingContainer<NestedKey> {
        let child = Slot(.object([]))
        slot.append(child)
        return KeyedEncodingContainer(KeyedSlot<NestedKey>(slot: child, codingPath: codingPath))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let child = Slot(.array([]))
        slot.append(child)
        return UnkeyedSlot(slot: child, codingPath: codingPath)
    }

    mutating func superEncoder() -> any Encoder {
        let child = Slot()
        slot.append(child)
        return SlotEncoder(slot: child, codingPath: codingPath)
    }
}

private struct SingleSlot: SingleValueEncodingContainer {
    let slot: Slot
    let codingPath: [any CodingKey]

    mutating func encodeNil() throws { slot.content = .value(.null) }
    mutating func encode<T: Encodable>(_ value: T) throws { try slot.write(value, codingPath: codingPath) }
}
