import ContactdJSON
import ContactdProtocol
import NIOConcurrencyHelpers
import NIOCore

/// The error the server sent for a connection as a whole (`id` null), readable off the event loop.
final class ConnectionRefusal: Sendable {
    private let stored = NIOLockedValueBox<ContactdClientError?>(nil)

    var error: ContactdClientError? { stored.withLockedValue { $0 } }

    func record(_ error: ContactdClientError) { stored.withLockedValue { $0 = error } }
}

/// Numbers outgoing calls and completes each one when the reply with its id arrives.
final class ClientHandler: ChannelDuplexHandler {
    typealias InboundIn = LineFrame
    typealias OutboundIn = Call
    typealias OutboundOut = ByteBuffer

    /// One call to send.
    struct Call {
        let method: String
        let params: JSONValue?
        let promise: EventLoopPromise<JSONValue>
    }

    private var nextID = 1
    private var pending: [Int: EventLoopPromise<JSONValue>] = [:]
    /// An error the server sent for the connection as a whole (`id` null: forbidden, overloaded,
    /// request too large); later calls fail with it rather than with a bare "closed".
    private var connectionError: ContactdClientError?
    private let refusal: ConnectionRefusal

    init(refusal: ConnectionRefusal) {
        self.refusal = refusal
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let call = unwrapOutboundIn(data)
        if let connectionError {
            call.promise.fail(connectionError)
            promise?.succeed()
            return
        }
        let id = nextID
        nextID += 1
        var request: JSONObject = ["jsonrpc": "2.0", "id": .int(id), "method": .string(call.method)]
        if let params = call.params { request["params"] = params }
        var bytes = JSONValue.object(request).jsonBytes
        bytes.append(UInt8(ascii: "\n"))
        pending[id] = call.promise
        // A call that gives up (its timeout, its task cancelled) leaves the table then, not when
        // a reply that may never come arrives. Runs on this event loop.
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        call.promise.futureResult.whenComplete { _ in handler.value.pending[id] = nil }
        context.write(wrapOutboundOut(ByteBuffer(bytes: bytes)), promise: promise)
    }

    /// Calls written and not yet answered or given up (for tests).
    var pendingCount: Int { pending.count }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .line(let line) = unwrapInboundIn(data) else {
            failAll(.badResponse("reply line too long"))
            context.close(promise: nil)
            return
        }
        guard let reply = try? JSONParser.parse(line.readableBytesView), case .object(let object) = reply else {
            failAll(.badResponse("reply is not a JSON object"))
            context.close(promise: nil)
            return
        }
        if let id = object["id"]?.intValue {
            // No promise: a reply to a call that gave up. Dropped.
            guard let promise = pending.removeValue(forKey: id) else { return }
            if let error = object["error"] {
                promise.fail(Self.clientError(error))
            } else if let result = object["result"] {
                promise.succeed(result)
            } else {
                promise.fail(ContactdClientError.badResponse("reply has neither result nor error"))
            }
            return
        }
        do {
            // An error with id null (overloaded, request too large, …) concerns the connection as
            // a whole, and the server closes it next: close it here first, so that no later call
            // is written to it, then fail every waiting call with it.
            if let error = object["error"] {
                let clientError = Self.clientError(error)
                connectionError = clientError
                refusal.record(clientError)
                context.close(promise: nil)
                failAll(clientError)
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(connectionError ?? .connectionClosed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(.connectionClosed)
        context.close(promise: nil)
    }

    private func failAll(_ error: ContactdClientError) {
        let waiting = pending
        pending = [:]
        for promise in waiting.values { promise.fail(error) }
    }

    private static func clientError(_ error: JSONValue) -> ContactdClientError {
        ContactdClientError(
            code: error["code"]?.intValue,
            reason: error["data"]?["reason"]?.stringValue ?? "unknown",
            message: error["message"]?.stringValue ?? "unknown error",
            retryAfter: error["data"]?["retry_after"]?.doubleValue
        )
    }
}
