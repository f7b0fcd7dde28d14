import CLinux
import Glibc

// MARK: - A loop's commands, closing its connections, and its system calls

extension FastLane {
    enum Command: Sendable {
        case stopAccepting
        case closeAll
        case ping
        /// Serve this connection, accepted and admitted by another loop.
        case adopt(Int32, acceptedAt: Int64, caller: CallerUnits.Tally)
    }
}

extension FastLane.Loop {
    // MARK: Closing

    func closeIdle(now: Int64) {
        let idle = connections.compactMap { fd, connection in now - connection.lastRead >= idleNanos ? fd : nil }
        for fd in idle { closeConnection(fd) }
    }

    func closeConnection(_ fd: Int32) {
        guard connections.removeValue(forKey: fd) != nil else { return }
        close(fd)
        host.release()
    }

    func closeConnections() {
        for fd in Array(connections.keys) { closeConnection(fd) }
    }

    // MARK: System

    func watch(_ fd: Int32, events: UInt32) {
        var event = epoll_event()
        event.events = events
        event.data.fd = fd
        epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event)
    }

    static func now() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC_COARSE, &time)
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }
}
