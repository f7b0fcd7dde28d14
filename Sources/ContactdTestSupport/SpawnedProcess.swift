import ChildProcess
import Foundation

/// Where `swift build` put the executables: beside the test bundle.
package func builtProductURL(_ name: String) throws -> URL {
    let directory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    let url = directory.appendingPathComponent(name)
    guard FileManager.default.isExecutableFile(atPath: url.path) else {
        throw TestSupportError("\(url.path) is missing: run `swift build` before `swift test`")
    }
    return url
}

/// The outcome of running a command to its end.
package struct CommandResult: Sendable {
    package let status: Int32
    package let stdout: String
    package let stderr: String

    package init(status: Int32, stdout: String, stderr: String) {
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
    }
}

/// Runs a built product to completion with `arguments` and `environment` (added to a minimal one).
package func runProduct(
    _ name: String,
    _ arguments: [String],
    environment: [String: String] = [:]
) async throws -> CommandResult {
    try await runCommand(builtProductURL(name), arguments, environment: environment)
}

/// What a spawned product starts with: a fixed `PATH`, plus the sanitizer options of this test
/// process (scripts/sanitizers turns LeakSanitizer off for Foundation's `Process`; an instrumented
/// child needs the same, or it exits 1 over the same toolchain allocations).
private let baseEnvironment: [String: String] = {
    var environment = ["PATH": "/usr/bin:/bin"]
    for name in ["ASAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS", "UBSAN_OPTIONS"] {
        if let value = ProcessInfo.processInfo.environment[name] { environment[name] = value }
    }
    return environment
}()

/// Runs any executable to completion without blocking a thread of the concurrency pool
/// (`Process.waitUntilExit` would: on 2 cores, two such waits stall every other test).
package func runCommand(
    _ executable: URL,
    _ arguments: [String],
    environment: [String: String] = [:]
) async throws -> CommandResult {
    let child = try ChildProcess(
        executable.path,
        arguments,
        environment: baseEnvironment.merging(environment) { $1 },
        stdout: .collect,
        stderr: .collect
    )
    let status = await child.status()
    return CommandResult(status: status, stdout: child.output(1), stderr: child.output(2))
}

/// A built `contactd` running as a child process, reporting to a test-owned notify socket.
package final class SpawnedDaemon: Sendable {
    package let process: ChildProcess
    package let notify: NotifySocket
    package let socketPath: String
    /// stderr of the daemon, collected to a file for assertions after exit.
    package let logPath: String

    /// Starts `contactd` with `arguments` in `directory`; its socket is `directory/contactd.sock`
    /// unless `arguments` name one. `descriptorLimit` starts it under that hard and soft
    /// `RLIMIT_NOFILE` (through util-linux's prlimit).
    package init(
        directory: String,
        arguments: [String],
        environment: [String: String] = [:],
        descriptorLimit: Int? = nil
    ) throws {
        socketPath = directory + "/contactd.sock"
        logPath = directory + "/contactd.log"
        notify = try NotifySocket(path: directory + "/notify.sock")
        var base = baseEnvironment
        base["NOTIFY_SOCKET"] = notify.path
        let contactd = try builtProductURL("contactd").path
        let arguments = arguments.contains("--socket") ? arguments : ["--socket", socketPath] + arguments
        process = try ChildProcess(
            descriptorLimit == nil ? contactd : "/usr/bin/prlimit",
            descriptorLimit.map { ["--nofile=\($0):\($0)", "--", contactd] + arguments } ?? arguments,
            environment: base.merging(environment) { $1 },
            stdout: .file(logPath),
            stderr: .file(logPath)
        )
    }

    /// Sends `signal` to the daemon.
    package func signal(_ signal: Int32) {
        process.signal(signal)
    }

    /// Waits for the daemon to exit; returns its status, or throws after `timeout` seconds.
    package func waitForExit(timeout: Double = 30) async throws -> Int32 {
        let process = self.process
        return try await withTimeout(seconds: timeout, "contactd did not exit within \(timeout)s") {
            await process.status()
        }
    }

    /// The daemon's log so far.
    package var log: String {
        (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    }

    /// Kills the daemon if it still runs and closes the notify socket.
    package func stop() async {
        if process.isRunning {
            process.signal(SIGKILL)
            _ = try? await waitForExit(timeout: 10)
        }
        notify.close()
    }
}

/// The result of `body`, or `TestSupportError(message)` after `seconds`; the loser is cancelled.
package func withTimeout<T: Sendable>(
    seconds: Double,
    _ message: String,
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
            throw TestSupportError(message)
        }
        let first = try await group.next()!
        group.cancelAll()
        return first
    }
}

/// Starts `contactd` (as `SpawnedDaemon.init`), waits for its READY=1 unless `waitForReady` is
/// false, runs `body`, and stops the daemon however `body` ends.
package func withSpawnedDaemon<T>(
    directory: String,
    arguments: [String],
    environment: [String: String] = [:],
    descriptorLimit: Int? = nil,
    waitForReady: Bool = true,
    _ body: (SpawnedDaemon) async throws -> T
) async throws -> T {
    let daemon = try SpawnedDaemon(
        directory: directory,
        arguments: arguments,
        environment: environment,
        descriptorLimit: descriptorLimit
    )
    do {
        if waitForReady { _ = try await daemon.notify.waitFor("READY=1") { $0.contains("READY=1") } }
        let result = try await body(daemon)
        await daemon.stop()
        return result
    } catch {
        await daemon.stop()
        throw error
    }
}
