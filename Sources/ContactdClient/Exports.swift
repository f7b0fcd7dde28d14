// The wire's types (every method's result, the words states travel as, `ErrorReason`) live in
// ContactdProtocol and the JSON value in ContactdJSON: one definition that the daemon encodes and
// this client decodes. A user imports only ContactdClient and sees them as its own (swift-nio's
// `NIO` module re-exports `NIOCore` the same way).
@_exported import ContactdJSON
@_exported import ContactdProtocol
