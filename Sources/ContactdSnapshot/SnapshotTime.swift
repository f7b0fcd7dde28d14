import CLinux
import Glibc

/// When a snapshot was taken or restored, on the clocks that carry an entry's age across a
/// restart: the boot clock within one boot, the wall clock across a reboot.
struct SnapshotTime: Sendable, Equatable {
    /// `/proc/sys/kernel/random/boot_id` as 16 bytes; zeros when it could not be read.
    var bootID: [UInt8]
    /// `CLOCK_BOOTTIME` in nanoseconds (counts suspend, unlike the monotonic clock).
    var sinceBoot: UInt64
    /// `CLOCK_REALTIME` in nanoseconds.
    var wall: Int64

    static func now() -> SnapshotTime {
        var boot = timespec()
        var wall = timespec()
        clock_gettime(CLOCK_BOOTTIME, &boot)
        clock_gettime(CLOCK_REALTIME, &wall)
        return SnapshotTime(
            bootID: currentBootID,
            sinceBoot: UInt64(boot.tv_sec) * 1_000_000_000 + UInt64(boot.tv_nsec),
            wall: Int64(wall.tv_sec) * 1_000_000_000 + Int64(wall.tv_nsec)
        )
    }

    /// Seconds from `earlier` to this time, never negative (a wall clock set back counts as 0).
    func seconds(since earlier: SnapshotTime) -> Double {
        let sameBoot = bootID == earlier.bootID && bootID.contains { $0 != 0 }
        if sameBoot {
            return sinceBoot >= earlier.sinceBoot ? Double(sinceBoot - earlier.sinceBoot) / 1e9 : 0
        }
        return wall > earlier.wall ? Double(wall - earlier.wall) / 1e9 : 0
    }

    private static let currentBootID: [UInt8] = {
        // "8-4-4-4-12" hexadecimal; read once, it does not change while the system runs.
        let unknown = [UInt8](repeating: 0, count: 16)
        let fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return unknown }
        defer { close(fd) }
        var text = [UInt8](repeating: 0, count: 64)
        let count = read(fd, &text, text.count)
        guard count > 0 else { return unknown }
        let digits = text[..<count].compactMap { UInt8(String(UnicodeScalar($0)), radix: 16) }
        guard digits.count == 32 else { return unknown }
        return (0..<16).map { digits[2 * $0] << 4 | digits[2 * $0 + 1] }
    }()
}
