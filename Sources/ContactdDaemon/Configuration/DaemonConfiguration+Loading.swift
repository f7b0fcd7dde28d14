import Configuration
import ContactdCore
import ContactdProtocol
import Foundation

extension DaemonConfiguration {
    /// Builds a configuration: a flag's value wins over its environment variable, which wins over
    /// the config file, which wins over the default. `arguments` maps setting names (`"ttl"`) to
    /// their text, as `commandLineValues(_:)` reads them. The file is `--config` (or
    /// `CONTACTD_CONFIG`), else `defaultConfigFile` if it exists.
    ///
    /// An unknown `CONTACTD_*` variable or an unknown key in the file stops it, named with the
    /// nearest known name: a typo must not be ignored.
    package static func load(
        arguments: [String: String],
        environment: [String: String],
        defaultConfigFile: String? = ConfigFile.defaultPath
    ) throws(ConfigurationError) -> DaemonConfiguration {
        let known = Set(settings.map(\.environmentVariable) + [Secret.apiTokenVariable])
        for name in environment.keys.sorted() where name.hasPrefix("CONTACTD_") && !known.contains(name) {
            let asSetting = name.dropFirst("CONTACTD_".count).lowercased().replacingOccurrences(of: "_", with: "-")
            let nearest = nearestSetting(to: asSetting).map { name in
                "; did you mean " + (settings.first { $0.name == name }?.environmentVariable ?? name) + "?"
            }
            throw ConfigurationError("\(name) is not a contactd setting\(nearest ?? "")")
        }
        let configPath = arguments["config"] ?? environment["CONTACTD_CONFIG"]
        var fileValues: [String: String] = [:]
        if let path = configFile(arguments: arguments, environment: environment, defaultConfigFile: defaultConfigFile) {
            fileValues = try ConfigFile.read(path)
        }
        var values: [AbsoluteConfigKey: ConfigValue] = [:]
        var inFile: [AbsoluteConfigKey: ConfigValue] = [:]
        for setting in settings {
            if let text = arguments[setting.name] {
                values[AbsoluteConfigKey(setting.key)] = ConfigValue(.string(text), isSecret: false)
            }
            if let text = fileValues[setting.name] {
                inFile[AbsoluteConfigKey(setting.key)] = ConfigValue(.string(text), isSecret: false)
            }
        }
        let reader = ConfigReader(providers: [
            InMemoryProvider(name: "arguments", values: values),
            EnvironmentVariablesProvider(environmentVariables: environment),
            InMemoryProvider(name: "file", values: inFile),
        ])
        var configuration = DaemonConfiguration()
        /// What the user set, as they set it: the flag, or the variable when it came from there.
        var given: [String: String] = [:]
        for setting in settings {
            guard let text = reader.string(forKey: setting.key) else { continue }
            let source: ValueSource =
                arguments[setting.name] != nil
                ? .flag : environment[setting.environmentVariable] != nil ? .environment : .file
            let name: String
            switch source {
            case .flag: name = "--" + setting.name
            case .environment: name = setting.environmentVariable
            default: name = "\(configPath ?? defaultConfigFile ?? "the config file"): \(setting.name)"
            }
            given[setting.name] = name
            configuration.sources[setting.name] = source
            do {
                try setting.apply(text.trimmingCharacters(in: .whitespaces), to: &configuration)
            } catch {
                throw ConfigurationError("\(name): \(error)")
            }
        }
        // `--demo` brings its own API and token; a URL or token file given with it would be
        // ignored, and no setting the user gives is ignored silently.
        if configuration.demo, let ignored = given["api-url"] ?? given["token-file"] {
            throw ConfigurationError("\(ignored) cannot be used with demo mode, which serves its own sample API")
        }
        return configuration
    }

    /// The config file a start reads: `--config`, else `CONTACTD_CONFIG`, else `defaultConfigFile`
    /// when it exists; `nil` for none.
    package static func configFile(
        arguments: [String: String],
        environment: [String: String],
        defaultConfigFile: String? = ConfigFile.defaultPath
    ) -> String? {
        arguments["config"] ?? environment["CONTACTD_CONFIG"]
            ?? defaultConfigFile.flatMap { FileManager.default.fileExists(atPath: $0) ? $0 : nil }
    }

