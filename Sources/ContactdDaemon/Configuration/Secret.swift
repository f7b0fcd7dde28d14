import ContactdProtocol
import Foundation

/// A secret contactd holds: the API token, the shared cache's password, the sentinels' password
/// and the key that seals what is stored in Redis. Its description is redacted and it is not
/// `Codable`, so it cannot leak into logs, responses or errors by accident; `value` is read only
/// where the secret is used.
package struct Secret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    package let value: String

    package init(_ value: String) {
        self.value = value
    }

    package var description: String { "<redacted>" }
    package var debugDescription: String { "<redacted>" }

    /// Where a secret came from: what `daemon.config` says of the token (never its value).
    package enum Source: Sendable {
        /// The file a flag names (`--token-file`, `--shared-cache-password-file`, …).
        case file
        /// `$CREDENTIALS_DIRECTORY/<name>` (systemd's `LoadCredential=`).
        case credential
        /// An environment variable (only the token: `CONTACTD_API_TOKEN`).
        case environment
        /// `--demo` makes its own token.
        case demo

        /// The source as `daemon.config` reports it.
        package var reported: ValueSource {
            switch self {
            case .file: .file
            case .credential: .credential
            case .environment: .environment
            case .demo: .demo
            }
        }
    }

    /// The one way a secret is read: the file `flag` names, else the credential `credential`,
    /// else the environment variable `variable` if there is one; `nil` when none gives it.
    /// Surrounding whitespace is trimmed; a file named that is missing, unreadable or empty is an
    /// error, as is an empty variable.
    package static func load(
        file: String?,
        flag: String,
        credential: String,
        variable: String? = nil,
        environment: [String: String]
    ) throws(ConfigurationError) -> (secret: Secret, source: Source)? {
        if let file { return (try read(file, what: flag), .file) }
        if let directory = environment["CREDENTIALS_DIRECTORY"], !directory.isEmpty {
            let path = directory + "/" + credential
            if FileManager.default.fileExists(atPath: path) {
                return (try read(path, what: "credential \(credential)"), .credential)
            }
        }
        if let variable, let value = environment[variable] {
            let trimmed = value.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !trimmed.isEmpty else { throw ConfigurationError("\(variable) is set but empty") }
            return (Secret(trimmed), .environment)
        }
        return nil
    }

    private static func read(_ path: String, what: String) throws(ConfigurationError) -> Secret {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError("\(what): cannot read \(path) (missing or unreadable)")
        }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { throw ConfigurationError("\(what): \(path) is empty") }
        return Secret(text)
    }

    // MARK: The API token

    /// The variable the token may come from; it is not a setting.
    package static let apiTokenVariable = "CONTACTD_API_TOKEN"

    /// The API token: `--token-file`, then the `api-token` credential, then `CONTACTD_API_TOKEN`
    /// (SPEC §4); finding none is an error.
    package static func apiToken(
        file: String?,
        environment: [String: String]
    ) throws(ConfigurationError) -> (secret: Secret, source: Source) {
        guard
            let found = try load(
                file: file,
                flag: "--token-file",
                credential: "api-token",
                variable: apiTokenVariable,
                environment: environment
            )
        else {
            throw ConfigurationError(
                "no API token: pass --token-file PATH, use LoadCredential=api-token:… under systemd, or set CONTACTD_API_TOKEN (or run with --demo)"
            )
        }
        return found
    }

    /// The path of `tokenFile` if others may read it (mode has o+r or o+w), else `nil`.
    ///
    /// A warning, not an error: the token is already exposed by then, refusing to start would
    /// only add an outage, and systemd credentials (the recommended route) are private anyway.
    package static func permissionWarning(tokenFile: String?) -> String? {
        guard let tokenFile,
            let attributes = try? FileManager.default.attributesOfItem(atPath: tokenFile),
            let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue
        else { return nil }
        return mode & 0o006 != 0 ? tokenFile : nil
    }
}
