import ContactdJSON
import Foundation
import Glibc
import Yams

/// The config file (`--config`, by default `/etc/contactd/contactd.yaml` when it exists): settings
/// by flag name (`ttl: 5m`, `cache-max-entries: 100000`), YAML, or JSON for a `.json` file.
///
/// Values are read as written, not as YAML types: `socket-mode: 0660` is the octal text a flag
/// would take, not YAML 1.1's integer 432. A list setting takes a YAML or JSON list, or one value.
/// swift-configuration's file providers are not used here: their snapshots cannot list the keys a
/// file holds, and an unknown key must stop the start naming it.
package enum ConfigFile {
    /// Where the daemon looks when `--config` is not given.
    package static let defaultPath = "/etc/contactd/contactd.yaml"

    /// The settings in the file at `path`, as text by setting name.
    ///
    /// - Throws: `ConfigurationError` naming the file and what is wrong: unreadable, not YAML or
    ///   JSON, not a mapping, an unknown setting (with the nearest known name), a nested value.
    package static func read(_ path: String) throws(ConfigurationError) -> [String: String] {
        guard let bytes = contents(of: path) else {
            throw ConfigurationError("\(path): cannot read the config file (missing or unreadable)")
        }
        let text = String(decoding: bytes, as: UTF8.self)
        let entries = path.hasSuffix(".json") ? try json(text, path: path) : try yaml(text, path: path)
        var values: [String: String] = [:]
        for (name, value) in entries {
            guard name != "config" else {
                throw ConfigurationError("\(path): 'config' cannot be set in the config file itself")
            }
            guard DaemonConfiguration.settings.contains(where: { $0.name == name }) else {
                let nearest = DaemonConfiguration.nearestSetting(to: name).map { "; did you mean '\($0)'?" } ?? ""
                throw ConfigurationError("\(path): unknown setting '\(name)'\(nearest)")
            }
            values[name] = value
        }
        return values
    }

    /// The file's bytes; read with plain `read(2)`, so that `/dev/null` or a pipe work too.
    private static func contents(of path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = Glibc.read(fd, &chunk, chunk.count)
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { return nil }
            if count == 0 { return bytes }
            bytes += chunk[..<count]
        }
    }

    private static func yaml(_ text: String, path: String) throws(ConfigurationError) -> [(String, String)] {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw ConfigurationError("\(path): not valid YAML (\(error))")
        }
        guard let root else { return [] }  // An empty file (or only comments) sets nothing.
        guard let mapping = root.mapping else {
            throw ConfigurationError("\(path): expected settings as 'name: value' lines")
        }
        return try mapping.map { key, value throws(ConfigurationError) in
            guard let name = key.scalar?.string else {
                throw ConfigurationError("\(path): a setting's name must be plain text")
            }
            if let scalar = value.scalar { return (name, scalar.string) }
            if let sequence = value.sequence {
                let items = sequence.compactMap { $0.scalar?.string }
                guard items.count == sequence.count else {
                    throw ConfigurationError("\(path): '\(name)' must be a value or a list of values")
                }
                return (name, items.joined(separator: ","))
            }
            throw ConfigurationError("\(path): '\(name)' must be a value or a list of values")
        }
    }

    private static func json(_ text: String, path: String) throws(ConfigurationError) -> [(String, String)] {
        let root: JSONValue
        do {
            root = try JSONParser.parse(Array(text.utf8))
        } catch {
            throw ConfigurationError("\(path): not valid JSON (\(error))")
        }
        guard case .object(let object) = root else {
            throw ConfigurationError("\(path): expected a JSON object of settings")
        }
        return try object.members.map { name, value throws(ConfigurationError) in
            func scalar(_ value: JSONValue) -> String? {
                switch value {
                case .string(let text): text
                case .number(let text): text
                case .bool(let flag): flag ? "on" : "off"
                default: nil
                }
            }
            if let text = scalar(value) { return (name, text) }
            if case .array(let items) = value {
                let texts = items.compactMap(scalar)
                if texts.count == items.count { return (name, texts.joined(separator: ",")) }
            }
            throw ConfigurationError("\(path): '\(name)' must be a value or a list of values")
        }
    }
}
