import ContactdJSON
import ContactdProtocol
import Foundation

/// A contact as the get-contact API sent it.
///
/// The documented members are typed; ``members`` holds every member as the API sent it, in its
/// order, those this type does not know included (a newer API's additions stay reachable), and
/// ``json`` gives the contact's bytes verbatim for callers that pass it on.
///
/// `Codable`: it encodes as the API's object, and decodes from one.
public struct Contact: Sendable, Hashable, Codable {
    /// The contact's stable id.
    public let id: String
    /// Its phone number, E.164 as the API wrote it.
    public let phoneNumber: String?
    /// Its display name.
    public let name: String?
    /// Its email address.
    public let email: String?
    /// The company it belongs to.
    public let company: String?
    /// Free-form notes.
    public let notes: String?
    /// Tags, in the API's order.
    public let tags: [String]
    /// The API's `metadata` object, as sent.
    public let metadata: JSONObject
    /// The API's `stats`, if it sent them.
    public let stats: Stats?
    /// When the contact was created, if the API said (ISO 8601).
    public let createdAt: Date?
    /// When the contact was last updated, if the API said (ISO 8601).
    public let updatedAt: Date?
    /// Every member as the API sent it, in its order.
    public let members: JSONObject

    /// How much the contact has been in touch.
    public struct Stats: Sendable, Hashable {
        /// Calls made, if the API said.
        public let totalCalls: Int?
        /// Messages exchanged, if the API said.
        public let totalMessages: Int?
        /// The last time, if the API said (ISO 8601).
        public let lastContact: Date?

        init(_ object: JSONObject) {
            totalCalls = object["total_calls"]?.intValue
            totalMessages = object["total_messages"]?.intValue
            lastContact = object["last_contact"]?.stringValue.flatMap(Contact.date)
        }
    }

    /// A contact from the API's object; `nil` if it has no string `id`.
    public init?(_ members: JSONObject) {
        guard let id = members["id"]?.stringValue else { return nil }
        self.id = id
        self.members = members
        phoneNumber = members["phone_number"]?.stringValue
        name = members["name"]?.stringValue
        email = members["email"]?.stringValue
        company = members["company"]?.stringValue
        notes = members["notes"]?.stringValue
        tags = members["tags"]?.arrayValue?.compactMap(\.stringValue) ?? []
        metadata = members["metadata"]?.objectValue ?? [:]
        stats = members["stats"]?.objectValue.map(Stats.init)
        createdAt = members["created_at"]?.stringValue.flatMap(Self.date)
        updatedAt = members["updated_at"]?.stringValue.flatMap(Self.date)
    }

    /// The value of any member, by the API's name for it (`contact["name"]?.stringValue`).
    public subscript(member: String) -> JSONValue? { members[member] }

    /// The contact's JSON as the API sent it (contactd removes only whitespace).
    public var json: [UInt8] { JSONValue.object(members).jsonBytes }

    /// Decodes a contact from the API's object; it must have a string `id`.
    public init(from decoder: any Decoder) throws {
        let members = try JSONObject(from: decoder)
        guard let contact = Contact(members) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "a contact needs a string id")
            )
        }
        self = contact
    }

    /// Encodes the contact as the API's object, every member included.
    public func encode(to encoder: any Encoder) throws {
        try members.encode(to: encoder)
    }

    /// Two contacts are equal when the API sent the same members.
    public static func == (lhs: Contact, rhs: Contact) -> Bool { lhs.members == rhs.members }
    /// Hashes the members.
    public func hash(into hasher: inout Hasher) { hasher.combine(members) }

    /// An ISO 8601 time, with or without fractional seconds.
    static func date(_ text: String) -> Date? {
        (try? Date(text, strategy: .iso8601))
            ?? (try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true)))
    }
}

/// A contact and how contactd served it: the result of `contact.get`.
public struct ContactLookup: Sendable, Hashable {
    /// The contact.
    public let contact: Contact
    /// `hit`, `miss` or `stale`.
    public let cacheStatus: CacheStatus
    /// Whole seconds since the API sent it.
    public let age: Double
    /// Why a `stale` answer was stale; `nil` for fresh answers.
    public let staleReason: StaleReason?
    /// Which cache answered; `nil` unless the daemon runs with `--shared-cache`.
    public let tier: CacheTier?
    /// The whole `contact.get` result as received.
    public let result: JSONValue

    /// The lookup in a `contact.get` result; `nil` if it is not one.
    public init?(result: JSONValue) {
        guard let members = result["contact"]?.objectValue, let contact = Contact(members),
            let cache = result["cache"]?.objectValue, let status = cache["status"]?.stringValue
        else { return nil }
        self.contact = contact
        self.cacheStatus = CacheStatus(status)
        self.age = cache["age"]?.doubleValue ?? 0
        self.staleReason = cache["stale_reason"]?.stringValue.map(StaleReason.init)
        self.tier = cache["tier"]?.stringValue.map(CacheTier.init(spelling:))
        self.result = result
    }
}
