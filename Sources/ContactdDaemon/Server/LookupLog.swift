import ContactdCore
import ContactdProtocol
import Logging

/// Masks personal data before it reaches a log line.
package enum LogMasking {
    /// `phone:+1415*****34` / `id:c1d2…9abc`: enough to correlate lines, not enough to identify.
    /// With `clear` (`--log-personal-data`) the key as it is.
    package static func mask(_ key: ContactKey, clear: Bool = false) -> String {
        if clear { return key.description }
        switch key {
        case .phone(let p):
            let chars = Array(p.e164)
            guard chars.count > 6 else { return "phone:+***" }
            return "phone:" + String(chars.prefix(5)) + String(repeating: "*", count: chars.count - 7)
                + String(chars.suffix(2))
        case .id(let i):
            let chars = Array(i.rawValue)
            guard chars.count > 8 else { return "id:****" }
            return "id:" + String(chars.prefix(4)) + "…" + String(chars.suffix(4))
        }
    }
}

/// The per-lookup debug line (docs/operations.md, "Logs"), written on every path a lookup takes.
struct LookupLog: Sendable {
    private let logger: Logger
    private let clear: Bool
    private let fixedEnabled: Bool
    private let levelSwitch: LogLevelSwitch?

    /// Whether lines are written at all: one atomic load when the level can change while running
    /// (`levelSwitch`), else the level at start; the hit path pays one branch either way.
    var enabled: Bool { levelSwitch?.debugEnabled ?? fixedEnabled }

    /// - Parameters:
    ///   - clear: write keys in clear (`--log-personal-data`), else masked.
    ///   - levelSwitch: the level to follow while running; `nil`: the logger's level at start.
    init(logger: Logger, clear: Bool, levelSwitch: LogLevelSwitch? = nil) {
        self.logger = logger
        self.clear = clear
        self.fixedEnabled = logger.logLevel <= .debug
        self.levelSwitch = levelSwitch
    }

    func record(_ key: ContactKey, _ result: Result<LookupResult, LookupError>) {
        guard enabled else { return }
        switch result {
        case .success(let found): record(key, found.status.description)
        case .failure(let error): record(key, RPCError(error).reason, error: "\(error)")
        }
    }

    func record(_ key: ContactKey, _ outcome: String, error: String? = nil) {
        guard enabled else { return }
        var metadata: Logger.Metadata = [
            "contact.key": "\(LogMasking.mask(key, clear: clear))", "lookup.outcome": "\(outcome)",
        ]
        if let error { metadata["error"] = "\(error)" }
        logger.debug("looked up", metadata: metadata)
    }
}
