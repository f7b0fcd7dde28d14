import ContactdClient
import ContactdJSON
import Foundation

/// Human-readable views: a contact as aligned key/value lines, counters as a two-column table
/// with units, settings as three columns. Text from the API is escaped: a control character in a
/// contact's name must not reach the terminal as one.
enum ContactView {
    static func render(_ found: ContactLookup) -> String {
        var lines: [String] = []
        if let name = found.contact.name { lines.append(escape(name)) }
        lines.append(table(found.contact.members, indent: "  "))
        let reason = found.staleReason.map { ", \($0)" } ?? ""
        lines.append("  (cache: \(found.cacheStatus)\(reason), age \(duration(found.age)))")
        return lines.joined(separator: "\n")
    }

    /// `daemon.reload`'s outcome: what applies now, what waits for a restart, the token.
    static func reload(_ result: ReloadResult) -> String {
        var lines: [String] = []
        if result.applied.isEmpty && result.afterRestart.isEmpty && result.configurationError == nil {
            lines.append("configuration unchanged")
        }
        if !result.applied.isEmpty {
            lines.append("applied now:")
            lines += result.applied.sorted { $0.key < $1.key }.map { "  \($0.key) = \($0.value)" }
        }
        if !result.afterRestart.isEmpty {
            lines.append("after a restart (systemctl restart contactd):")
            lines += result.afterRestart.map { "  \($0)" }
        }
        if let token = result.token { lines.append("token: \(token)") }
        return lines.joined(separator: "\n")
    }

    /// Nested objects flatten to dotted keys; counters get their units (`held_bytes 1.0 MiB`,
    /// `uptime 3h 2min`, `hit_ratio 75.0%`, `latency_ms.p50 5.2 ms`).
    static func table(_ object: JSONObject, indent: String = "", units: Bool = false) -> String {
        var rows: [(String, String)] = []
        flatten(object, prefix: "", units: units, into: &rows)
        let width = rows.map(\.0.count).max() ?? 0
        return rows.map { key, value in
            indent + key + String(repeating: " ", count: width - key.count + 2) + value
        }.joined(separator: "\n")
    }

    private static func flatten(_ object: JSONObject, prefix: String, units: Bool, into rows: inout [(String, String)])
    {
        for (key, value) in object.members {
            let name = prefix.isEmpty ? key : prefix + "." + key
            if case .object(let nested) = value, !nested.members.isEmpty {
                flatten(nested, prefix: name, units: units, into: &rows)
            } else {
                rows.append((escape(name), units ? withUnit(name, value) : text(value)))
            }
        }
    }

    /// A counter with its unit, chosen by its name.
    private static func withUnit(_ name: String, _ value: JSONValue) -> String {
        guard let number = value.doubleValue else { return text(value) }
        if name.hasSuffix("bytes") { return size(number) }
        if name.hasSuffix("ratio") { return String(format: "%.1f%%", number * 100) }
        if name == "uptime" || name.hasSuffix("stale_for") { return duration(number) }
        if name.contains("latency_ms") { return String(format: "%.1f ms", number) }
        return text(value)
    }

    /// `1.2 MiB`, `512 B`.
    static func size(_ bytes: Double) -> String {
        var value = bytes
        for unit in ["B", "KiB", "MiB", "GiB"] {
            if value < 1024 || unit == "GiB" {
                return unit == "B" ? "\(Int(value)) B" : String(format: "%.1f %@", value, unit)
            }
            value /= 1024
        }
        return "\(Int(bytes)) B"
    }

    /// `42s`, `5min 3s`, `3h 2min`, `2d 4h`: the two largest units, as systemctl writes them.
    static func duration(_ seconds: Double) -> String {
        var rest = Int(seconds.rounded(.down))
        let units: [(String, Int)] = [("d", 86_400), ("h", 3600), ("min", 60), ("s", 1)]
        var parts: [String] = []
        for (unit, size) in units where rest >= size || (unit == "s" && parts.isEmpty) {
            parts.append("\(rest / size)\(unit)")
            rest %= size
            if parts.count == 2 { break }
        }
        return parts.joined(separator: " ")
    }

    private static func text(_ value: JSONValue) -> String {
        switch value {
        case .null: "-"
        case .bool(let b): b ? "yes" : "no"
        case .number(let n): n
        case .string(let s): escape(s)
        case .array(let elements): elements.isEmpty ? "-" : elements.map(text).joined(separator: ", ")
        case .object(let o): o.members.isEmpty ? "-" : escape(value.jsonString)
        }
    }

    /// Control characters (C0, DEL, C1) written as escapes (`\n`, `\t`, `\e`, `\x07`, `\u{9b}`),
    /// and a backslash doubled, so that text from the API cannot move the cursor, recolour or
    /// retitle the terminal.
    static func escape(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case 0x1B: out += "\\e"
            case 0x5C: out += "\\\\"
            case 0x00..<0x20, 0x7F: out += String(format: "\\x%02x", scalar.value)
            case 0x80..<0xA0: out += String(format: "\\u{%02x}", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// JSON indented by two spaces, members in their order, numbers as sent.
    static func pretty(_ value: JSONValue, indent: String = "") -> String {
        let inner = indent + "  "
        switch value {
        case .array(let elements) where !elements.isEmpty:
            return "[\n" + elements.map { inner + pretty($0, indent: inner) }.joined(separator: ",\n") + "\n" + indent
                + "]"
        case .object(let object) where !object.members.isEmpty:
            let members = object.members.map { key, member in
                inner + JSONValue.string(key).jsonString + ": " + pretty(member, indent: inner)
            }
            return "{\n" + members.joined(separator: ",\n") + "\n" + indent + "}"
        default:
            return value.jsonString
        }
    }
}
