import Foundation
import Glibc

/// A datagram socket standing in for systemd's `NOTIFY_SOCKET`: collects what a daemon sends.
package final class NotifySocket: @unchecked Sendable {
    // @unchecked: `fd` is immutable after init; `messages` is guarded by `lock`; the reader thread
    // only appends under the lock.
    package let path: String
    private let fd: Int32
    private let lock = NSCondition()
    private var messages: [String] = []
    private var closed = false

    /// Binds a datagram socket at `path` and starts reading it on a background thread.
    package init(path: String) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket() failed: \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0 else { throw TestSupportError("bind(\(path)) failed: \(errno)") }
        let thread = Thread { [self] in readLoop() }
        thread.start()
    }

    private func readLoop() {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count < 0 {
                if errno == EINTR { continue }
                break
            }
            let message = String(decoding: buffer[..<count], as: UTF8.self)
            lock.lock()
            if closed {
                lock.unlock()
                break
            }
            messages.append(message)
            lock.broadcast()
            lock.unlock()
        }
    }

    /// Every message received so far, in order.
    package var received: [String] {
        lock.lock()
        defer { lock.unlock() }
        return messages
    }

    /// Waits until `count` received messages satisfy `predicate`; returns the last of them, or
    /// throws after `timeout` seconds. `predicate` must not call back into this object.
    package func waitFor(
        timeout: Double = 20,
        count: Int = 1,
        _ description: String,
        where predicate: @escaping @Sendable (String) -> Bool
    ) async throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        return try await withCheckedThrowingContinuation { continuation in
            Thread {
                self.lock.lock()
                defer { self.lock.unlock() }
                while true {
                    let matching = self.messages.filter(predicate)
                    if matching.count >= count {
                        continuation.resume(returning: matching[count - 1])
                        return
                    }
                    if !self.lock.wait(until: deadline) {
                        continuation.resume(
                            throwing: TestSupportError(
                                "no notify message \(description) within \(timeout)s; got \(self.messages)"
                            )
                        )
                        return
                    }
                }
            }.start()
        }
    }

    /// Stops reading and closes the socket.
    package func close() {
        lock.lock()
        closed = true
        lock.unlock()
        shutdown(fd, Int32(SHUT_RDWR))
        Glibc.close(fd)
        unlink(path)
    }
}
