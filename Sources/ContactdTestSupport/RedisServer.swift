import ChildProcess
import Foundation
import Glibc

/// A real `redis-server` (Debian's package) started for a test: a loopback port and a Unix socket
/// in `directory`, no persistence. `start` again on the same port after `kill` is a restart.
package final class RedisServer: Sendable {
    package static let executable = "/usr/bin/redis-server"
    package let port: Int
    package let socketPath: String
    private let directory: String
    private let password: String?
    private let extraArguments: [String]
    /// With TLS files, the port speaks TLS only (replication too).
    private let tls: TestCertificates?
    private let process = LockedProcess()

    /// Whether the tests that need Redis can run here; a skip prints why.
    package static var isAvailable: Bool { FileManager.default.isExecutableFile(atPath: executable) }

    /// - Parameter extraArguments: more `redis-server` options, e.g. a `--maxmemory`.
    package init(
        directory: String,
        password: String? = nil,
        extraArguments: [String] = [],
        tls: TestCertificates? = nil
    ) throws {
        self.directory = directory
        self.socketPath = directory + "/redis.sock"
        self.password = password
        self.extraArguments = extraArguments
        self.tls = tls
        self.port = try freeLoopbackPort()
    }

    /// Starts the server and returns once it accepts connections.
    package func start() async throws {
        var arguments = [
            "--bind", "127.0.0.1", "--unixsocket", socketPath, "--unixsocketperm", "700",
            "--save", "", "--appendonly", "no", "--dir", directory, "--loglevel", "warning",
        ]
        if let tls {
            arguments += ["--port", "0", "--tls-port", String(port), "--tls-replication", "yes"] + tls.redisArguments
        } else {
            arguments += ["--port", String(port)]
        }
        if let password { arguments += ["--requirepass", password] }
        arguments += extraArguments
        // redis-server says READY=1 once it accepts connections, as under systemd: awaited, not polled.
        let notify = try NotifySocket(path: directory + "/notify-\(UInt32.random(in: 0...UInt32.max)).sock")
        defer { notify.close() }
        arguments += ["--supervised", "systemd"]
        let child = try ChildProcess(
            Self.executable,
            arguments,
            environment: ["NOTIFY_SOCKET": notify.path],
            stdout: .file(directory + "/redis.log"),
            stderr: .file(directory + "/redis.log")
        )
        process.set(child)
        do {
            _ = try await notify.waitFor("redis-server's READY=1") { $0.contains("READY=1") }
        } catch {
            let log = (try? String(contentsOfFile: directory + "/redis.log", encoding: .utf8)) ?? ""
            throw TestSupportError("redis-server did not start: \(log)")
        }
    }

    /// Kills the server at once (SIGKILL) and waits for it to be gone.
    package func kill() async {
        guard let child = process.take() else { return }
        child.signal(SIGKILL)
        _ = await child.status()
        unlink(socketPath)
    }

    /// Stops the server without closing anything (SIGSTOP): it accepts and answers nothing.
    package func pause() { process.signal(SIGSTOP) }

    /// Lets a paused server go on (SIGCONT).
    package func resume() { process.signal(SIGCONT) }

    package var url: String { "redis://127.0.0.1:\(port)/0" }

}

final class LockedProcess: @unchecked Sendable {
    private let lock = NSLock()
    private var child: ChildProcess?

    func set(_ child: ChildProcess) { lock.withLock { self.child = child } }
    func signal(_ signal: Int32) { lock.withLock { child?.signal(signal) } }
    func take() -> ChildProcess? {
        lock.withLock {
            defer { child = nil }
            return child
        }
    }
}
