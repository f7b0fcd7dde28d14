import ContactdClient
import ContactdTestSupport
import Foundation
import Glibc
import NIOCore
import NIOPosix
import Testing

/// Clients never hang (issue #14, item 3): a stopped daemon costs `contactctl` its `--timeout`,
/// a client call its timeout or its task's cancellation; a socket that cannot be opened is
/// explained.
@Suite(.timeLimit(.minutes(1))) struct ClientTimeoutTests {
    /// A Unix socket that accepts (the kernel's backlog) and never answers: a wedged daemon.
    static func silentListener(_ path: String) async throws -> any Channel {
        try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { $0.eventLoop.makeSucceededVoidFuture() }
            .bind(unixDomainSocketPath: path).get()
    }

    @Test func contactctlGivesUpAfterItsTimeoutWithExit75() async throws {
        try await withTemporaryDirectory { dir in
            let listener = try await Self.silentListener(dir + "/wedged.sock")
            let result = try await runProduct(
                "contactctl",
                ["--socket", dir + "/wedged.sock", "--timeout", "300ms", "ping"]
            )
            #expect(result.status == 75)
            #expect(result.stderr.contains("contactd did not answer within 300ms"), "\(result.stderr)")
            let badValue = try await runProduct("contactctl", ["--timeout", "soon", "ping"])
            #expect(badValue.status == 2)
            #expect(badValue.stderr.contains("--timeout: 'soon' is not a duration"), "\(badValue.stderr)")
            try await listener.close()
        }
    }

    @Test func aSocketThatCannotBeOpenedIsExplained() async throws {
        try await withTemporaryDirectory { dir in
            let missing = try await runProduct("contactctl", ["--socket", dir + "/none.sock", "ping"])
            #expect(missing.status == 69)
            #expect(missing.stderr.contains("is contactd (or contactd.socket) running?"), "\(missing.stderr)")

            // A socket file nobody listens on (a daemon that died without removing it).
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let path = dir + "/stale.sock"
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                for (index, byte) in path.utf8.enumerated() { raw[index] = byte }
            }
            _ = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            close(fd)
            let stale = try await runProduct("contactctl", ["--socket", path, "ping"])
            #expect(stale.status == 69)
            #expect(stale.stderr.contains("nothing listens there"), "\(stale.stderr)")
        }
    }

    @Test(.enabled(if: TestTools.canActAsNobody, "needs root and /usr/bin/setpriv to run contactctl as nobody"))
    func aSocketThatMayNotBeOpenedIsExplained() async throws {
        try await withTemporaryDirectory { dir in
            let listener = try await Self.silentListener(dir + "/private.sock")
            chmod(dir, 0o755)
            chmod(dir + "/private.sock", 0o600)
            let denied = try await TestTools.contactctlAsNobody(["--socket", dir + "/private.sock", "ping"])
            #expect(denied.status == 77)
            #expect(denied.stderr.contains("must be in the contactd-clients group"), "\(denied.stderr)")
            try await listener.close()
        }
    }

    @Test func aClientCallEndsAtItsTimeoutOrWhenItsTaskIsCancelled() async throws {
        try await withTemporaryDirectory { dir in
            let listener = try await Self.silentListener(dir + "/wedged.sock")
            let connection = try await ContactdConnection.connect(
                socketPath: dir + "/wedged.sock",
                timeout: .milliseconds(200)
            )
            await #expect {
                try await connection.ping()
            } throws: { error in
                (error as? ContactdClientError)?.reason == "timed_out"
            }
            // No timeout for this call: only the cancellation ends it.
            let waiting = Task { try await connection.call("daemon.ping", timeout: .seconds(3600)) }
            waiting.cancel()
            await #expect(throws: CancellationError.self) { try await waiting.value }
            await connection.close()
            try await listener.close()
        }
    }
}
