import ContactdJSON
import ContactdProtocol
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
        return Report(settings: configuration.report(tokenSource: tokenSource).table(), warnings: warnings)
    }
}
