import ContactdClient
import ContactdJSON
import ContactdTestSupport
import Foundation
import Testing

/// `ContactdSession` rides through a daemon restart: the call after it reconnects and succeeds.
@Suite(.timeLimit(.minutes(1))) struct SessionTests {
    @Test func aSessionReconnectsAfterTheDaemonRestarts() async throws {
        try await withTemporaryDirectory { dir in
            let socket = dir + "/contactd.sock"
            let session = ContactdSession(socketPath: socket, timeout: .seconds(5))
            try FileManager.default.createDirectory(atPath: dir + "/a", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: dir + "/b", withIntermediateDirectories: true)
            let first = try SpawnedDaemon(directory: dir + "/a", arguments: ["--demo", "--socket", socket])
            _ = try await first.notify.waitFor("READY=1") { $0.contains("READY=1") }
            let before = try await session.contact(phoneNumber: "+14155551234")
            #expect(before.cacheStatus == .miss)
            first.signal(SIGTERM)
            #expect(try await first.waitForExit() == 0)
            await first.stop()

            let second = try SpawnedDaemon(directory: dir + "/b", arguments: ["--demo", "--socket", socket])
            _ = try await second.notify.waitFor("READY=1") { $0.contains("READY=1") }
            // The session's connection died with the first daemon: this call reconnects.
            let after = try await session.contact(phoneNumber: "+14155551234")
            #expect(after.contact["name"]?.stringValue == "John Smith")
            try await session.ping()
            await session.close()
            second.signal(SIGTERM)
            #expect(try await second.waitForExit() == 0)
            await second.stop()
        }
    }

    @Test func aSessionWithNoDaemonGivesUpAtItsTimeout() async throws {
        try await withTemporaryDirectory { dir in
            let session = ContactdSession(socketPath: dir + "/none.sock", timeout: .milliseconds(300))
            let started = ContinuousClock.now
            await #expect {
                try await session.ping()
            } throws: { error in
                (error as? ContactdClientError)?.reason == "connection_failed"
            }
            #expect(started.duration(to: .now) < .seconds(2))
        }
    }
}
