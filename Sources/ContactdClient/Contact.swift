import ContactdJSON
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

/// How contactd answered a lookup: `cache.status` of `contact.get`.
public enum CacheStatus: Sendable, Hashable, CustomStringConvertible, WireSpelling {
    /// A fresh entry from the cache.
    case hit
    /// Fetched from the API for this request (or joined a fetch in progress).
    case miss
    /// Past its TTL; see ``StaleReason``.
    case stale
    /// A status this client does not know (from a newer contactd), as sent.
    case unknown(String)

    static let spellings: [(Self, String)] = [(.hit, "hit"), (.miss, "miss"), (.stale, "stale")]

    /// The status as contactd spells it.
    public init(_ text: String) { self.init(spelling: text) }

    /// Every status this client knows, as contactd spells them (`rpc.discover` lists the same).
    public static let known: [String] = spellings.map(\.1)

    var unknownSpelling: String? { if case .unknown(let text) = self { text } else { nil } }
}

/// Why an answer was stale: `cache.stale_reason` of `contact.get`.
public enum StaleReason: Sendable, Hashable, CustomStringConvertible, WireSpelling {
    /// A refresh is running (stale-while-revalidate).
    case refreshing
    /// The API is failing (stale-if-error).
    case upstreamUnavailable
    /// The API is rate limiting.
    case rateLimited
    /// contactd's circuit breaker holds calls back.
    case circuitOpen
    /// The API has not answered within `--stale-if-error-wait`; a fetch goes on behind.
    case upstreamSlow
    /// A reason this client does not know (from a newer contactd), as sent.
    case unknown(String)

    static let spellings: [(Self, String)] = [
        (.refreshing, "refreshing"), (.upstreamUnavailable, "upstream_unavailable"), (.rateLimited, "rate_limited"),
        (.circuitOpen, "circuit_open"), (.upstreamSlow, "upstream_slow"),
    ]

    /// The reason as contactd spells it.
    public init(_ text: String) { self.init(spelling: text) }

    /// Every reason this client knows, as contactd spells them (`rpc.discover` lists the same).
    public static let known: [String] = spellings.map(\.1)

    var unknownSpelling: String? { if case .unknown(let text) = self { text } else { nil } }
}

/// A value contactd sends as a string, with an `unknown` case that keeps a spelling a newer
/// contactd adds: the spellings are one table, read both ways.
protocol WireSpelling: Equatable, CustomStringConvertible {
    static var spellings: [(Self, String)] { get }
    static func unknown(_ text: String) -> Self
    /// The text of the `unknown` case; `nil` for a known value.
    var unknownSpelling: String? { get }
}

extension WireSpelling {
    init(spelling text: String) {
        self = Self.spellings.first { $0.1 == text }?.0 ?? .unknown(text)
    }

    /// The value as contactd spells it.
    public var description: String {
        unknownSpelling ?? Self.spellings.first { $0.0 == self }?.1 ?? ""
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
        self.result = result
    }
}
