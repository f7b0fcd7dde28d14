import ContactdJSON
import Glibc

/// `contactd --check-config` (like `nginx -t`): reads the flags, the environment, the config file
/// and the token as a start would, and says what a start would run with, or why it would not
/// start — before a reload or a restart, not after.
package enum ConfigCheck {
    /// What the check found: the effective settings and their sources (the token's source only,
    /// never its value), and warnings that do not stop a start.
    package struct Report: Sendable {
        package let settings: String
        package let warnings: [String]
    }

    /// Checks what a start with `arguments` and `environment` would read; throws the error a start
    /// would stop with (exit 78).
    package static func run(
        arguments: [String: String],
        environment: [String: String],
        defaultConfigFile: String? = ConfigFile.defaultPath
    ) throws(ConfigurationError) -> Report {
        let configuration = try DaemonConfiguration.load(
            arguments: arguments,
            environment: environment,
            defaultConfigFile: defaultConfigFile
        )
        let tokenSource: Secret.Source =
            configuration.demo
            ? .demo
            : try Secret.apiToken(file: configuration.upstream.tokenFile, environment: environment).source
        var warnings: [String] = []
        if !configuration.demo, let tokenFile = Secret.permissionWarning(tokenFile: configuration.upstream.tokenFile) {
            warnings.append("the token file \(tokenFile) is readable by other users (chmod 600 it)")
        }
        if let path = DaemonConfiguration.configFile(
            arguments: arguments,
            environment: environment,
            defaultConfigFile: defaultConfigFile
        ) {
            var status = stat()
            if stat(path, &status) == 0, status.st_mode & (S_IWGRP | S_IWOTH) != 0 {
                let who = status.st_mode & S_IWOTH != 0 ? "anyone" : "its group"
                warnings.append(
                    "\(path) can be written by \(who), not only its owner: whoever can write it can point "
                        + "contactd at another API (chmod go-w \(path))"
                )
            }
        }
        return Report(settings: table(configuration.report(tokenSource: tokenSource)), warnings: warnings)
    }

    /// The settings as `contactctl config` shows them: a row per setting, value and source.
    static func table(_ report: JSONValue) -> String {
        guard case .object(let object) = report else { return "" }
        let rows = object.members.map { name, entry in
            (
                name, entry["value"].flatMap(\.stringValue) ?? (name == "api-token" ? "(not shown)" : "(unset)"),
                entry["source"]?.stringValue ?? "?"
            )
        }
        let nameWidth = max(7, rows.map(\.0.count).max() ?? 0)
        let valueWidth = max(5, rows.map(\.1.count).max() ?? 0)
        func pad(_ text: String, _ width: Int) -> String {
            text + String(repeating: " ", count: width - text.count + 2)
        }
        let header = pad("SETTING", nameWidth) + pad("VALUE", valueWidth) + "SOURCE"
        return ([header] + rows.map { pad($0.0, nameWidth) + pad($0.1, valueWidth) + $0.2 }).joined(separator: "\n")
    }
}
