import Foundation

// MARK: - Value parsers (SPEC §4: durations in s/ms/m/h, sizes in K/M/G powers of 1024)

/// A duration from `30`, `250ms`, `5s`, `5m`, `1h`, `1.5s` (seconds when no unit is given),
/// exact to the nanosecond.
///
/// Errors say what is wrong with `text` alone; the caller names the flag or variable.
package func parseDuration(_ text: String, allowZero: Bool = true) throws(ConfigurationError) -> Duration {
    let units: [(String, Double)] = [("ms", 1e6), ("s", 1e9), ("m", 60e9), ("h", 3600e9)]
    var number = Substring(text)
    var scale = 1e9
    for (suffix, factor) in units where text.hasSuffix(suffix) {
        number = text.dropLast(suffix.count)
        scale = factor
        break
    }
    guard !text.hasPrefix("-") else { throw ConfigurationError("'\(text)' is negative; a duration is 0 or more") }
    guard let value = Double(number), value.isFinite, (value * scale).magnitude < 9e18 else {
        throw ConfigurationError("'\(text)' is not a duration (seconds, or a number with ms, s, m or h)")
    }
    guard allowZero || value > 0 else { throw ConfigurationError("'\(text)' must be above 0") }
    return .nanoseconds(Int64((value * scale).rounded()))
}

/// Bytes from `65536`, `64K`, `256M`, `1G` (powers of 1024); the unit is applied before `minimum`
/// is checked.
package func parseSize(_ text: String, minimum: Int = 0) throws(ConfigurationError) -> Int {
    let units: [(String, Int)] = [("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30)]
    var number = Substring(text)
    var scale = 1
    for (suffix, factor) in units where text.uppercased().hasSuffix(suffix) {
        number = text.dropLast()
        scale = factor
        break
    }
    guard !text.hasPrefix("-") else { throw ConfigurationError("'\(text)' is negative; a size is 0 or more") }
    guard let value = Int(number), value >= 0, value <= Int.max / scale else {
        throw ConfigurationError("'\(text)' is not a size (bytes, or a number with K, M or G)")
    }
    guard value * scale >= minimum else {
        throw ConfigurationError("'\(text)' is below the least allowed size, \(minimum) bytes")
    }
    return value * scale
}

/// A fraction from 0 to 1 (`0.8`).
func parseFraction(_ text: String) throws(ConfigurationError) -> Double {
    guard let value = Double(text), value.isFinite, value >= 0, value <= 1 else {
        throw ConfigurationError("'\(text)' is not a fraction from 0 to 1")
    }
    return value
}

/// Requests per second, 0 or more (`50`, `0.5`).
func parseRate(_ text: String) throws(ConfigurationError) -> Double {
    guard let value = Double(text), value.isFinite, value >= 0 else {
        throw ConfigurationError("'\(text)' is not a rate (requests per second, 0 = no limit)")
    }
    return value
}

/// A whole number of at least `minimum`.
package func parseCount(_ text: String, minimum: Int = 0) throws(ConfigurationError) -> Int {
    guard let value = Int(text), value >= minimum else {
        throw ConfigurationError("'\(text)' is not a whole number of at least \(minimum)")
    }
    return value
}

/// Comma-separated numeric ids (`--allow-uid 1000,1001`; the flag may also repeat).
func parseIDs(_ text: String) throws(ConfigurationError) -> [UInt32] {
    var ids: [UInt32] = []
    for part in text.split(separator: ",") {
        guard let id = UInt32(part.trimmingCharacters(in: .whitespaces)) else {
            throw ConfigurationError("'\(part)' is not a numeric id")
        }
        ids.append(id)
    }
    return ids
}

func parseMode(_ text: String) throws(ConfigurationError) -> UInt32 {
    guard let mode = UInt32(text, radix: 8), mode <= 0o777 else {
        throw ConfigurationError("'\(text)' is not an octal file mode such as 0660")
    }
    return mode
}

func parseBool(_ text: String) throws(ConfigurationError) -> Bool {
    switch text.lowercased() {
    case "1", "true", "yes", "on": return true
    case "0", "false", "no", "off", "": return false
    default: throw ConfigurationError("'\(text)' is not on or off (true/false, yes/no and 1/0 work too)")
    }
}

func parseURL(_ text: String) throws(ConfigurationError) -> String {
    let trimmed = text.hasSuffix("/") ? String(text.dropLast()) : text
    guard trimmed.hasPrefix("https://") || trimmed.hasPrefix("http://"), trimmed.count > 8 else {
        throw ConfigurationError("'\(text)' is not an http(s) URL")
    }
    return trimmed
}
