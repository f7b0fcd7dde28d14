import ContactdTestSupport
import HTTPResponder
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

/// The one HTTP server the metrics listener, `--demo`'s API and the fake API answer through:
/// pipelined requests are answered in the order asked even when an earlier answer comes later,
/// `HEAD` gets no body, and `.reset` ends the connection.
@Suite(.timeLimit(.minutes(1))) struct HTTPResponderTests {
    func withResponder(_ body: (String) async throws -> Void) async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/http.sock"
            let channel = try await HTTPResponder.bootstrap { request, eventLoop in
                switch request.path {
                case "/later":
                    // Answered after the request behind it on the same connection was read.
                    eventLoop.scheduleTask(in: .milliseconds(50)) { HTTPResponder.Answer.text(.ok, "later\n") }
                        .futureResult
                case "/reset": eventLoop.makeSucceededFuture(.reset)
                default: eventLoop.makeSucceededFuture(.text(.ok, "now \(request.body.readableBytes)\n"))
                }
            }
            .bind(unixDomainSocketPath: path)
            .get()
            do {
                try await body(path)
            } catch {
                try? await channel.close()
                throw error
            }
            try await channel.close()
        }
    }

    @Test func pipelinedRepliesKeepTheOrderAsked() async throws {
        try await withResponder { path in
            let client = try await RawSocketClient.connect(path)
            try await client.send(
                "GET /later HTTP/1.1\r\nHost: x\r\n\r\n"
                    + "POST /now HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                    + "HEAD /now HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            var lines: [String] = []
            while let line = try await client.readLine() { lines.append(line) }
            await client.close()
            let bodies = lines.filter { $0 == "later" || $0.hasPrefix("now") }
            #expect(bodies == ["later", "now 3"], "\(lines)")
            #expect(lines.filter { $0.hasPrefix("HTTP/1.1 200") }.count == 3, "\(lines)")
            #expect(lines.contains("Content-Length: 6\r") || lines.contains("Content-Length: 6"), "\(lines)")
        }
    }

    @Test func aResetEndsTheConnection() async throws {
        try await withResponder { path in
            let client = try await RawSocketClient.connect(path)
            try await client.send("GET /reset HTTP/1.1\r\nHost: x\r\n\r\n")
            let line = try? await client.readLine()
            #expect(line == nil)
            await client.close()
        }
    }
}
