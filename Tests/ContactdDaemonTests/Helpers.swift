import ContactdJSON
import ContactdTestSupport
import Foundation
import Testing

/// Sends one line and reads one reply line, parsed.
func roundTrip(_ client: RawSocketClient, _ line: String) async throws -> JSONValue {
    try await client.send(line + "\n")
    let reply = try #require(try await client.readLine(), "connection closed instead of replying to \(line)")
    return try JSONParser.parse(Array(reply.utf8))
}

/// A `contact.get` request line for a phone number.
func getPhone(_ number: String, id: Int = 1, maxAge: Double? = nil) -> String {
    var params: JSONObject = ["phone_number": .string(number)]
    if let maxAge { params["max_age"] = .double(maxAge) }
    return JSONValue.object(["jsonrpc": "2.0", "id": .int(id), "method": "contact.get", "params": .object(params)])
        .jsonString
}

/// A `contact.get` request line for a contact id.
func getID(_ contactID: String, id: Int = 1) -> String {
    JSONValue.object([
        "jsonrpc": "2.0", "id": .int(id), "method": "contact.get",
        "params": .object(["contact_id": .string(contactID)]),
    ]).jsonString
}

extension JSONValue {
    var errorReason: String? { self["error"]?["data"]?["reason"]?.stringValue }
    var errorCode: Int? { self["error"]?["code"]?.intValue }
    var cacheStatus: String? { self["result"]?["cache"]?["status"]?.stringValue }
}

/// Open file descriptors of this process.
func openFileDescriptorCount() -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
}

let johnPhone = "+14155551234"
let johnID = "c1d2e3f4-5678-9abc-def0-123456789abc"
