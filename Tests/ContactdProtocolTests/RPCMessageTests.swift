import ContactdJSON
import ContactdProtocol
import Testing

@Suite struct RPCMessageTests {
    func decode(_ text: String) -> RPCMessage { RPCMessage.decode(Array(text.utf8), maxBatch: 3) }

    @Test func decodesARequestWithOrWithoutTheVersion() {
        let expected = RPCRequest(id: .number("1"), method: "daemon.ping")
        #expect(decode(#"{"jsonrpc":"2.0","id":1,"method":"daemon.ping"}"#) == .single(.request(expected)))
        #expect(decode(#"{"id":1,"method":"daemon.ping"}"#) == .single(.request(expected)))
    }

    @Test func missingIDIsANotificationAndNullIDIsARequest() {
        guard case .single(.request(let notification)) = decode(#"{"method":"daemon.ping"}"#) else {
            Issue.record("not a request")
            return
        }
        #expect(notification.isNotification)
        guard case .single(.request(let request)) = decode(#"{"id":null,"method":"daemon.ping"}"#) else {
            Issue.record("not a request")
            return
        }
        #expect(request.id == .null)
        #expect(!request.isNotification)
    }

    @Test(arguments: [
        ("not json", "parse_error"),
        ("[]", "invalid_request"),
        (#"[{"method":"a"},{"method":"b"},{"method":"c"},{"method":"d"}]"#, "batch_too_large"),
    ])
    func wholeMessageFailures(text: String, reason: String) {
        guard case .failure(let error) = decode(text) else {
            Issue.record("expected a failure for \(text)")
            return
        }
        #expect(error.reason == reason)
    }

    @Test func invalidUTF8IsAParseError() {
        guard case .failure(let error) = RPCMessage.decode([0x7B, 0x22, 0xFF, 0x22, 0x3A, 0x31, 0x7D]) else {
            Issue.record("expected failure")
            return
        }
        #expect(error.code == -32700)
    }

    @Test(arguments: [
        ("5", JSONValue.null),
        (#""x""#, .null),
        (#"{"id":1}"#, .number("1")),
        (#"{"id":1,"method":5}"#, .number("1")),
        (#"{"id":"a","jsonrpc":"1.0","method":"m"}"#, .string("a")),
        (#"{"id":2,"method":"m","params":"x"}"#, .number("2")),
        (#"{"id":[1],"method":"m"}"#, .null),
        (#"{"id":{},"method":"m"}"#, .null),
    ])
    func invalidRequestsEchoTheirIDWhenUsable(text: String, id: JSONValue) {
        guard case .single(.invalid(let replyID, let error)) = decode(text) else {
            Issue.record("expected invalid for \(text)")
            return
        }
        #expect(error.code == -32600)
        #expect(error.reason == "invalid_request")
        #expect(replyID == id)
    }

    @Test func batchElementsAreCheckedOneByOne() {
        guard case .batch(let items) = decode(#"[{"id":1,"method":"a"}, 7, {"method":"b"}]"#) else {
            Issue.record("expected batch")
            return
        }
        #expect(items.count == 3)
        #expect(items[0] == .request(RPCRequest(id: .number("1"), method: "a")))
        if case .invalid(_, let error) = items[1] {
            #expect(error.reason == "invalid_request")
        } else {
            Issue.record("element 1")
        }
        #expect(items[2] == .request(RPCRequest(id: nil, method: "b")))
    }

    @Test func errorResponsesCarryCodeMessageAndReason() throws {
        let line = RPCResponse.failureLine(id: .string("q"), error: .rateLimited(retryAfter: 30))
        #expect(line.last == UInt8(ascii: "\n"))
        let value = try JSONParser.parse(line)
        #expect(value["jsonrpc"] == "2.0")
        #expect(value["id"] == "q")
        #expect(value["error"]?["code"] == .number("-32004"))
        #expect(value["error"]?["data"]?["reason"] == "rate_limited")
        #expect(value["error"]?["data"]?["retry_after"] == .number("30"))
        #expect(value["error"]?["message"]?.stringValue?.isEmpty == false)
    }

    @Test func openRPCDocumentIsValidJSONListingEveryMethod() throws {
        let document = try JSONParser.parse(Array(OpenRPCDocument.json.utf8))
        let names = document["methods"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
        #expect(Set(names) == Set(RPCMethod.allCases.map(\.rawValue)))
    }
}
