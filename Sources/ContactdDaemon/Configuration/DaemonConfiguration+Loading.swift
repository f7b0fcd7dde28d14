import Configuration
import ContactdCore
import Foundation
import Logging

extension DaemonConfiguration {
    /// Every setting: its flag name (without `--`), which maps mechanically to a configuration key
    /// (`cache-max-entries` → `contactd.cacheMaxEntries`) and an environment variable
    /// (`CONTACTD_CACHE_MAX_ENTRIES`), and how its text becomes a field.
    package static let settings: [Setting] = [
        Setting("socket") { c, v in c.socket.path = v },
        Setting("socket-mode") { c, v in c.socket.mode = try parseMode(v) },
        Setting("socket-group") { c, v in c.socket.group = v },
        Setting("api-url") { c, v in c.upstream.url = try parseURL(v) },
        Setting("token-file") { c, v in c.upstream.tokenFile = v },
        Setting("cache-max-entries") { c, v in c.cache.maxEntries = try parseCount(v) },
        Setting("cache-max-bytes") { c, v in c.cache.maxBytes = try parseSize(v) },
        Setting("ttl") { c, v in c.cache.ttl = try parseDuration(v) },
        Setting("stale-ttl") { c, v in c.policy.staleTTL = try parseDuration(v) },
        Setting("stale-if-error") { c, v in c.policy.staleIfError = try parseDuration(v) },
        Setting("refresh-ahead") { c, v in c.policy.refreshAhead = try parseFraction(v) },
        Setting("refresh-ahead-reads") { c, v in
            c.policy.refreshAheadReads = try parseCount(v, minimum: 1)
        },
        Setting("retry-attempts") { c, v in
            c.policy.retryAttempts = try parseCount(v, minimum: 1)
        },
        Setting("retry-base-delay") { c, v in
            c.policy.retryBaseDelay = try parseDuration(v)
        },
        Setting("retry-max-delay") { c, v in c.policy.retryMaxDelay = try parseDuration(v) },
        Setting("breaker-failures") { c, v in
            c.policy.breakerFailures = try parseCount(v, minimum: 1)
        },
        Setting("breaker-cooldown") { c, v in
            c.policy.breakerCooldown = try parseDuration(v, allowZero: false)
        },
        Setting("api-concurrency") { c, v in
            c.policy.maxConcurrent = try parseCount(v, minimum: 1)
        },
        Setting("api-rate") { c, v in c.policy.ratePerSecond = try parseRate(v) },
        Setting("api-burst") { c, v in c.policy.rateBurst = try parseCount(v) },
        Setting("api-queue") { c, v in c.policy.queueLimit = try parseCount(v) },
        Setting("rate-limit-all-keys") { c, v in
            c.policy.rateLimitAllKeys = try parseBool(v)
        },
        Setting("negative-ttl") { c, v in c.cache.negativeTTL = try parseDuration(v) },
        Setting("upstream-timeout") { c, v in
            c.policy.deadline = try parseDuration(v, allowZero: false)
        },
        Setting("max-connections") { c, v in
            c.limits.maxConnections = try parseCount(v, minimum: 1)
        },
        Setting("max-line-bytes") { c, v in
            c.limits.maxLineBytes = try parseSize(v, minimum: 256)
        },
        Setting("max-batch") { c, v in c.limits.maxBatch = try parseCount(v, minimum: 1) },
        Setting("max-requests-per-connection") { c, v in
            c.limits.maxInFlightPerConnection = try parseCount(v, minimum: 1)
        },
        Setting("idle-timeout") { c, v in c.limits.idleTimeout = try parseDuration(v) },
        Setting("partial-line-timeout") { c, v in
            c.limits.partialLineTimeout = try parseDuration(v)
        },
        Setting("fast-path") { c, v in c.fastPath = try parseBool(v) },
        Setting("allow-uid") { c, v in c.socket.allowUIDs = try parseIDs(v) },
        Setting("allow-gid") { c, v in c.socket.allowGIDs = try parseIDs(v) },
        Setting("log-personal-data") { c, v in c.logPersonalData = try parseBool(v) },
        Setting("shutdown-timeout") { c, v in c.shutdownTimeout = try parseDuration(v) },
        Setting("log-level") { c, v in
            guard let level = Logger.Level(rawValue: v.lowercased()) else {
                throw ConfigurationError("'\(v)' is not one of trace, debug, info, notice, warning, error, critical")
            }
            c.logLevel = level
        },
        Setting("demo") { c, v in c.demo = try parseBool(v) },
    ]

