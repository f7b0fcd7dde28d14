import ContactdClient
import ContactdTestSupport
import FakeContactAPI
import Foundation
import Testing

/// The built `contactd` restarted over a `--snapshot-file` (the fd store path is proven under the
/// real systemd by .ci/systemd-e2e): a restart, a kill -9 after a periodic snapshot, a damaged
/// or foreign snapshot.
@Suite(.timeLimit(.minutes(2))) struct WarmRestartTests {
    static let token = "test-token"

    /// Starts a daemon against `api` with `arguments` and waits for READY=1; its socket, log and
    /// notify socket are in a directory of its own under `directory`.
    static func start(
        _ directory: String,
        _ name: String,
        api: FakeContactAPI,
        _ arguments: [String]
    ) async throws -> SpawnedDaemon {
        try FileManager.default.createDirectory(atPath: directory + "/" + name, withIntermediateDirectories: true)
        let daemon = try SpawnedDaemon(
            directory: directory + "/" + name,
            arguments: ["--api-url", api.baseURL] + arguments,
            environment: ["CONTACTD_API_TOKEN": token]
        )
        do {
            _ = try await daemon.notify.waitFor("READY=1") { $0.split(separator: "\n").contains("READY=1") }
        } catch {
            await daemon.stop()
            throw TestSupportError("contactd did not get ready: \(error)\n\(daemon.log)")
        }
        return daemon
    }

    static func stop(_ daemon: SpawnedDaemon) async throws {
        daemon.signal(SIGTERM)
        #expect(try await daemon.waitForExit() == 0)
        await daemon.stop()
    }

    /// Looks each of `numbers` up on one connection; returns the replies' cache statuses and ages.
    static func lookUp(_ numbers: [String], on socket: String) async throws -> [(status: String, age: Double)] {
        let connection = try await ContactdConnection.connect(socketPath: socket)
        var replies: [(String, Double)] = []
        for number in numbers {
            do {
                let reply = try await connection.contact(phoneNumber: number)
                replies.append((reply.cacheStatus.description, reply.age))
            } catch let error as ContactdClientError where error.reason == "not_found" {
                replies.append(("not_found", -1))
            }
        }
        await connection.close()
        return replies
    }

    static let known = (0..<40).map(BenchContacts.phone)
    static let unknown = ["+442071234567", "+442071234568"]

    @Test func aRestartAnswersFromTheSnapshotWithAgesKeptAndNoAPICall() async throws {
        try await withTemporaryDirectory { directory in
            let api = try await FakeContactAPI.start(expectedToken: Self.token, generate: BenchContacts.generate)
            let snapshot = directory + "/cache.snapshot"
            let arguments = ["--snapshot-file", snapshot, "--snapshot-interval", "0"]
            let first = try await Self.start(directory, "first", api: api, arguments)
            let lookupsStarted = ContinuousClock.now
            let misses = try await Self.lookUp(Self.known + Self.unknown, on: first.socketPath)
            let lookupsEnded = ContinuousClock.now
            #expect(misses.allSatisfy { $0.status == "miss" || $0.status == "not_found" })
            let callsBefore = api.calls
            #expect(callsBefore == Self.known.count + Self.unknown.count)
            try await Self.stop(first)
            #expect(first.log.contains("cache snapshot written"), "\(first.log)")

            var status = stat()
            #expect(stat(snapshot, &status) == 0)
            #expect(status.st_mode & 0o777 == 0o600, "the snapshot holds personal data: owner only")

            // Ages are whole seconds on the wire: let more than two pass, so that an age that did
            // not run on across the restart (or started again at 0) shows.
            try await Task.sleep(until: lookupsEnded + .milliseconds(2200))
            let second = try await Self.start(directory, "second", api: api, arguments)
            #expect(second.log.contains("cache restored from snapshot"), "\(second.log)")
            #expect(second.log.contains("snapshot.entries=42"), "\(second.log)")
            let hits = try await Self.lookUp(Self.known + Self.unknown, on: second.socketPath)
            let upper = (ContinuousClock.now - lookupsStarted) / .seconds(1)
            for (number, reply) in zip(Self.known, hits) {
                #expect(reply.status == "hit", "\(number)")
                #expect(reply.age >= 2 && reply.age <= upper, "\(number): age \(reply.age), at most \(upper)")
            }
            #expect(hits.suffix(2).allSatisfy { $0.status == "not_found" })
            #expect(api.calls == callsBefore, "answered from the snapshot without calling the API")
            try await Self.stop(second)
            await api.shutdown()
        }
    }

    @Test func aKilledDaemonComesBackWithItsLastPeriodicSnapshot() async throws {
        try await withTemporaryDirectory { directory in
            let api = try await FakeContactAPI.start(expectedToken: Self.token, generate: BenchContacts.generate)
            let snapshot = directory + "/cache.snapshot"
            let arguments = ["--snapshot-file", snapshot, "--snapshot-interval", "200ms", "--log-level", "debug"]
            let first = try await Self.start(directory, "first", api: api, arguments)
            _ = try await Self.lookUp(Self.known, on: first.socketPath)
            // The next periodic snapshot after the lookups holds all of them.
            let written = first.log.components(separatedBy: "cache snapshot written").count
            try await eventually("a periodic snapshot after the lookups", within: .seconds(20)) {
                first.log.components(separatedBy: "snapshot.entries=40").count > 1
                    && first.log.components(separatedBy: "cache snapshot written").count > written
            }
            first.signal(SIGKILL)
            _ = try await first.waitForExit()
            await first.stop()

            let calls = api.calls
            let second = try await Self.start(directory, "second", api: api, arguments)
            let hits = try await Self.lookUp(Self.known, on: second.socketPath)
            #expect(hits.allSatisfy { $0.status == "hit" }, "\(hits)")
            #expect(api.calls == calls)
            try await Self.stop(second)
            await api.shutdown()
        }
    }

    /// A daemon that looked the known numbers up and wrote its snapshot file on stop; `body` gets
    /// the directory, the API, the file and the arguments that name it.
    static func withWrittenSnapshot(
        _ body: (String, FakeContactAPI, String, [String]) async throws -> Void
    ) async throws {
        try await withTemporaryDirectory { directory in
            let api = try await FakeContactAPI.start(expectedToken: Self.token, generate: BenchContacts.generate)
            let snapshot = directory + "/cache.snapshot"
            let arguments = ["--snapshot-file", snapshot, "--snapshot-interval", "0"]
            let first = try await Self.start(directory, "first", api: api, arguments)
            _ = try await Self.lookUp(Self.known, on: first.socketPath)
            try await Self.stop(first)
            try await body(directory, api, snapshot, arguments)
        }
    }

    @Test(arguments: ["damaged", "truncated", "garbage", "another API"])
    func aSnapshotThatCannotBeUsedIsIgnoredWithOneLogLine(kind: String) async throws {
        try await Self.withWrittenSnapshot { directory, api, snapshot, arguments in
            var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: snapshot)))
            var otherAPI: FakeContactAPI?
            switch kind {
            case "damaged": bytes[bytes.count / 2] ^= 0x20
            case "truncated": bytes.removeLast(bytes.count / 3)
            case "garbage": bytes = Array("not a snapshot at all\n".utf8)
            default:
                otherAPI = try await FakeContactAPI.start(expectedToken: Self.token, generate: BenchContacts.generate)
            }
            try Data(bytes).write(to: URL(fileURLWithPath: snapshot))

            let second = try await Self.start(directory, "second", api: otherAPI ?? api, arguments)
            let lines = second.log.split(separator: "\n").filter { $0.contains("snapshot") }
            #expect(lines.count == 1, "\(lines)")
            #expect(lines.first?.contains("cache snapshot ignored") == true, "\(lines)")
            let replies = try await Self.lookUp(Array(Self.known.prefix(3)), on: second.socketPath)
            #expect(replies.allSatisfy { $0.status == "miss" }, "an ignored snapshot restores nothing")
            try await Self.stop(second)
            await api.shutdown()
            await otherAPI?.shutdown()
        }
    }

    /// Issue #23, item 10: a snapshot file the daemon cannot trust is not read: a FIFO (which
    /// blocked the start before READY=1), a file others may write, a file of another user. The
    /// daemon starts cold with one line saying why.
    @Test(arguments: ["fifo", "mode 0666"])
    func anUntrustedSnapshotFileIsNotRead(kind: String) async throws {
        try await untrustedSnapshotFileIsNotRead(kind: kind)
    }

    @Test(.enabled(if: getuid() == 0, "giving the snapshot file to another user needs root"))
    func aSnapshotFileOfAnotherUserIsNotRead() async throws {
        try await untrustedSnapshotFileIsNotRead(kind: "another owner")
    }

    func untrustedSnapshotFileIsNotRead(kind: String) async throws {
        try await Self.withWrittenSnapshot { directory, api, snapshot, arguments in
            switch kind {
            case "fifo":
                unlink(snapshot)
                #expect(mkfifo(snapshot, 0o600) == 0)
            case "mode 0666":
                #expect(chmod(snapshot, 0o666) == 0)
            default:
                #expect(chown(snapshot, 65534, 65534) == 0)
            }
            let second = try await Self.start(directory, "second", api: api, arguments)
            let lines = second.log.split(separator: "\n").filter { $0.contains("snapshot not restored") }
            #expect(lines.count == 1, "\(second.log)")
            #expect(lines.first?.contains("not one contactd trusts") == true, "\(lines)")
            let replies = try await Self.lookUp(Array(Self.known.prefix(3)), on: second.socketPath)
            #expect(replies.allSatisfy { $0.status == "miss" }, "nothing restored from it")
            try await Self.stop(second)
            await api.shutdown()
        }
    }
}
