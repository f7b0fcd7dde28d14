import CSystemd
import Glibc

/// The systemd unit a process runs in.
package enum SystemdUnit {
    /// The system unit of process `pid` (`sd_pid_get_unit(3)`: e.g. `billing.service`, or
    /// `session-3.scope` for a login session); `nil` when it is in none or has exited.
    package static func of(pid: Int32) -> String? {
        var name: UnsafeMutablePointer<CChar>?
        guard sd_pid_get_unit(pid, &name) >= 0, let name else { return nil }
        defer { free(name) }
        return String(cString: name)
    }
}
