import Logging

/// The log handler AsyncHTTPClient gets: its lines reach the daemon's log, but only with metadata
/// known to be safe; every other value is replaced by `redacted`.
///
/// AsyncHTTPClient logs each HTTP part at trace level (`ahc-http-part`), bodies included, hex
/// encoded. The API's error bodies can echo the request's `Authorization` header (real APIs and
/// proxies do), and its contact bodies are personal data, so at `--log-level trace` the token
/// and contacts reached the logs. An allow-list, not a deny-list: a key a newer AsyncHTTPClient
/// adds stays hidden until someone has read what it carries.
package struct HTTPClientLogHandler: LogHandler {
    /// AsyncHTTPClient's metadata keys that carry only ids, versions, flags and error names.
    static let safeKeys: Set<String> = [
        "ahc-request-id", "ahc-connection-id", "ahc-el", "ahc-eventloop", "ahc-el-preference",
        "ahc-http-version", "ahc-max-streams", "ahc-channel-writable", "ahc-pool-key",
    ]

    /// Where the lines go: the daemon's logger, whose level this handler shares.
    private var target: Logger
    package var metadata: Logger.Metadata = [:]
    package var metadataProvider: Logger.MetadataProvider?

    package var logLevel: Logger.Level {
        get { target.logLevel }
        set { target.logLevel = newValue }
    }

    /// A logger for the HTTP client that writes through `target`.
    package static func logger(writingTo target: Logger) -> Logger {
        Logger(label: target.label, factory: { _ in HTTPClientLogHandler(target: target) })
    }

    private init(target: Logger) {
        self.target = target
    }

    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    package func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let given = event.metadata { merged.merge(given) { $1 } }
        for (key, _) in merged where !Self.safeKeys.contains(key) { merged[key] = "redacted" }
        // `event.error` is dropped too: an error's description is the library's to word.
        target.log(
            level: event.level,
            event.message,
            metadata: merged,
            source: event.source,
            file: event.file,
            function: event.function,
            line: event.line
        )
    }
}
