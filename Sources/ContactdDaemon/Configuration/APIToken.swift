import Foundation

/// The API bearer token. Its description is redacted, and it is not `Codable`, so it cannot leak
/// into logs, responses or errors by accident.
package struct APIToken: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The secret itself; read only where the Authorization header is built.
    package let secret: String

    package init(_ secret: String) {
        self.secret = secret
    }

    package var description: String { "<redacted>" }
    package var debugDescription: String { "<redacted>" }

    /// The variable the token may come from; it is not a setting.
    package static let environmentVariable = "CONTACTD_API_TOKEN"

    /// Where a token came from: what `daemon.config` says of it (never its value).
    package enum Source: String, Sendable {
        /// `--token-file`.
        case file
        /// `$CREDENTIALS_DIRECTORY/api-token` (systemd's `LoadCredential=`).
        case credential
        /// `CONTACTD_API_TOKEN`.
        case environment
        /// `--demo` makes its own.
        case demo
    }

    /// Finds the token: `tokenFile`, then `$CREDENTIALS_DIRECTORY/api-token`, then
    /// `CONTACTD_API_TOKEN`; surrounding whitespace trimmed (SPEC §4).
    ///
    /// A named file that is missing, unreadable or empty is an error, as is finding no token.
    package static func load(tokenFile: String?, environment: [String: String]) throws(ConfigurationError) -> APIToken {
        try loadWithSource(tokenFile: tokenFile, environment: environment).token
    }

    /// `load(tokenFile:environment:)`, and where the token was found.
    package static func loadWithSource(
        tokenFile: String?,
        environment: [String: String]
    ) throws(ConfigurationError) -> (token: APIToken, source: Source) {
        if let tokenFile {
            return (try read(tokenFile, what: "--token-file"), .file)
        }
        if let directory = environment["CREDENTIALS_DIRECTORY"], !directory.isEmpty {
            let path = directory + "/api-token"
            if FileManager.default.fileExists(atPath: path) {
                return (try read(path, what: "credential api-token"), .credential)
            }
        }
        if let value = environment[environmentVariable] {
            let trimmed = value.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !trimmed.isEmpty else { throw ConfigurationError("CONTACTD_API_TOKEN is set but empty") }
            return (APIToken(trimmed), .environment)
        }
        throw ConfigurationError(
            "no API token: pass --token-file PATH, use LoadCredential=api-token:… under systemd, or set CONTACTD_API_TOKEN (or run with --demo)"
        )
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

    /// A secret other than the token, for the shared cache: the file `flag` names, else
    /// `$CREDENTIALS_DIRECTORY/<credential>`, else none. Kept as an `APIToken` so it is redacted
    /// wherever it is printed.
    package static func secret(
        file: String?,
        flag: String,
        credential: String,
        environment: [String: String]
    ) throws(ConfigurationError) -> APIToken? {
        if let file { return try read(file, what: flag) }
        if let directory = environment["CREDENTIALS_DIRECTORY"], !directory.isEmpty {
            let path = directory + "/" + credential
            if FileManager.default.fileExists(atPath: path) {
                return try read(path, what: "credential \(credential)")
            }
        }
        return nil
    }

    private static func read(_ path: String, what: String) throws(ConfigurationError) -> APIToken {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError("\(what): cannot read \(path) (missing or unreadable)")
        }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { throw ConfigurationError("\(what): \(path) is empty") }
        return APIToken(text)
    }
}
