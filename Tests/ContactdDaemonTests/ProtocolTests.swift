import ContactdJSON
import ContactdTestSupport
import FakeContactAPI
import Testing

@Suite(.timeLimit(.minutes(1))) struct ProtocolTests {
    @Test(arguments: [
        (#"{"id":1,"method":"contact.get","params":{"phone_number":"12345"}}"#, "invalid_phone_number"),
        (#"{"id":1,"method":"contact.get","params":{"phone_number":"+0123"}}"#, "invalid_phone_number"),
        (
            #"{"id":1,"method":"contact.get","params":{"phone_number":"+1\#(String(repeating: " ", count: 130))5"}}"#,
            "invalid_phone_number"
        ),
        (#"{"id":1,"method":"contact.get","params":{"contact_id":""}}"#, "invalid_contact_id"),
        (
            #"{"id":1,"method":"contact.get","params":{"contact_id":"\#(String(repeating: "a", count: 129))"}}"#,
            "invalid_contact_id"
        ),
        (#"{"id":1,"method":"contact.get","params":{"contact_id":"a b"}}"#, "invalid_contact_id"),
        (#"{"id":1,"method":"contact.get","params":{}}"#, "invalid_params"),
        (#"{"id":1,"method":"contact.get"}"#, "invalid_params"),
        (#"{"id":1,"method":"contact.get","params":["+14155551234"]}"#, "invalid_params"),
        (
            #"{"id":1,"method":"contact.get","params":{"phone_number":"+14155551234","contact_id":"x"}}"#,
            "invalid_params"
        ),
        (#"{"id":1,"method":"contact.get","params":{"phone_number":14155551234}}"#, "invalid_params"),
        (#"{"id":1,"method":"contact.get","params":{"phone_number":"+14155551234","max_age":-1}}"#, "invalid_params"),
        (#"{"id":1,"method":"contact.get","params":{"phone_number":"+14155551234","max_age":"5"}}"#, "invalid_params"),
        (#"{"id":1,"method":"contact.get","params":{"phone":"+14155551234"}}"#, "invalid_params"),
        (#"{"id":1,"method":"contact.invalidate","params":{"all":false}}"#, "invalid_params"),
        (#"{"id":1,"method":"contact.invalidate","params":{"all":true,"contact_id":"x"}}"#, "invalid_params"),
        (#"{"id":1,"method":"cache.stats","params":{"x":1}}"#, "invalid_params"),
        (#"{"id":1,"method":"contact.fetch"}"#, "method_not_found"),
        (#"{"id":1,"method":5}"#, "invalid_request"),
        (#"{"id":1,"jsonrpc":"1.0","method":"daemon.ping"}"#, "invalid_request"),
        (#"[]"#, "invalid_request"),
        (#"42"#, "invalid_request"),
        (#"{"id":1,"method":"daemon.ping""#, "parse_error"),
        (#"{'id':1}"#, "parse_error"),
    ])
    func badRequestsGetTheSpecifiedError(line: String, reason: String) async throws {
        try await withFakeAPI { api in
            try await withDaemon(api: api) { daemon in
                let client = try await RawSocketClient.connect(daemon.socketPath)
                let reply = try await roundTrip(client, line)
                #expect(reply["jsonrpc"] == "2.0")
                #expect(reply.errorReason == reason)
                let codes = [
                    "invalid_phone_number": -32602, "invalid_contact_id": -32602, "invalid_params": -32602,
                    "method_not_found": -32601, "invalid_request": -32600, "parse_error": -32700,
                ]
                #expect(reply.errorCode == codes[reason])
                // The connection stays usable.
                #expect(try await roundTrip(client, #"{"id":2,"method":"daemon.ping"}"#)["result"] == "pong")
                #expect(api.calls == 0)
                await client.close()
            }
        }
    }

    @Test func idsAreEchoedExactly() async throws {
        try await withFakeAPI { api in
            try await withDaemon(api: api) { daemon in
                let client = try await RawSocketClient.connect(daemon.socketPath)
                for id in [#""abc""#, "1.50", "null", "-7", "1e3", #""ü\n""#] {
                    try await client.send(#"{"jsonrpc":"2.0","id":\#(id),"method":"daemon.ping"}"# + "\n")
                    let line = try #require(try await client.readLine())
                    #expect(line == #"{"jsonrpc":"2.0","id":\#(id),"result":"pong"}"#)
                }
                await client.close()
            }
        }
    }

    @Test func batchGetsOneArrayWithoutNotificationReplies() async throws {
        try await withFakeAPI { api in
            try await withDaemon(api: api) { daemon in
                let client = try await RawSocketClient.connect(daemon.socketPath)
                let batch = """
                    [{"id":1,"method":"daemon.ping"},{"method":"daemon.ping"},\(getPhone(johnPhone, id: 2)),5,\
                    {"id":3,"method":"nope"}]
                    """
                let reply = try await roundTrip(client, batch)
                let items = try #require(reply.arrayValue)
                #expect(items.count == 4)
                #expect(items[0]["result"] == "pong")
                #expect(items[1].cacheStatus == "miss")
                #expect(items[2].errorReason == "invalid_request")
                #expect(items[3].errorReason == "method_not_found")
                // A batch of notifications only gets no reply: the next line answers the ping.
                try await client.send(#"[{"method":"daemon.ping"},{"method":"cache.stats"}]"# + "\n")
                #expect(try await roundTrip(client, #"{"id":9,"method":"daemon.ping"}"#)["id"] == .number("9"))
                await client.close()
            }
        }
    }

    @Test func aSlowMissDoesNotHoldBackAHitBehindIt() async throws {
        try await withFakeAPI { api in
            try await withDaemon(api: api) { daemon in
                let client = try await RawSocketClient.connect(daemon.socketPath)
                _ = try await roundTrip(client, getPhone(johnPhone))  // warm
                api.hold()
                try await client.send(getPhone("+442079460958", id: 10) + "\n" + getPhone(johnPhone, id: 11) + "\n")
                let first = try JSONParser.parse(Array(#require(try await client.readLine()).utf8))
                #expect(first["id"] == .number("11"))
                #expect(first.cacheStatus == "hit")
                api.release()
                let second = try JSONParser.parse(Array(#require(try await client.readLine()).utf8))
                #expect(second["id"] == .number("10"))
                #expect(second.cacheStatus == "miss")
                await client.close()
            }
        }
    }

    @Test func statusStatsPingAndDiscoverAnswer() async throws {
        try await withFakeAPI { api in
            try await withDaemon(api: api) { daemon in
                let client = try await RawSocketClient.connect(daemon.socketPath)
                let status = try await roundTrip(client, #"{"id":1,"method":"daemon.status"}"#)["result"]
                #expect(status?["version"]?.stringValue?.isEmpty == false)
                #expect(status?["ready"] == true)
                #expect(status?["connections"] == .number("1"))
                #expect(status?["uptime"]?.doubleValue != nil)
                let stats = try await roundTrip(client, #"{"id":2,"method":"cache.stats","params":{}}"#)["result"]
                for key in ["entries", "bytes", "held_bytes", "hits", "misses", "evictions"] {
                    #expect(stats?[key]?.intValue == 0)
                }
                #expect(stats?["upstream"]?["in_flight"]?.intValue == 0)
                #expect(try await roundTrip(client, getPhone(johnPhone)).cacheStatus == "miss")
                let filled = try await roundTrip(client, #"{"id":5,"method":"cache.stats"}"#)["result"]
                let bytes = try #require(filled?["bytes"]?.intValue)
                let held = try #require(filled?["held_bytes"]?.intValue)
                #expect(bytes > 0 && held > 0, "bytes \(bytes), held \(held)")
                #expect(try await roundTrip(client, #"{"id":3,"method":"daemon.ping"}"#)["result"] == "pong")
                let discover = try await roundTrip(client, #"{"id":4,"method":"rpc.discover"}"#)["result"]
                #expect(discover?["openrpc"]?.stringValue == "1.2.6")
                await client.close()
            }
        }
    }
}
