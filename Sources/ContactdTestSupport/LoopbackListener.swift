import Glibc

/// A TCP socket listening on 127.0.0.1 at a port the kernel chose: to hold a port taken, to
/// find a free one, or to serve by hand. The caller closes it.
package struct LoopbackListener: Sendable {
    package let fd: Int32
    package let port: Int

    package init(backlog: Int32 = 8) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
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

/// A loopback TCP port nothing listens on now.
package func freeLoopbackPort() throws -> Int {
    let listener = try LoopbackListener()
    listener.close()
    return listener.port
}
