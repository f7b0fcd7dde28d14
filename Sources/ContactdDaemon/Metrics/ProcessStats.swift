import Glibc

/// The process's own figures as Prometheus's client libraries export them (`process_*`), read
/// from `/proc/self` at scrape time.
struct ProcessStats {
    var residentBytes: Double
    var virtualBytes: Double
    var cpuSeconds: Double
    var startTimeSeconds: Double
    var openDescriptors: Double
    var maxDescriptors: Double

    /// Now; `nil` when `/proc` cannot be read (then no `process_*` series are exported).
    static func read() -> ProcessStats? {
        // /proc/self/stat: the fields after the command name (in parentheses, which may hold
        // spaces); utime and stime are fields 14 and 15, starttime 22, vsize 23, rss 24.
        guard let stat = contents("/proc/self/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state).
        func field(_ number: Int) -> Double? { fields.count > number - 3 ? Double(fields[number - 3]) : nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))
        guard let utime = field(14), let stime = field(15), let start = field(22), let vsize = field(23),
            let rss = field(24), ticks > 0, let boot = bootTime()
        else { return nil }
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        return ProcessStats(
            residentBytes: rss * pageSize,
            virtualBytes: vsize,
            cpuSeconds: (utime + stime) / ticks,
            startTimeSeconds: boot + start / ticks,
            openDescriptors: Double(openDescriptorCount()),
            maxDescriptors: Double(limit.rlim_cur)
        )
    }

    /// Seconds since the epoch at boot (`btime` in /proc/stat).
    private static func bootTime() -> Double? {
        guard let text = contents("/proc/stat") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst("btime ".count))
        }
        return nil
    }

    private static func openDescriptorCount() -> Int {
        guard let directory = opendir("/proc/self/fd") else { return 0 }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            if entry.pointee.d_name.0 != UInt8(ascii: ".") { count += 1 }
        }
        return max(0, count - 1)  // less the descriptor reading the directory
    }

    private static func contents(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = Glibc.read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            bytes += buffer[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
