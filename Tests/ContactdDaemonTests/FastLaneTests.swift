import ContactdDaemon
import ContactdJSON
import ContactdTestSupport
import FakeContactAPI
import Foundation
import Testing

/// The fast lane (`FastLane`): plain hits served by its own loops, everything else handed to NIO
/// with the connection, nothing lost or reordered on the way.
@Suite(.timeLimit(.minutes(1))) struct FastLaneTests {
    /// `daemon.status`'s `fast_path` object, asked on `client`.
    private func fastPath(_ client: RawSocketClient) async throws -> JSONValue {
        let status = try await roundTrip(client, #"{"id":"s","method":"daemon.status"}"#)
        return try #require(status["result"]?["fast_path"])
    }

    @Test func plainHitsStayOnTheFastLaneAndTheFirstOtherRequestHandsOver() async throws {
        try await withFakeAPI { api in
            try await withDaemon(api: api) { daemon in
                let a = try await RawSocketClient.connect(daemon.socketPath)
                #expect(try await roundTrip(a, getPhone(johnPhone)).cacheStatus == "miss")
                #expect(try await roundTrip(a, getPhone(unknownPhone)).errorReason == "not_found")
                var lane = try await fastPath(a)
                #expect(lane["enabled"] == .bool(true))
                #expect(lane["connections"] == .int(0))
                #expect(lane["handed_over"] == .int(1))

                let b = try await RawSocketClient.connect(daemon.socketPath)
                try await b.send((1...100).map { getPhone(johnPhone, id: $0) + "\n" }.joined())
                for (index, line) in try await b.readLines(100).enumerated() {
                    let reply = try JSONParser.parse(Array(line.utf8))
                    #expect(reply["id"] == .int(index + 1))
                    #expect(reply.cacheStatus == "hit")
                }
                // A known not-found is answered on the lane too.
                #expect(try await roundTrip(b, getPhone(unknownPhone)).errorReason == "not_found")
                #expect(try await roundTrip(b, getPhone(unknownPhone)).errorReason == "not_found")
                lane = try await fastPath(a)
                #expect(lane["connections"] == .int(1))
                #expect(lane["handed_over"] == .int(1))

                #expect(try await roundTrip(b, #"{"id":1,"method":"daemon.ping"}"#)["result"] == "pong")
                #expect(try await roundTrip(b, getPhone(johnPhone)).cacheStatus == "hit")
                lane = try await fastPath(a)
                #expect(lane["connections"] == .int(0))
                #expect(lane["handed_over"] == .int(2))
                await a.close()
                await b.close()
            }
        }
    }

    @Test func aHandOverInTheMiddleOfAReadKeepsEveryRequestAndTheRepliesBeforeIt() async throws {
        try await withFakeAPI { api in
            try await withDaemon(api: api) { daemon in
                let warm = try await RawSocketClient.connect(daemon.socketPath)
                #expect(try await roundTrip(warm, getPhone(johnPhone)).cacheStatus == "miss")
                await warm.close()

                let client = try await RawSocketClient.connect(daemon.socketPath)
                // Two hits, then a miss (another demo contact), a hit, a CRLF ping, an empty line
                // and half of a line: the lane answers the first two and hands the rest over.
                let otherPhone = "+442079460958"
                try await client.send(
                    getPhone(johnPhone, id: 1) + "\n" + getPhone(johnPhone, id: 2) + "\n"
                        + getPhone(otherPhone, id: 3) + "\n" + getPhone(johnPhone, id: 4) + "\r\n"
                        + #"{"id":5,"method":"daemon.ping"}"# + "\r\n\n" + #"{"id":6,"method":"daemon.pi"#
                )
                var replies = try await client.readLines(5).map { try JSONParser.parse(Array($0.utf8)) }
                #expect(replies[0]["id"] == .int(1))
                #expect(replies[1]["id"] == .int(2))
                try await client.send("ng\"}\n")
                replies.append(try JSONParser.parse(Array(#require(try await client.readLine()).utf8)))
                let byID = Dictionary(grouping: replies) { $0["id"]?.intValue ?? -1 }
                #expect(byID.keys.sorted() == [1, 2, 3, 4, 5, 6])
                #expect(byID.values.allSatisfy { $0.count == 1 })
                #expect(byID[3]?.first?.cacheStatus == "miss")
                #expect(byID[4]?.first?.cacheStatus == "hit")
                #expect(byID[5]?.first?["result"] == "pong")
                #expect(byID[6]?.first?["result"] == "pong")
                await client.close()
            }
        }
    }

    @Test func aClientThatDoesNotReadIsHandedOverWithItsUnwrittenReplies() async throws {
        try await withFakeAPI { api in
            try await withDaemon(api: api) { daemon in
                let warm = try await RawSocketClient.connect(daemon.socketPath)
                #expect(try await roundTrip(warm, getPhone(johnPhone)).cacheStatus == "miss")

                // About 3 MB of replies to 5,000 hits sent at once: far more than the socket's
                // buffer, so a write comes up short; reads also end in the middle of lines.
                let client = try await RawSocketClient.connect(daemon.socketPath)
                let count = 5000
                try await client.send((1...count).map { getPhone(johnPhone, id: $0) + "\n" }.joined())
                let lines = try await client.readLines(count, timeout: 30)
                let ids = try lines.map { try JSONParser.parse(Array($0.utf8))["id"]?.intValue ?? -1 }
                #expect(ids == Array(1...count))
                #expect(try await fastPath(warm)["handed_over"] == .int(2))
                await client.close()
                await warm.close()
            }
        }
    }

    @Test func aSilentConnectionOnTheFastLaneIsClosedAfterTheIdleTimeout() async throws {
        try await withFakeAPI { api in
            // 1 s, not less: the lane's idle clock starts at accept, and a loaded CI machine once
            // took 0.3 s between this test's connect and its first send.
            try await withDaemon(api: api, configure: { $0.limits.idleTimeout = .seconds(1) }) { daemon in
                let warm = try await RawSocketClient.connect(daemon.socketPath)
                #expect(try await roundTrip(warm, getPhone(johnPhone)).cacheStatus == "miss")
                let client = try await RawSocketClient.connect(daemon.socketPath)
                // Timed from before the request: the daemon's clock starts when it reads it.
                let start = ContinuousClock.now
                #expect(try await roundTrip(client, getPhone(johnPhone)).cacheStatus == "hit")
                #expect(try await client.readLine(timeout: 5) == nil)
                #expect(ContinuousClock.now - start >= .milliseconds(950))
                await client.close()
                await warm.close()
            }
        }
    }

    @Test func connectionsOnTheFastLaneCountAgainstTheLimit() async throws {
        try await withFakeAPI { api in
            try await withDaemon(api: api, configure: { $0.limits.maxConnections = 2 }) { daemon in
                let warm = try await RawSocketClient.connect(daemon.socketPath)
                #expect(try await roundTrip(warm, getPhone(johnPhone)).cacheStatus == "miss")
                let onLane = try await RawSocketClient.connect(daemon.socketPath)
                #expect(try await roundTrip(onLane, getPhone(johnPhone)).cacheStatus == "hit")
                let third = try await RawSocketClient.connect(daemon.socketPath)
                let refusal = try JSONParser.parse(Array(#require(try await third.readLine()).utf8))
                #expect(refusal.errorReason == "overloaded")
                #expect(try await third.readLine() == nil)
                await third.close()
                let status = try await roundTrip(warm, #"{"id":2,"method":"daemon.status"}"#)
                #expect(status["result"]?["connections"] == .int(2))
                #expect(status["result"]?["fast_path"]?["connections"] == .int(1))
                await onLane.close()
                await warm.close()
            }
        }
    }

    @Test func withTheFastPathOffEveryConnectionIsNIOs() async throws {
        try await withFakeAPI { api in
            try await withDaemon(api: api, configure: { $0.fastPath = false }) { daemon in
                let client = try await RawSocketClient.connect(daemon.socketPath)
                #expect(try await roundTrip(client, getPhone(johnPhone)).cacheStatus == "miss")
                #expect(try await roundTrip(client, getPhone(johnPhone)).cacheStatus == "hit")
                let other = try await RawSocketClient.connect(daemon.socketPath)
                #expect(try await roundTrip(other, getPhone(johnPhone)).cacheStatus == "hit")
                let lane = try await fastPath(client)
                #expect(lane["enabled"] == .bool(false))
                #expect(lane["connections"] == .int(0))
                #expect(lane["handed_over"] == .int(0))
                await other.close()
                await client.close()
            }
        }
    }

    @Test func connectionsThatEndOnTheFastLaneAreClosedOnTheDaemonsSide() async throws {
        try await withFakeAPI { api in
            try await withDaemon(api: api) { daemon in
                let warm = try await RawSocketClient.connect(daemon.socketPath)
                #expect(try await roundTrip(warm, getPhone(johnPhone)).cacheStatus == "miss")
                for i in 0..<60 {
                    let client = try await RawSocketClient.connect(daemon.socketPath)
                    switch i % 3 {
                    case 0: break
                    case 1: #expect(try await roundTrip(client, getPhone(johnPhone, id: i)).cacheStatus == "hit")
                    default: try await client.send(getPhone(johnPhone, id: i) + "\n" + #"{"id":1,"meth"#)
                    }
                    await client.close()
                }
                // The daemon's sockets on its path: the listener and `warm`'s end, once it has
                // seen the others hang up (nothing to await: the kernel's table is polled).
                try await eventually("only the listener and warm's end open") {
                    daemonSideSockets(daemon.socketPath) == 2
                }
                #expect(try await fastPath(warm)["connections"] == .int(0))
                await warm.close()
            }
        }
    }

    @Test func aDaemonStoppedWithConnectionsOnTheFastLaneClosesThemBeforeItReturns() async throws {
        try await withFakeAPI { api in
            let (path, clients) = try await withDaemon(api: api) { daemon in
                let warm = try await RawSocketClient.connect(daemon.socketPath)
                #expect(try await roundTrip(warm, getPhone(johnPhone)).cacheStatus == "miss")
                var clients = [warm]
                for _ in 0..<10 {
                    let client = try await RawSocketClient.connect(daemon.socketPath)
                    #expect(try await roundTrip(client, getPhone(johnPhone)).cacheStatus == "hit")
                    clients.append(client)
                }
                #expect(try await fastPath(warm)["connections"] == .int(10))
                #expect(daemonSideSockets(daemon.socketPath) == 12)
                return (daemon.socketPath, clients)
            }
            #expect(daemonSideSockets(path) == 0)
            for client in clients {
                #expect(try await client.readLine() == nil)
                await client.close()
            }
        }
    }
}

/// A well-formed number the fake API does not know.
private let unknownPhone = "+15550001111"

/// Sockets in this process's network namespace bound to `path`: the listener and the daemon's
/// end of every connection it accepted there (`/proc/net/unix` names them by the listener's path).
private func daemonSideSockets(_ path: String) -> Int {
    // Read to the end by hand: the file is generated page by page as it is read.
    let fd = open("/proc/net/unix", O_RDONLY)
    guard fd >= 0 else { return -1 }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { break }
        bytes += chunk[..<count]
    }
    let table = String(decoding: bytes, as: UTF8.self)
    return table.split(separator: "\n").filter { $0.hasSuffix(" " + path) }.count
}
