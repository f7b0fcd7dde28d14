import ContactdJSON

/// One contact as the API sent it: its compact JSON bytes plus the two keys it is found by.
///
/// The bytes are the API's object with only inter-token whitespace removed, so a cache hit is
/// served by copying them, and members contactd does not know pass through unchanged.
package struct APIContact: Sendable, Hashable {
    /// The contact object, compact JSON, exactly as the API spelled it otherwise.
    package let json: [UInt8]
    /// The contact's `id`.
    package let id: ContactID
    /// The contact's own `phone_number`, normalised, if it has a valid one.
    package let phoneNumber: PhoneNumber?

    /// Why bytes from the API are not a contact.
    package struct InvalidContact: Error, Sendable, Equatable {
        package let problem: String
    }

    /// Validates `body` as a JSON object with a string `id` and keeps it compacted.
    package init(apiBody body: some Collection<UInt8>) throws(InvalidContact) {
        let value: JSONValue
        do {
            value = try JSONParser.parse(body)
        } catch {
            throw InvalidContact(problem: "body is not JSON: \(error)")
        }
        guard case .object(let object) = value else { throw InvalidContact(problem: "body is not a JSON object") }
        guard case .string(let rawID)? = object["id"] else { throw InvalidContact(problem: "contact has no string id") }
        guard let id = ContactID(rawID) else { throw InvalidContact(problem: "contact id is empty or malformed") }
        self.id = id
        self.phoneNumber = object["phone_number"]?.stringValue.flatMap(PhoneNumber.init)
        self.json = JSONParser.removingWhitespace(body)
    }

    /// A contact from parts already validated (the cache's copy of one).
    package init(json: [UInt8], id: ContactID, phoneNumber: PhoneNumber?) {
        self.json = json
        self.id = id
        self.phoneNumber = phoneNumber
    }

    /// The keys this contact is reachable by, besides the one it was asked for.
    package var ownKeys: [ContactKey] {
        var keys: [ContactKey] = [.id(id)]
        if let phoneNumber { keys.append(.phone(phoneNumber)) }
        return keys
    }
}
