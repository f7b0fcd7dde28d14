/// A million (or more) synthetic contacts, made on demand from their index: the benchmark's data.
///
/// Contact `i` has phone number `+1555` followed by `i` in 7 digits and id `bench-` followed by
/// `i` in 8 digits. Its JSON is padded so that contactd's whole reply for it is about 550 bytes,
/// the value size the performance targets are stated for.
package enum BenchContacts {
    /// Indices below this have phone numbers in the `+1555xxxxxxx` block.
    package static let capacity = 10_000_000

    package static func phone(_ index: Int) -> String {
        "+1555" + pad(index, 7)
    }

    package static func id(_ index: Int) -> String {
        "bench-" + pad(index, 8)
    }

    /// The API's JSON for contact `index`.
    package static func contact(_ index: Int) -> String {
        let head =
            #"{"id":"\#(id(index))","phone_number":"\#(phone(index))","name":"Bench Contact \#(index)","#
            + #""email":"contact\#(index)@example.com","company":"Example Widgets Ltd","#
            + #""tags":["customer","benchmark"],"metadata":{"customer_id":"cust_\#(index)","tier":2},"#
            + #""stats":{"total_calls":5,"total_messages":12,"last_contact":"2024-01-15T10:30:00Z"},"#
            + #""created_at":"2024-01-10T10:00:00Z","updated_at":"2024-01-15T10:30:00Z","notes":""#
        // contactd wraps the contact in about 80 bytes of envelope; pad the contact to 470.
        let padding = max(0, 470 - head.utf8.count - 2)
        return head + String(repeating: "n", count: padding) + #""}"#
    }

    /// The contact for a fake-API key (`"phone:+1555…"` or `"id:bench-…"`), if it is one of ours.
    @Sendable package static func generate(_ key: String) -> String? {
        if key.hasPrefix("phone:+1555"), key.utf8.count == 18, let index = Int(key.dropFirst(11)) {
            return contact(index)
        }
        if key.hasPrefix("id:bench-"), key.utf8.count == 17, let index = Int(key.dropFirst(9)) {
            return contact(index)
        }
        return nil
    }

    private static func pad(_ value: Int, _ width: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}
