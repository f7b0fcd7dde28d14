import ContactdCore
import ContactdJSON

/// libFuzzer entry: a 200 body from the API → `APIContact(apiBody:)`.
///
/// Property: an accepted contact's compacted bytes read back as the same JSON value as the body.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzContact(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let body = Array(UnsafeRawBufferPointer(start: start, count: count))
    guard let contact = try? APIContact(apiBody: body) else { return 0 }
    let original = try? JSONParser.parse(body)
    let compacted = try? JSONParser.parse(contact.json)
    precondition(original != nil && original == compacted, "compaction changed the contact")
    precondition(!contact.json.contains(UInt8(ascii: "\n")), "compacted contact spans lines")
    return 0
}

// SwiftPM links an executable target's entry point as `ContactFuzzer_main` and points `main` at it,
// so libFuzzer's own `main` is never linked; hand control to libFuzzer's driver from here.
@_silgen_name("LLVMFuzzerRunDriver")
private func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafeRawPointer, Int) -> CInt
) -> CInt

@_cdecl("ContactFuzzer_main")
public func fuzzerMain(
    _ argc: CInt,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> CInt {
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments) { fuzzContact($0, $1) }
}
