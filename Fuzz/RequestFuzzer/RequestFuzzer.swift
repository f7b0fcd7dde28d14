import ContactdJSON
import ContactdProtocol
import NIOCore

/// libFuzzer entry: bytes from a client → line framer → JSON-RPC decoder.
///
/// Besides "never traps", it checks one property: any value the JSON reader accepts, written out
/// again and read back, is the same value.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRequest(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: start, count: count)
    var framer = LineFramer(maxLineBytes: 4096)
    var buffer = ByteBuffer(bytes: bytes)
    while let frame = framer.nextFrame(&buffer) {
        guard case .line(let line) = frame else { break }
        _ = RPCMessage.decode(line.readableBytesView, maxBatch: 100)
        if let value = try? JSONParser.parse(line.readableBytesView) {
            let again = try? JSONParser.parse(value.jsonBytes)
            precondition(again == value, "JSON round trip changed the value")
        }
    }
    return 0
}

// SwiftPM links an executable target's entry point as `RequestFuzzer_main` and points `main` at it,
// so libFuzzer's own `main` is never linked; hand control to libFuzzer's driver from here.
@_silgen_name("LLVMFuzzerRunDriver")
private func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafeRawPointer, Int) -> CInt
) -> CInt

@_cdecl("RequestFuzzer_main")
public func fuzzerMain(
    _ argc: CInt,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> CInt {
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments) { fuzzRequest($0, $1) }
}
