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
    private let process = LockedProcess()

    /// Whether the tests that need Redis can run here; a skip prints why.
    package static var isAvailable: Bool { FileManager.default.isExecutableFile(atPath: executable) }

    /// - Parameter extraArguments: more `redis-server` options, e.g. a `--maxmemory`.
    package init(directory: String, password: String? = nil, extraArguments: [String] = []) throws {
        self.directory = directory
        self.socketPath = directory + "/redis.sock"
        self.password = password
        self.extraArguments = extraArguments
        self.port = try freeLoopbackPort()
    }

    /// Starts the server and returns once it accepts connections.
    package func start() async throws {
        var arguments = [
            "--port", String(port), "--bind", "127.0.0.1", "--unixsocket", socketPath, "--unixsocketperm", "700",
            "--save", "", "--appendonly", "no", "--dir", directory, "--loglevel", "warning",
        ]
        if let password { arguments += ["--requirepass", password] }
        arguments += extraArguments
        let child = try ChildProcess(
            Self.executable,
            arguments,
            environment: [:],
            stdout: .file(directory + "/redis.log"),
            stderr: .file(directory + "/redis.log")
        )
        process.set(child)
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if Self.accepts(socketPath) { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        let log = (try? String(contentsOfFile: directory + "/redis.log", encoding: .utf8)) ?? ""
        throw TestSupportError("redis-server did not start: \(log)")
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

    private static func accepts(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
    }
}

private final class LockedProcess: @unchecked Sendable {
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

/// A loopback TCP port nothing listens on now.
package func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else { throw TestSupportError("cannot bind a loopback port") }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}
