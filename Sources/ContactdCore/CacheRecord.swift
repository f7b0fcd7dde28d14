import Glibc

/// A key as the index sees it: its kind and its UTF-8 bytes, hashed the same way whether they come
/// from a `ContactKey` or from a record.
struct KeyBytes {
    static let id = ContactKey.Kind.id.rawValue
    static let phone = ContactKey.Kind.phone.rawValue

    let kind: UInt8
    let bytes: UnsafeRawBufferPointer

    var hash: Int {
        var hasher = Hasher()
        hasher.combine(kind)
        hasher.combine(bytes: bytes)
        return hasher.finalize()
    }

    static func == (lhs: KeyBytes, rhs: KeyBytes) -> Bool {
        lhs.kind == rhs.kind && lhs.bytes.count == rhs.bytes.count
            && (lhs.bytes.isEmpty || memcmp(lhs.bytes.baseAddress!, rhs.bytes.baseAddress!, lhs.bytes.count) == 0)
    }

    /// Calls `body` with the bytes of `key` (no copy for a native string; a phone number or a
    /// short id is held inline in its `String` and is not allocated either).
    static func with<Result>(_ key: ContactKey, _ body: (KeyBytes) -> Result) -> Result {
        key.withBytes { kind, bytes in body(KeyBytes(kind: kind.rawValue, bytes: bytes)) }
    }
}

/// An entry's record in its slab chunk: its keys, then the contact's bytes.
///
///     flags: bit 0 contact, bit 1 has a phone number, bits 2–3 the key asked for
///            (0: stored next, 1: the contact's id, 2: the contact's phone number), bit 4 its kind
///     [key asked for]               when stored next
///     [id]                          for a contact
///     [phone number]                for a contact with one
///     JSON bytes                    for a contact: the rest of the record
///
/// A key is a length byte and its bytes (keys are at most 128 bytes, SPEC §3), or, when the same
/// bytes occur in the contact's JSON (an id or a normalised number almost always does), 0xFF, a
/// length byte and a 16-bit offset into the JSON: 4 bytes instead of 14 for a 13-byte id
/// (docs/benchmarks.md, "Memory").
struct Record {
    let isContact: Bool
    let requested: KeyBytes
    let id: KeyBytes?
    let phone: KeyBytes?
    let json: UnsafeRawBufferPointer?

    init(_ node: Node) {
        let bytes = UnsafeRawBufferPointer(start: node.record, count: Int(node.length))
        let flags = bytes[0]
        var offset = 1
        // Where each key is: (start, length), a start below 0 counting from the JSON's start.
        func field() -> (start: Int, count: Int) {
            if bytes[offset] == 0xFF {
                defer { offset += 4 }
                let at = Int(bytes[offset + 2]) | Int(bytes[offset + 3]) << 8
                return (-1 - at, Int(bytes[offset + 1]))
            }
            let length = Int(bytes[offset])
            defer { offset += 1 + length }
            return (offset + 1, length)
        }
        let how = flags >> 2 & 3
        let separate = how == 0 ? field() : nil
        isContact = flags & 1 != 0
        let idField = isContact ? field() : nil
        let phoneField = flags & 2 != 0 ? field() : nil
        let jsonStart = offset
        func key(_ kind: UInt8, _ field: (start: Int, count: Int)) -> KeyBytes {
            let start = field.start >= 0 ? field.start : jsonStart - 1 - field.start
            return KeyBytes(kind: kind, bytes: UnsafeRawBufferPointer(rebasing: bytes[start..<start + field.count]))
        }
        id = idField.map { key(KeyBytes.id, $0) }
        phone = phoneField.map { key(KeyBytes.phone, $0) }
        json = isContact ? UnsafeRawBufferPointer(rebasing: bytes[jsonStart...]) : nil
        switch how {
        case 1: requested = id!
        case 2: requested = phone!
        default: requested = key(flags >> 4 & 1, separate!)
        }
    }

    /// Whether `key` is one of the entry's keys.
    func has(_ key: KeyBytes) -> Bool {
        key == requested || (id.map { $0 == key } ?? false) || (phone.map { $0 == key } ?? false)
    }

    /// Calls `body` with each key of the entry once.
    func forEachKey(_ body: (KeyBytes) -> Void) {
        body(requested)
        if let id, !(id == requested) { body(id) }
        if let phone, !(phone == requested) { body(phone) }
    }