    /// The settings given on a command line, by name: `--name VALUE`, `--name=VALUE`, or `--name`
    /// alone for a setting turned on by its presence. A repeated list setting adds up; any other
    /// repeated setting takes its last value.
    package static func commandLineValues(_ arguments: [String]) throws(UsageError) -> [String: String] {
        var values: [String: String] = [:]
        var rest = arguments[...]
        while let argument = rest.popFirst() {
            guard argument.hasPrefix("--"), argument.count > 2 else {
                throw UsageError("unexpected argument '\(argument)'; settings are written --name value")
            }
            var name = String(argument.dropFirst(2))
            var inline: String?
            if let equals = name.firstIndex(of: "=") {
                inline = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            guard let setting = settings.first(where: { $0.name == name }) else {
                throw UsageError("unknown option '--\(name)'" + suggestion(for: name))
            }
            switch setting.form {
            case .presence:
                guard inline == nil else { throw UsageError("--\(name) takes no value") }
                values[name] = "on"
            case .value, .list:
                guard let value = inline ?? rest.popFirst() else { throw UsageError("--\(name) needs a value") }
                if case .list = setting.form, let earlier = values[name] {
                    values[name] = earlier + "," + value
                } else {
                    values[name] = value
                }
            }
        }
        return values
    }

    /// `; did you mean --ttl?` for the setting closest to a mistyped name, if one is close.
    private static func suggestion(for name: String) -> String {
        nearestSetting(to: name).map { "; did you mean --\($0)?" } ?? ""
    }

    /// The name of the setting closest to a mistyped one, if one is close.
    package static func nearestSetting(to name: String) -> String? {
        let scored = settings.map { ($0.name, editDistance(name, $0.name)) }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= max(2, name.count / 4) else { return nil }
        return best.0
    }

    /// Every setting for `--help`: the flag and what it takes, then its help and its default,
    /// wrapped to fit 80 columns.
    package static var helpText: String {
        settings.map { setting in
            let flag: String
            switch setting.form {
            case .value(let placeholder), .list(let placeholder): flag = "--\(setting.name) <\(placeholder)>"
            case .presence: flag = "--\(setting.name)"
            }
            let text = "\(setting.help) Default: \(setting.defaultText)."
            return "  \(flag)\n" + wrap(text, width: 78, indent: "      ")
        }.joined(separator: "\n")
    }
}

extension DaemonConfiguration {
    /// A config file with every setting commented out at its default, each under its help:
    /// `systemd/contactd.yaml`, the file packages install as `/etc/contactd/contactd.yaml`.
    package static var exampleConfigFile: String {
        var lines = [
            "# contactd's settings (contactd.yaml(5)), read at start. `systemctl reload contactd` or",
            "# `contactctl reload` reads them again and applies those marked \"Applied on reload\" at once;",
            "# the others take effect at the next start (`contactctl reload` says which changed).",
            "# Names are the flags without \"--\"; a flag or a CONTACTD_* variable wins over this file.",
            "# Every setting is shown at its default: uncomment a line to change it.",
            "# Durations: seconds or a number with ms, s, m or h. Sizes: bytes or a number with K, M or G.",
        ]
        for setting in settings where setting.name != "config" {
            lines.append("")
            let value = setting.value(in: DaemonConfiguration())
            let unset = value == nil ? " Unset by default: \(setting.defaultText)." : ""
            let live = setting.reload.isLive ? " Applied on reload." : ""
            lines.append(wrap(setting.help + unset + live, width: 98, indent: "# "))
            // Quoted where YAML would read the text otherwise (`contactd:` ends like a key).
            let shown = value.map { $0.hasSuffix(":") || $0.contains(": ") ? "\"\($0)\"" : $0 }
            lines.append("#\(setting.name):" + (shown.map { " " + $0 } ?? ""))
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// `text` broken at spaces into lines of at most `width` columns, each starting with `indent`.
private func wrap(_ text: String, width: Int, indent: String) -> String {
    var lines: [String] = []
    var line = indent
    for word in text.split(separator: " ") {
        if line.count > indent.count, line.count + 1 + word.count > width {
            lines.append(line)
            line = indent
        }
        line += (line.count > indent.count ? " " : "") + word
    }
    lines.append(line)
    return lines.joined(separator: "\n")
}

/// A command line that cannot be read (an unknown option, a missing value): exit status 64.
package struct UsageError: Error, Sendable, CustomStringConvertible {
    package let description: String

    package init(_ description: String) {
        self.description = description
    }
}

/// Levenshtein distance: how many one-character edits turn `a` into `b`.
private func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a.utf8)
    let b = Array(b.utf8)
    var previous = Array(0...b.count)
    for i in 1...max(1, a.count) where !a.isEmpty {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in 1...max(1, b.count) where !b.isEmpty {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return a.isEmpty ? b.count : previous[b.count]
}
