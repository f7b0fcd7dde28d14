import Foundation
import Glibc

/// A TCP socket listening on 127.0.0.1, at a port the kernel chose unless one is named: to hold a
/// port taken, to find a free one, or to serve by hand. The caller closes it.
package struct LoopbackListener: Sendable {
    package let fd: Int32
    package let port: Int

    package init(port wanted: Int = 0, backlog: Int32 = 8) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(wanted).bigEndian
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard fd >= 0, bound == 0, listen(fd, backlog) == 0 else {
            if fd >= 0 { Glibc.close(fd) }
            throw TestSupportError("cannot listen on a loopback port")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.fd = fd
        self.port = Int(UInt16(bigEndian: address.sin_port))
    }

    /// Stops listening; `accept` in another thread returns.
    package func close() {
        shutdown(fd, Int32(SHUT_RDWR))
        Glibc.close(fd)
    }
}

/// A loopback TCP port nothing listens on now, for a server a test starts a moment later.
///
/// The port comes from below the kernel's ephemeral range, not from `bind(0)`: a port the kernel
/// hands out is also what it hands out as the local end of the next outgoing connection, so in
/// the moment before the server binds it, a daemon connecting anywhere could take it (a CI run
/// failed on exactly that: "Address already in use"). Below the range only another listener can
/// take a port, and within this process the ports go round in turn, so two tests never draw the
/// same one.
package func freeLoopbackPort() throws -> Int {
    for _ in 0..<ReservedPorts.shared.count {
        let candidate = ReservedPorts.shared.next()
        guard let listener = try? LoopbackListener(port: candidate) else { continue }
        listener.close()
        return candidate
    }
    throw TestSupportError("no free loopback port below the ephemeral range")
}

/// The ports below the kernel's ephemeral range (`ip_local_port_range`), handed out in turn from
/// a random start so two test processes rarely meet.
private final class ReservedPorts: @unchecked Sendable {
    static let shared = ReservedPorts()
    private let lock = NSLock()
    private let range: Range<Int>
    private var offset: Int

    private init() {
        let text = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? ""
        let ephemeralStart = text.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } ?? 32768
        // Above the well-known ports and the ones services usually claim; 2,000 at the least.
        range = 12000..<max(ephemeralStart, 14000)
        offset = Int.random(in: 0..<range.count)
    }

    var count: Int { range.count }

    func next() -> Int {
        lock.withLock {
            offset = (offset + 1) % range.count
            return range.lowerBound + offset
        }
    }
}