    var requestedKey: ContactKey {
        ContactKey(kind: ContactKey.Kind(rawValue: requested.kind)!, bytes: requested.bytes)!
    }

    /// The entry as a value of its own (allocates: for the paths that are not a plain hit).
    var value: CachedValue {
        guard let json, let id else { return .notFound }
        return .contact(
            APIContact(
                json: Array(json),
                id: ContactID(String(decoding: id.bytes, as: UTF8.self))!,
                phoneNumber: phone.map { PhoneNumber(String(decoding: $0.bytes, as: UTF8.self))! }
            )
        )
    }

    /// How the record for a value is laid out: worked out once, outside the cache's lock.
    struct Layout {
        let value: CachedValue
        let requestedKey: ContactKey
        let flags: UInt8
        /// Offsets into the JSON of the id's and phone number's bytes, when they occur there.
        let idInJSON: Int?
        let phoneInJSON: Int?
        let length: Int

        init(_ value: CachedValue, requestedKey: ContactKey) {
            self.value = value
            self.requestedKey = requestedKey
            var flags: UInt8 = 0
            var length = 1
            var idInJSON: Int?
            var phoneInJSON: Int?
            if case .contact(let contact) = value {
                flags |= 1
                idInJSON = Self.offset(of: contact.id.rawValue, in: contact.json)
                length += idInJSON == nil ? 1 + contact.id.rawValue.utf8.count : 4
                if let phone = contact.phoneNumber {
                    flags |= 2
                    phoneInJSON = Self.offset(of: phone.e164, in: contact.json)
                    length += phoneInJSON == nil ? 1 + phone.e164.utf8.count : 4
                    if requestedKey == .phone(phone) { flags |= 2 << 2 }
                }
                if requestedKey == .id(contact.id) { flags |= 1 << 2 }
                length += contact.json.count
            }
            if flags >> 2 & 3 == 0 {
                switch requestedKey {
                case .phone(let phone):
                    flags |= 1 << 4
                    length += 1 + phone.e164.utf8.count
                case .id(let id): length += 1 + id.rawValue.utf8.count
                }
            }
            self.flags = flags
            self.idInJSON = idInJSON
            self.phoneInJSON = phoneInJSON
            self.length = length
        }

        /// Where `text`'s bytes first occur in `json`, if they start in its first 64 KiB.
        private static func offset(of text: String, in json: [UInt8]) -> Int? {
            let needle = Array(text.utf8)
            guard let first = needle.first, json.count >= needle.count else { return nil }
            for start in 0...min(json.count - needle.count, 0xFFFF)
            where json[start] == first && json[start..<start + needle.count].elementsEqual(needle) {
                return start
            }
            return nil
        }

        /// Writes the record at `start`, which has room for `length` bytes.
        func write(at start: UnsafeMutableRawPointer) {
            start.storeBytes(of: flags, as: UInt8.self)
            var offset = 1
            func put(_ text: String, inJSON: Int?) {
                if let inJSON {
                    start.storeBytes(of: 0xFF, toByteOffset: offset, as: UInt8.self)
                    start.storeBytes(of: UInt8(text.utf8.count), toByteOffset: offset + 1, as: UInt8.self)
                    start.storeBytes(of: UInt8(inJSON & 0xFF), toByteOffset: offset + 2, as: UInt8.self)
                    start.storeBytes(of: UInt8(inJSON >> 8), toByteOffset: offset + 3, as: UInt8.self)
                    offset += 4
                    return
                }
                var text = text
                text.withUTF8 { utf8 in
                    start.storeBytes(of: UInt8(utf8.count), toByteOffset: offset, as: UInt8.self)
                    (start + offset + 1).copyMemory(from: utf8.baseAddress!, byteCount: utf8.count)
                    offset += 1 + utf8.count
                }
            }
            if flags >> 2 & 3 == 0 {
                switch requestedKey {
                case .phone(let phone): put(phone.e164, inJSON: nil)
                case .id(let id): put(id.rawValue, inJSON: nil)
                }
            }
            guard case .contact(let contact) = value else { return }
            put(contact.id.rawValue, inJSON: idInJSON)
            if let phone = contact.phoneNumber { put(phone.e164, inJSON: phoneInJSON) }
            contact.json.withUnsafeBytes { json in
                (start + offset).copyMemory(from: json.baseAddress!, byteCount: json.count)
            }
        }
    }
}