    /// One named setting and how to apply its text.
    package struct Setting: Sendable {
        /// The flag name without dashes' prefix, e.g. `cache-max-entries`.
        package let flag: String
        let apply: @Sendable (inout DaemonConfiguration, String) throws -> Void

        init(_ flag: String, apply: @escaping @Sendable (inout DaemonConfiguration, String) throws -> Void) {
            self.flag = flag
            self.apply = apply
        }

        /// The configuration key: `contactd.` then the flag in lower camel case.
        var key: ConfigKey {
            let parts = flag.split(separator: "-")
            let camel = parts.enumerated().map { $0.offset == 0 ? String($0.element) : $0.element.capitalized }.joined()
            return ConfigKey(["contactd", camel])
        }

        /// The environment variable, e.g. `CONTACTD_CACHE_MAX_ENTRIES`.
        package var environmentVariable: String {
            "CONTACTD_" + flag.uppercased().replacingOccurrences(of: "-", with: "_")
        }
    }

    /// Builds a configuration: a flag's value wins over its environment variable, which wins over
    /// the default. `arguments` maps flag names (`"ttl"`) to their text.
    package static func load(
        arguments: [String: String],
        environment: [String: String]
    ) throws(ConfigurationError) -> DaemonConfiguration {
        var values: [AbsoluteConfigKey: ConfigValue] = [:]
        for setting in settings {
            if let text = arguments[setting.flag] {
                values[AbsoluteConfigKey(setting.key)] = ConfigValue(.string(text), isSecret: false)
            }
        }
        let reader = ConfigReader(providers: [
            InMemoryProvider(name: "arguments", values: values),
            EnvironmentVariablesProvider(environmentVariables: environment),
        ])
        var configuration = DaemonConfiguration()
        for setting in settings {
            guard let text = reader.string(forKey: setting.key) else { continue }
            do {
                try setting.apply(&configuration, text.trimmingCharacters(in: .whitespaces))
            } catch {
                // Name what the user set: the flag, or the variable when the value came from there.
                let name = arguments[setting.flag] != nil ? "--" + setting.flag : setting.environmentVariable
                throw ConfigurationError("\(name): \(error)")
            }
        }
        return configuration
    }
}

// MARK: - Value parsers (SPEC §4: durations in s/ms/m/h, sizes in K/M/G powers of 1024)

/// Seconds from `30`, `250ms`, `5s`, `5m`, `1h`, `1.5s`.
///
/// Errors say what is wrong with `text` alone; the caller names the flag or variable.
package func parseDuration(_ text: String, allowZero: Bool = true) throws(ConfigurationError) -> Double {
    let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
    var number = Substring(text)
    var scale = 1.0
    for (suffix, factor) in units where text.hasSuffix(suffix) {
        number = text.dropLast(suffix.count)
        scale = factor
        break
    }
    guard !text.hasPrefix("-") else { throw ConfigurationError("'\(text)' is negative; a duration is 0 or more") }
    guard let value = Double(number), value.isFinite, (value * scale).isFinite else {
        throw ConfigurationError("'\(text)' is not a duration (seconds, or a number with ms, s, m or h)")
    }
    guard allowZero || value > 0 else { throw ConfigurationError("'\(text)' must be above 0") }
    return value * scale
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
private func parseFraction(_ text: String) throws(ConfigurationError) -> Double {
    guard let value = Double(text), value.isFinite, value >= 0, value <= 1 else {
        throw ConfigurationError("'\(text)' is not a fraction from 0 to 1")
    }
    return value
}

/// Requests per second, 0 or more (`50`, `0.5`).
private func parseRate(_ text: String) throws(ConfigurationError) -> Double {
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
private func parseIDs(_ text: String) throws(ConfigurationError) -> [UInt32] {
    var ids: [UInt32] = []
    for part in text.split(separator: ",") {
        guard let id = UInt32(part.trimmingCharacters(in: .whitespaces)) else {
            throw ConfigurationError("'\(part)' is not a numeric id")
        }
        ids.append(id)
    }
    return ids
}

private func parseMode(_ text: String) throws(ConfigurationError) -> UInt32 {
    guard let mode = UInt32(text, radix: 8), mode <= 0o777 else {
        throw ConfigurationError("'\(text)' is not an octal file mode such as 0660")
    }
    return mode
}

private func parseBool(_ text: String) throws(ConfigurationError) -> Bool {
    switch text.lowercased() {
    case "1", "true", "yes", "on": return true
    case "0", "false", "no", "off", "": return false
    default: throw ConfigurationError("'\(text)' is not on or off (true/false, yes/no and 1/0 work too)")
    }
}

private func parseURL(_ text: String) throws(ConfigurationError) -> String {
    let trimmed = text.hasSuffix("/") ? String(text.dropLast()) : text
    guard trimmed.hasPrefix("https://") || trimmed.hasPrefix("http://"), trimmed.count > 8 else {
        throw ConfigurationError("'\(text)' is not an http(s) URL")
    }
    return trimmed
}
