import ContactdClient
import ContactdJSON

/// Human-readable views: a contact as aligned key/value lines, stats as a two-column table.
enum ContactView {
    static func render(_ found: ContactLookup) -> String {
        var lines: [String] = []
        if let name = found.contact["name"]?.stringValue { lines.append(name) }
        lines.append(table(found.contact.members, indent: "  "))
        let reason = found.staleReason.map { ", \($0)" } ?? ""
        lines.append("  (cache: \(found.cacheStatus)\(reason), age \(Int(found.age))s)")
        return lines.joined(separator: "\n")
    }

    /// Nested objects flatten to dotted keys; arrays join with commas; null shows as "-".
    /// `daemon.config` as three columns: setting, value (`-` when unset; the token shows none),
    /// source.
    static func settings(_ config: JSONObject) -> String {
        let rows = config.members.map { name, entry in
            (name, entry["value"].map(text) ?? "(not shown)", entry["source"]?.stringValue ?? "?")
        }
        let nameWidth = max(7, rows.map(\.0.count).max() ?? 0)
        let valueWidth = max(5, rows.map(\.1.count).max() ?? 0)
        func pad(_ text: String, _ width: Int) -> String {
            text + String(repeating: " ", count: width - text.count + 2)
        }
        let header = pad("SETTING", nameWidth) + pad("VALUE", valueWidth) + "SOURCE"
        return ([header] + rows.map { pad($0.0, nameWidth) + pad($0.1, valueWidth) + $0.2 }).joined(separator: "\n")
    }

    static func table(_ object: JSONObject, indent: String = "") -> String {
        var rows: [(String, String)] = []
        flatten(object, prefix: "", into: &rows)
        let width = rows.map(\.0.count).max() ?? 0
        return rows.map { key, value in
            indent + key + String(repeating: " ", count: width - key.count + 2) + value
        }.joined(separator: "\n")
    }

    private static func flatten(_ object: JSONObject, prefix: String, into rows: inout [(String, String)]) {
        for (key, value) in object.members {
            let name = prefix.isEmpty ? key : prefix + "." + key
            if case .object(let nested) = value, !nested.members.isEmpty {
                flatten(nested, prefix: name, into: &rows)
            } else {
                rows.append((name, text(value)))
            }
        }
    }

    private static func text(_ value: JSONValue) -> String {
        switch value {
        case .null: "-"
        case .bool(let b): b ? "yes" : "no"
        case .number(let n): n
        case .string(let s): s.replacingNewlines()
        case .array(let elements): elements.isEmpty ? "-" : elements.map(text).joined(separator: ", ")
        case .object(let o): o.members.isEmpty ? "-" : value.jsonString
        }
    }
}

extension String {
    fileprivate func replacingNewlines() -> String {
        String(map { $0.isNewline ? " " : $0 })
    }
}
