import ContactdCore
import ContactdJSON
import ContactdProtocol

/// `contact.get` params: exactly one key, optional `max_age` and `traceparent`.
struct ContactGetParams {
    let key: ContactKey
    let maxAge: Double?
    let traceparent: String?

    init(_ params: JSONValue?) throws(RPCError) {
        let object = try requireObject(params, allowed: ["phone_number", "contact_id", "max_age", "traceparent"])
        key = try parseKey(object)
        traceparent = try parseTraceparent(object)
        switch object["max_age"] {
        case nil: maxAge = nil
        case .number?:
            guard let value = object["max_age"]?.doubleValue, value.isFinite, value >= 0 else {
                throw .invalidParams("max_age must be a number of seconds >= 0")
            }
            maxAge = value
        default: throw .invalidParams("max_age must be a number of seconds >= 0")
        }
    }
}

/// `contact.invalidate` params: one key, or `{"all": true}`.
package enum InvalidateParams: Sendable {
    case key(ContactKey)
    case all

    init(_ params: JSONValue?) throws(RPCError) {
        let object = try requireObject(params, allowed: ["phone_number", "contact_id", "all", "traceparent"])
        _ = try parseTraceparent(object)
        if let all = object["all"] {
            guard all == .bool(true) else { throw .invalidParams("all must be true") }
            guard object["phone_number"] == nil, object["contact_id"] == nil else {
                throw .invalidParams("give either all or one key, not both")
            }
            self = .all
            return
        }
        self = .key(try parseKey(object))
    }
}

private func requireObject(_ params: JSONValue?, allowed: Set<String>) throws(RPCError) -> JSONObject {
    guard case .object(let object)? = params else {
        throw .invalidParams("params must be an object, e.g. {\"phone_number\": \"+14155551234\"}")
    }
    if let unknown = object.keys.first(where: { !allowed.contains($0) }) {
        throw .invalidParams("unknown member '\(unknown)'; allowed: \(allowed.sorted().joined(separator: ", "))")
    }
    return object
}

/// The optional `traceparent` every method takes (docs/protocol.md, "Tracing"): a string, else
/// `invalid_params`. Its content is the tracer's to judge: one it cannot read starts a new trace,
/// as W3C trace context says.
func parseTraceparent(_ object: JSONObject) throws(RPCError) -> String? {
    switch object["traceparent"] {
    case nil: return nil
    case .string(let text)?: return text
    default: throw .invalidParams("traceparent must be a string (W3C trace context)")
    }
}

private func parseKey(_ object: JSONObject) throws(RPCError) -> ContactKey {
    switch (object["phone_number"], object["contact_id"]) {
    case (nil, nil): throw .invalidParams("give phone_number or contact_id")
    case (.some, .some): throw .invalidParams("give phone_number or contact_id, not both")
    case (let phone?, nil):
        guard case .string(let text) = phone else { throw .invalidParams("phone_number must be a string") }
        guard text.utf8.count <= PhoneNumber.maximumInputBytes, let number = PhoneNumber(text) else {
            throw .invalidPhoneNumber
        }
        return .phone(number)
    case (nil, let id?):
        guard case .string(let text) = id else { throw .invalidParams("contact_id must be a string") }
        guard let contactID = ContactID(text) else { throw .invalidContactID }
        return .id(contactID)
    }
}
