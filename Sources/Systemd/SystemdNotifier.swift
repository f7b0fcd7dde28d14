import CSystemd
import Glibc

/// Sends service state to systemd (`sd_notify(3)`); does nothing when `NOTIFY_SOCKET` is unset.
///
/// Each call sends one datagram; libsystemd reads `NOTIFY_SOCKET` on every call, so the
/// environment of the process decides where messages go.
package struct SystemdNotifier: Sendable {
    package init() {}

    /// Sends raw `KEY=VALUE` lines. Returns false if systemd could not be told (not an error for
    /// a daemon started by hand, where no one listens).
    @discardableResult
    package func send(_ state: String) -> Bool {
        contactd_sd_notify(state) > 0
    }

    /// `READY=1` with an optional status line.
    @discardableResult
    package func ready(status: String? = nil) -> Bool {
        send(["READY=1", status.map { "STATUS=\($0)" }].compactMap { $0 }.joined(separator: "\n"))
    }

    /// `STATUS=…`, the line `systemctl status` shows.
    @discardableResult
    package func status(_ text: String) -> Bool {
        send("STATUS=\(Self.singleLine(text))")
    }

    /// `STOPPING=1` with an optional status line.
    @discardableResult
    package func stopping(status: String? = nil) -> Bool {
        send(["STOPPING=1", status.map { "STATUS=\(Self.singleLine($0))" }].compactMap { $0 }.joined(separator: "\n"))
    }

    /// `RELOADING=1` and `MONOTONIC_USEC=` (required by `Type=notify-reload`, harmless otherwise).
    @discardableResult
    package func reloading() -> Bool {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let usec = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
        return send("RELOADING=1\nMONOTONIC_USEC=\(usec)")
    }

    /// `WATCHDOG=1`: the service is alive.
    @discardableResult
    package func watchdog() -> Bool {
        send("WATCHDOG=1")
    }

    /// `ERRNO=` and `STATUS=` before a failing exit.
    @discardableResult
    package func failure(errno code: Int32, status: String) -> Bool {
        send("ERRNO=\(code)\nSTATUS=\(Self.singleLine(status))")
    }

    /// `EXTEND_TIMEOUT_USEC=` while a drain takes longer than the stop timeout expects.
    @discardableResult
    package func extendTimeout(microseconds: UInt64) -> Bool {
        send("EXTEND_TIMEOUT_USEC=\(microseconds)")
    }

    /// Hands a duplicate of `fd` to systemd's file descriptor store under `name` (`FDSTORE=1`;
    /// `FDPOLL=0`, as it is not a socket): it comes back in `LISTEN_FDS` when the service is
    /// restarted. Needs `FileDescriptorStoreMax=` in the unit. Returns false if systemd could
    /// not be told.
    @discardableResult
    package func store(fileDescriptor fd: Int32, name: String) -> Bool {
        var fd = fd
        return contactd_sd_notify_with_fds("FDSTORE=1\nFDNAME=\(name)\nFDPOLL=0", &fd, 1) > 0
    }

    /// Closes systemd's stored descriptors named `name` (`FDSTOREREMOVE=1`).
    @discardableResult
    package func removeStored(name: String) -> Bool {
        send("FDSTOREREMOVE=1\nFDNAME=\(name)")
    }

    private static func singleLine(_ text: String) -> String {
        String(text.map { $0.isNewline ? " " : $0 })
    }
}

/// What systemd passed to this process: watchdog interval and inherited sockets.
package enum SystemdEnvironment {
    /// The watchdog interval in microseconds if systemd expects `WATCHDOG=1` from this process.
    package static func watchdogInterval() -> UInt64? {
        var usec: UInt64 = 0
        let enabled = sd_watchdog_enabled(0, &usec)
        return enabled > 0 && usec > 0 ? usec : nil
    }

    /// Sockets passed by socket activation (`LISTEN_FDS`, `LISTEN_FDNAMES`), starting at fd 3,
    /// with their names (`FileDescriptorName=`, by default the socket unit's name).
    ///
    /// Unsets the `LISTEN_*` variables so children do not inherit them.
    package static func listenFileDescriptors() -> [(fd: Int32, name: String)] {
        var names: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
        let count = sd_listen_fds_with_names(1, &names)
        guard count > 0 else { return [] }
        defer {
            if let names {
                for i in 0..<Int(count) { free(names[i]) }
                free(names)
            }
        }
        return (0..<count).map { index in
            let name = names?[Int(index)].map { String(cString: $0) } ?? "unknown"
            return (SD_LISTEN_FDS_START + index, name)
        }
    }

    /// Whether `fd` is a listening Unix stream socket.
    package static func isListeningUnixSocket(_ fd: Int32) -> Bool {
        sd_is_socket_unix(fd, Int32(SOCK_STREAM.rawValue), 1, nil, 0) > 0
    }
}
