import CSystemd
import Glibc
import Logging

/// A swift-log handler that writes structured entries to the systemd journal (`sd_journal_sendv`).
///
/// Each entry carries MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, CODE_FILE, CODE_LINE, CODE_FUNC and one
/// field per metadata key (`upstream.status` → `UPSTREAM_STATUS`), so `journalctl -o verbose` and
/// `journalctl UPSTREAM_STATUS=503` work.
package struct JournalLogHandler: LogHandler {
    package var metadata: Logger.Metadata = [:]
    package var metadataProvider: Logger.MetadataProvider?
    package var logLevel: Logger.Level = .info
    private let identifier: String
    private let label: String

    /// - Parameters:
    ///   - label: the logger's label, sent as `LOGGER`.
    ///   - identifier: `SYSLOG_IDENTIFIER`, e.g. `contactd`.
    package init(label: String, identifier: String) {
        self.label = label
        self.identifier = identifier
    }

    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    package func log(event: LogEvent) {
        log(
            level: event.level,
            message: event.message,
            metadata: event.metadata,
            error: event.error,
            source: event.source,
            file: event.file,
            function: event.function,
            line: event.line
        )
    }

    private func log(
        level: Logger.Level,
        message: Logger.Message,
        metadata explicit: Logger.Metadata?,
        error: (any Error)?,
        source: String,
        file: String,
        function: String,
        line: UInt
    ) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let explicit { merged.merge(explicit) { $1 } }
        var fields: [String] = [
            "MESSAGE=\(message)",
            "PRIORITY=\(Self.priority(level))",
            "SYSLOG_IDENTIFIER=\(identifier)",
            "CODE_FILE=\(file)",
            "CODE_LINE=\(line)",
            "CODE_FUNC=\(function)",
            "LOGGER=\(label)",
            "SOURCE_MODULE=\(source)",
        ]
        if let error { fields.append("ERROR=\(error)") }
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            guard let name = Self.fieldName(key) else { continue }
            fields.append("\(name)=\(value)")
        }
        Self.send(fields)
    }

    /// syslog priority for a swift-log level (swift-log has both trace and debug; syslog has debug).
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// A journal field name: upper case letters, digits and `_`, not starting with `_` or a digit
    /// (leading `_` is reserved for trusted fields), at most 64 characters.
    static func fieldName(_ key: String) -> String? {
        var name = String(
            key.uppercased().unicodeScalars.map { scalar -> Character in
                ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar) ? Character(scalar) : "_"
            }
        )
        while name.first == "_" || name.first?.isNumber == true { name.removeFirst() }
        guard !name.isEmpty else { return nil }
        if name.count > 64 { name = String(name.prefix(64)) }
        return name
    }

    private static func send(_ fields: [String]) {
        var storage: [UInt8] = []
        var ranges: [Range<Int>] = []
        for field in fields {
            let start = storage.count
            storage.append(contentsOf: field.utf8)
            ranges.append(start..<storage.count)
        }
        storage.withUnsafeMutableBytes { raw in
            var vectors = ranges.map { range in
                iovec(iov_base: raw.baseAddress! + range.lowerBound, iov_len: range.count)
            }
            _ = vectors.withUnsafeMutableBufferPointer { buffer in
                contactd_sd_journal_sendv(buffer.baseAddress, Int32(buffer.count))
            }
        }
    }
}

extension SystemdEnvironment {
    /// Whether stderr is connected to the journal (`JOURNAL_STREAM` names stderr's device and inode),
    /// as systemd sets it for `StandardError=journal`.
    package static func stderrIsJournal(environment: [String: String]) -> Bool {
        guard let value = environment["JOURNAL_STREAM"] else { return false }
        let parts = value.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var info = stat()
        guard fstat(STDERR_FILENO, &info) == 0 else { return false }
        return UInt64(info.st_dev) == device && UInt64(info.st_ino) == inode
    }
}
