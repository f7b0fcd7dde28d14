import ChildProcess
import ContactdTestSupport
import Foundation
import Testing

/// The daemon's side of the systemd protocols, checked on the spawned binary.
@Suite(.timeLimit(.minutes(2))) struct SystemdNotifyTests {
    @Test func readyCarriesAStatusLineAPersonCanRead() async throws {
        try await withTemporaryDirectory { dir in
            try await withSpawnedDaemon(
                directory: dir,
                arguments: ["--demo"],
                waitForReady: false
            ) { daemon in
                let ready = try await daemon.notify.waitFor("READY=1") { $0.contains("READY=1") }
                #expect(ready.contains("STATUS=Serving; 0 cached"))
                daemon.signal(SIGTERM)
                #expect(try await daemon.waitForExit() == 0)
                let stopping = try #require(daemon.notify.received.first { $0.contains("STOPPING=1") })
                #expect(stopping.contains("STATUS="))
                #expect(daemon.notify.received.contains { $0.contains("EXTEND_TIMEOUT_USEC=") })
            }
        }
    }

    @Test func watchdogIsPingedAtHalfTheIntervalAndStopsWhenTheProcessIsFrozen() async throws {
        try await withTemporaryDirectory { dir in
            try await withSpawnedDaemon(
                directory: dir,
                arguments: ["--demo"],
                environment: ["WATCHDOG_USEC": "400000"]
            ) { daemon in
                let isPing: @Sendable (String) -> Bool = { $0 == "WATCHDOG=1" }
                let start = ContinuousClock.now
                _ = try await daemon.notify.waitFor(count: 4, "4 watchdog pings", where: isPing)
                let elapsed = ContinuousClock.now - start
                // Pings every 200 ms: four take at least 0.4 s after READY and well under the 2 s here.
                #expect(elapsed < .seconds(2))
                // Frozen, the daemon sends nothing; thawed, it pings again.
                daemon.signal(SIGSTOP)
                let frozenAt = daemon.notify.received.filter(isPing).count
                try await Task.sleep(for: .milliseconds(800))
                #expect(daemon.notify.received.filter(isPing).count <= frozenAt + 1)
                daemon.signal(SIGCONT)
                _ = try await daemon.notify.waitFor(count: frozenAt + 2, "pings after SIGCONT", where: isPing)
                daemon.signal(SIGTERM)
                #expect(try await daemon.waitForExit() == 0)
            }
        }
    }

    @Test func failingStartReportsErrnoAndStatusBeforeExit78() async throws {
        try await withTemporaryDirectory { dir in
            // No token anywhere: the start fails.
            try await withSpawnedDaemon(directory: dir, arguments: [], waitForReady: false) { daemon in
                #expect(try await daemon.waitForExit() == 78)
                let failure = try #require(daemon.notify.received.first { $0.contains("ERRNO=") })
                #expect(failure.contains("STATUS=Failed: no API token"))
            }
        }
    }

    @Test(.enabled(if: TestTools.hasSocketActivate, "needs /usr/bin/systemd-socket-activate (Debian package systemd)"))
    func socketActivationServesTheInheritedSocketAndNeverUnlinksIt() async throws {
        try await withTemporaryDirectory { dir in
            let socketPath = dir + "/activated.sock"
            let notify = try NotifySocket(path: dir + "/notify.sock")
            defer { notify.close() }
            let activator = try ChildProcess(
                "/usr/bin/systemd-socket-activate",
                [
                    "--listen=\(socketPath)", "-E", "NOTIFY_SOCKET=\(notify.path)",
                    try builtProductURL("contactd").path, "--demo", "--socket", dir + "/unused.sock",
                ],
                environment: ["PATH": "/usr/bin:/bin"],
                stdout: .file("/dev/null"),
                stderr: .file("/dev/null")
            )
            defer { if activator.isRunning { activator.signal(SIGKILL) } }
            // systemd-socket-activate binds before it forks; wait for the file, then connect:
            // the first connection starts contactd, which serves the inherited socket.
            let connection = try await eventually("systemd-socket-activate listening") {
                try await RawSocketClient.connect(socketPath)
            }
            try await connection.send(
                #"{"id":1,"method":"contact.get","params":{"phone_number":"+14155551234"}}"# + "\n"
            )
            let reply = try #require(try await connection.readLine())
            #expect(reply.contains("John Smith"))
            _ = try await notify.waitFor("READY=1") { $0.contains("READY=1") }
            #expect(!FileManager.default.fileExists(atPath: dir + "/unused.sock"))
            await connection.close()
            activator.signal(SIGTERM)
            #expect(await activator.status() == 0)
            #expect(FileManager.default.fileExists(atPath: socketPath), "contactd unlinked a socket it did not create")
        }
    }
}
