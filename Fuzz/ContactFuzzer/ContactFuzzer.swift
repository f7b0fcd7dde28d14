import ContactdCore
import ContactdJSON

/// libFuzzer entry: a 200 body from the API → `Contact(apiBody:)`.
///
/// Property: an accepted contact's compacted bytes read back as the same JSON value as the body.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzContact(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let body = Array(UnsafeRawBufferPointer(start: start, count: count))
    guard let contact = try? Contact(apiBody: body) else { return 0 }
    let original = try? JSONParser.parse(body)
    let compacted = try? JSONParser.parse(contact.json)
    precondition(original != nil && original == compacted, "compaction changed the contact")
    precondition(!contact.json.contains(UInt8(ascii: "\n")), "compacted contact spans lines")
    return 0
}
