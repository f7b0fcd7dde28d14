import Logging
import Synchronization

/// The daemon's log level, changeable while it runs (a new `log-level` in the config file and
/// `systemctl reload`). The log handlers read it (`SwitchedLogHandler`), and so does the
/// per-lookup debug line, with one atomic load per lookup.
package final class LogLevelSwitch: Sendable {
    private static let levels = Logger.Level.allCases
    private let index: Atomic<Int>
    private let debug: Atomic<Bool>

    package init(_ level: Logger.Level) {
        index = Atomic(Self.levels.firstIndex(of: level) ?? 0)
        debug = Atomic(level <= .debug)
    }

    /// Whether `debug` lines are written (the per-lookup line asks on every lookup).
    package var debugEnabled: Bool {
        debug.load(ordering: .relaxed)
    }

    /// The level now.
    package var level: Logger.Level {
        Self.levels[index.load(ordering: .relaxed)]
    }

    /// Sets the level for every handler and the lookup line.
    package func set(_ level: Logger.Level) {
        index.store(Self.levels.firstIndex(of: level) ?? 0, ordering: .relaxed)
        debug.store(level <= .debug, ordering: .relaxed)
    }
}

/// A log handler whose level follows a `LogLevelSwitch`; everything else is `wrapped`'s.
package struct SwitchedLogHandler<Wrapped: LogHandler>: LogHandler {
    package var wrapped: Wrapped
    package let levelSwitch: LogLevelSwitch

    package init(_ wrapped: Wrapped, levelSwitch: LogLevelSwitch) {
        self.wrapped = wrapped
        self.levelSwitch = levelSwitch
    }

    /// The switch's level; setting it on one logger would change every logger, so it is ignored.
    package var logLevel: Logger.Level {
        get { levelSwitch.level }
        set {}
    }

    package var metadataProvider: Logger.MetadataProvider? {
        get { wrapped.metadataProvider }
        set { wrapped.metadataProvider = newValue }
    }

    package var metadata: Logger.Metadata {
        get { wrapped.metadata }
        set { wrapped.metadata = newValue }
    }

    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { wrapped[metadataKey: key] }
        set { wrapped[metadataKey: key] = newValue }
    }

    package func log(event: LogEvent) {
        wrapped.log(event: event)
    }
}
