import ArgumentParser
import ContactdCore
import FakeContactAPI
import Glibc

/// The cache alone: heap bytes per contact with nothing else in the process competing for them.
///
/// The daemon's memory run (scripts/bench) measures RSS of the whole daemon filled through its
/// misses, so it includes what the fill path leaves behind (HTTP buffers, allocator slack). This
/// fills a `ContactCache` directly with the same contacts and reports what the cache's own
/// structures hold, as RSS.
struct CacheMemory: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache-memory",
        abstract: "Heap bytes per cached contact, the cache filled in-process (no daemon)."
    )

    @Option(help: "Contacts to cache.")
    var count = 1_000_000

    func run() throws {
        var configuration = CacheConfiguration()
        configuration.maxEntries = count
        configuration.maxBytes = Int.max
        let cache = ContactCache(configuration: configuration)
        // Build the API bodies outside the measured interval.
        let rssBefore = residentBytes()
        var jsonBytes = 0
        for index in 0..<count {
            let body = Array(BenchContacts.contact(index).utf8)
            let contact = try APIContact(apiBody: body)
            jsonBytes += contact.json.count
            cache.insert(.contact(contact), for: .phone(PhoneNumber(BenchContacts.phone(index))!))
        }
        let rss = residentBytes() - rssBefore
        let entries = Double(count)
        print("entries: \(count), JSON bytes per contact: \(jsonBytes / count)")
        print("RSS per entry: \(Int(Double(rss) / entries)) bytes")
        print("cache's own estimate: \(cache.counts.bytes / count) bytes")
        withExtendedLifetime(cache) {}
    }

    /// Resident bytes of this process, from /proc/self/statm.
    private func residentBytes() -> Int {
        let fd = open("/proc/self/statm", O_RDONLY)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = read(fd, &buffer, buffer.count)
        guard n > 0 else { return 0 }
        let fields = buffer[0..<n].split(separator: UInt8(ascii: " "))
        guard fields.count >= 2, let pages = Int(String(decoding: fields[1], as: UTF8.self)) else { return 0 }
        return pages * sysconf(Int32(_SC_PAGESIZE))
    }
}
