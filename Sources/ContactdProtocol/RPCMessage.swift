import ContactdJSON

/// One JSON-RPC request as received. `id == nil` means a notification (no reply).
public struct RPCRequest: Sendable, Hashable {
    /// The request id to echo, or `nil` for a notification. `.null` is a real id.
    public var id: JSONValue?
    public var method: String
    /// `params` if present: an object or an array.
    public var params: JSONValue?

    public init(id: JSONValue?, method: String, params: JSONValue? = nil) {
        self.id = id
        self.method = method
        self.params = params
    }

    /// Whether the sender expects no reply.
    public var isNotification: Bool { id == nil }
}

/// One element of an incoming message: a usable request, or an error to reply with.
public enum RPCItem: Sendable, Hashable {
    case request(RPCRequest)
    /// A malformed element; reply with this error and `id` (null when unknown).
    case invalid(id: JSONValue, error: RPCError)
}

/// An incoming line, decoded.
public enum RPCMessage: Sendable, Hashable {
    case single(RPCItem)
    case batch([RPCItem])
    /// Unusable as a whole (parse error, empty batch, batch too large): one error reply, `id` null.
    case failure(RPCError)

    /// Decodes one line (without its newline) into requests.
    ///
    /// Every path that input can reach ends in a value, never a trap: invalid UTF-8 and invalid
    /// JSON give `parse_error`; a non-object, a bad `jsonrpc`, `method` or `params` give
    /// `invalid_request` with the request's id when it had a usable one.
    public static func decode(_ line: some Collection<UInt8>, maxBatch: Int = 1000) -> RPCMessage {
        let value: JSONValue
        do {
            value = try JSONParser.parse(line)
        } catch {
            return .failure(.parseError(error.description))
        }
        switch value {
        case .array(let elements):
            guard !elements.isEmpty else { return .failure(.invalidRequest("empty batch")) }
            guard elements.count <= maxBatch else { return .failure(.batchTooLarge(limit: maxBatch)) }
            return .batch(elements.map(item(from:)))
        default:
            return .single(item(from: value))
        }
    }

    /// Checks one request object against JSON-RPC 2.0 (with `jsonrpc` optional, SPEC §3).
    public static func item(from value: JSONValue) -> RPCItem {
        guard case .object(let object) = value else {
            return .invalid(id: .null, error: .invalidRequest("expected a request object"))
        }
        let rawID = object["id"]
        // An id must be a string, a number or null; otherwise we cannot echo it meaningfully.
        var replyID: JSONValue = .null
        switch rawID {
        case .string?, .number?, .null?: replyID = rawID!
        case nil: break
        default:
            return .invalid(id: .null, error: .invalidRequest("id must be a string, a number or null"))
        }
        if let version = object["jsonrpc"], version != .string("2.0") {
            return .invalid(id: replyID, error: .invalidRequest("jsonrpc must be \"2.0\""))
        }
        guard case .string(let method)? = object["method"] else {
            return .invalid(id: replyID, error: .invalidRequest("method must be a string"))
        }
        let params = object["params"]
        switch params {
        case nil, .object?, .array?: break
        default:
            return .invalid(id: replyID, error: .invalidRequest("params must be an object or an array"))
        }
        return .request(RPCRequest(id: rawID, method: method, params: params))
    }
}

/// The JSON-RPC envelope of every reply the daemon writes (no newline; the connection adds it).
///
/// Its pieces are constants so that the daemon's hit path (`ContactReply`) writes the same
/// envelope straight into a connection's buffer, specialised for that buffer, without a generic
/// call per piece.
package enum RPCResponse {
    /// What every reply starts with; the id follows.
    package static let start: StaticString = #"{"jsonrpc":"2.0","id":"#
    /// Between the id and a success's result.
    package static let resultMember: StaticString = #","result":"#
    /// Between the id and an error object.
    package static let errorMember: StaticString = #","error":"#
    /// What every reply ends with.
    package static let end: StaticString = "}"

    /// `{"jsonrpc":"2.0","id":…,"result":…}` with `result` given as compact JSON bytes.
    package static func success(id: JSONValue, rawResult: [UInt8], into out: inout some ReplySink) {
        out.append(start)
        withIDToken(id) { out.append($0) }
        out.append(resultMember)
        out.append(rawResult)
        out.append(end)
    }

    /// `{"jsonrpc":"2.0","id":…,"result":…}`.
    package static func success(id: JSONValue, result: JSONValue, into out: inout some ReplySink) {
        success(id: id, rawResult: result.jsonBytes, into: &out)
    }

    /// `{"jsonrpc":"2.0","id":…,"error":{…}}`.
    package static func failure(id: JSONValue, error: RPCError, into out: inout some ReplySink) {
        out.append(start)
        withIDToken(id) { out.append($0) }
        out.append(errorMember)
        out.append(error.json.jsonBytes)
        out.append(end)
    }

    /// The error object for `id` as bytes.
    package static func failure(id: JSONValue, error: RPCError) -> [UInt8] {
        var out: [UInt8] = []
        failure(id: id, error: error, into: &out)
        return out
    }

    /// An error response line for `id`, newline included.
    package static func failureLine(id: JSONValue, error: RPCError) -> [UInt8] {
        var out = failure(id: id, error: error)
        out.append(UInt8(ascii: "\n"))
        return out
    }

    /// Calls `body` with `id` written as JSON: a number's digits as the client spelled them
    /// (nothing to encode), anything else encoded.
    package static func withIDToken<Result>(_ id: JSONValue, _ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        if case .number(var digits) = id {
            return digits.withUTF8 { body(UnsafeRawBufferPointer($0)) }
        }
        var token: [UInt8] = []
        id.write(into: &token)
        return token.withUnsafeBytes(body)
    }
}
