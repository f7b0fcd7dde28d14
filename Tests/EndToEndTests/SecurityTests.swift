import ContactdTestSupport
import FakeContactAPI
import Foundation
import Testing

/// Who may connect, what reaches the logs, and where the daemon refuses to put its socket.
@Suite(.timeLimit(.minutes(2))) struct SecurityTests {
    /// Runs contactctl as the unprivileged user 65534 (nobody), through util-linux's setpriv.
    func contactctlAsNobody(_ arguments: [String]) async throws -> CommandResult {
        try await runCommand(
            URL(fileURLWithPath: "/usr/bin/setpriv"),
            ["--reuid=65534", "--regid=65534", "--clear-groups", try builtProductURL("contactctl").path] + arguments
        )
    }

    static let allowCases: [([String], Int32)] = [
        (["--allow-uid", "1000"], 77), (["--allow-uid", "1000,65534"], 0), (["--allow-gid", "65534"], 0),
    ]

    @Test(arguments: allowCases)
    func peersAreCheckedAgainstTheAllowLists(allow: [String], expected: Int32) async throws {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else {
            print("skipped: needs root and /usr/bin/setpriv to connect as another user")
            return
        }
        try await withTemporaryDirectory { dir in
            chmod(dir, 0o755)
            let daemon = try SpawnedDaemon(directory: dir, arguments: ["--demo", "--socket-mode", "0666"] + allow)
            defer { Task { await daemon.stop() } }
            _ = try await daemon.notify.waitFor("READY=1") { $0.contains("READY=1") }
            let result = try await contactctlAsNobody(["--socket", daemon.socketPath, "ping"])
            #expect(result.status == expected, "\(result.stderr)")
            if expected == 77 {
                #expect(result.stderr.contains("forbidden"))
                daemon.signal(SIGTERM)
                _ = try await daemon.waitForExit()
                #expect(daemon.log.contains("refused a peer"))
                #expect(daemon.log.contains("peer.uid=65534"))
            }
            // Root is always let in.
            #expect(
                try await runProduct("contactctl", ["--socket", daemon.socketPath, "ping"]).status
                    == (expected == 77 ? 69 : 0)
            )
        }
    }

    @Test func phoneNumbersAreMaskedInLogsUnlessAskedOtherwise() async throws {
        for clear in [false, true] {
            try await withTemporaryDirectory { dir in
                let daemon = try SpawnedDaemon(
                    directory: dir,
                    arguments: ["--demo", "--log-level", "trace"] + (clear ? ["--log-personal-data"] : [])
                )
                defer { Task { await daemon.stop() } }
                _ = try await daemon.notify.waitFor("READY=1") { $0.contains("READY=1") }
                _ = try await runProduct("contactctl", ["--socket", daemon.socketPath, "get", "+14155551234"])
                _ = try await runProduct("contactctl", ["--socket", daemon.socketPath, "get", "+19995550123"])
                daemon.signal(SIGTERM)
                _ = try await daemon.waitForExit()
                let log = daemon.log
                #expect(log.contains("looked up"))
                #expect(log.contains("+14155551234") == clear)
                #expect(log.contains("+19995550123") == clear)
                #expect(!log.contains("John Smith"))
                #expect(!log.contains("john@example.com"))
                if !clear { #expect(log.contains("+1415*****34")) }
            }
        }
    }

    @Test func refusesASocketInAWorldWritableNonStickyDirectory() async throws {
        try await withTemporaryDirectory { dir in
            let open = dir + "/open"
            try FileManager.default.createDirectory(atPath: open, withIntermediateDirectories: false)
            chmod(open, 0o777)
            let result = try await runProduct("contactd", ["--demo", "--socket", open + "/contactd.sock"])
            #expect(result.status == 78)
            #expect(result.stderr.contains("writable by everyone"))
        }
    }

    @Test func warnsWhenTheTokenFileIsReadableByOthers() async throws {
        try await withFakeAPI { api in
            try await withTemporaryDirectory { dir in
                let tokenFile = dir + "/token"
                try "test-token\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
                chmod(tokenFile, 0o644)
                let daemon = try SpawnedDaemon(
                    directory: dir,
                    arguments: ["--api-url", api.baseURL, "--token-file", tokenFile]
                )
                defer { Task { await daemon.stop() } }
                _ = try await daemon.notify.waitFor("READY=1") { $0.contains("READY=1") }
                daemon.signal(SIGTERM)
                #expect(try await daemon.waitForExit() == 0)
                #expect(daemon.log.contains("token file is readable by other users"))
                #expect(!daemon.log.contains("test-token"))
            }
        }
    }
}
