import ContactdCore

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
