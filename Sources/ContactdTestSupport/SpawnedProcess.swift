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

/// Starts `process`, one start at a time in this test process.
///
/// Foundation's `Process.run()` crashed (a bad read inside its `memcpy`) when many tests started
/// processes at once; starts are short, so taking them in turn costs the suite nothing visible.
package func startProcess(_ process: Process) throws {
    try spawnLock.withLock { try process.run() }
}

private let spawnLock = NSLock()

/// Runs any executable to completion without blocking a thread of the concurrency pool
/// (`Process.waitUntilExit` would: on 2 cores, two such waits stall every other test).
package func runCommand(
    _ executable: URL,
    _ arguments: [String],
    environment: [String: String] = [:]
) async throws -> CommandResult {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    process.environment = baseEnvironment.merging(environment) { $1 }
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    return try await withCheckedThrowingContinuation { continuation in
        process.terminationHandler = { process in
            let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            continuation.resume(
                returning: CommandResult(status: process.terminationStatus, stdout: stdout, stderr: stderr)
            )
        }
        do {
            try startProcess(process)
        } catch {
            continuation.resume(throwing: error)
        }
    }
}

/// A built `contactd` running as a child process, reporting to a test-owned notify socket.
package final class SpawnedDaemon: @unchecked Sendable {
    // @unchecked: `process` is only used through its thread-safe members (pid, isRunning).
    package let process: Process
    package let notify: NotifySocket
    package let socketPath: String
    /// stderr of the daemon, collected to a file for assertions after exit.
    package let logPath: String
    private let exit = AsyncStream<Int32>.makeStream()

    /// Starts `contactd` with `arguments` in `directory`; its socket is `directory/contactd.sock`
    /// unless `arguments` name one.
    package init(directory: String, arguments: [String], environment: [String: String] = [:]) throws {
        socketPath = directory + "/contactd.sock"
        logPath = directory + "/contactd.log"
        notify = try NotifySocket(path: directory + "/notify.sock")
        process = Process()
        process.executableURL = try builtProductURL("contactd")
        process.arguments = arguments.contains("--socket") ? arguments : ["--socket", socketPath] + arguments
        var base = baseEnvironment
        base["NOTIFY_SOCKET"] = notify.path
        process.environment = base.merging(environment) { $1 }
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardError = log
        process.standardOutput = log
        let continuation = exit.continuation
        process.terminationHandler = { process in
            continuation.yield(process.terminationStatus)
            continuation.finish()
        }
        try startProcess(process)
    }

    /// Sends `signal` to the daemon.
    package func signal(_ signal: Int32) {
        kill(process.processIdentifier, signal)
    }

    /// Waits for the daemon to exit; returns its status, or throws after `timeout` seconds.
    package func waitForExit(timeout: Double = 30) async throws -> Int32 {
        let stream = exit.stream
        return try await withTimeout(seconds: timeout, "contactd did not exit within \(timeout)s") {
            for await status in stream { return status }
            throw TestSupportError("exit stream ended without a status")
        }
    }

    /// The daemon's log so far.
    package var log: String {
        (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    }

    /// Kills the daemon if it still runs and closes the notify socket.
    package func stop() async {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
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
