extension DaemonConfig {
    /// The settings as three columns, as `contactctl config` and `contactd --check-config` show
    /// them: setting, value (`-` when unset; the token's is never shown), source; `legend` prints
    /// the header. `escape` makes a value safe for a terminal (contactctl's, for what a daemon
    /// sent).
    public func table(legend: Bool = true, escape: (String) -> String = { $0 }) -> String {
        var rows = names.map { name in
            (name, settings[name]?.value.map(escape) ?? "-", settings[name]?.source.description ?? "?")
        }
        if let apiTokenSource { rows.append((Self.tokenKey, "(not shown)", apiTokenSource.description)) }
        let nameWidth = max(legend ? 7 : 0, rows.map(\.0.count).max() ?? 0)
        let valueWidth = max(legend ? 5 : 0, rows.map(\.1.count).max() ?? 0)
        func pad(_ text: String, _ width: Int) -> String {
            text + String(repeating: " ", count: width - text.count + 2)
        }
        let header = legend ? [pad("SETTING", nameWidth) + pad("VALUE", valueWidth) + "SOURCE"] : []
        return (header + rows.map { pad($0.0, nameWidth) + pad($0.1, valueWidth) + $0.2 }).joined(separator: "\n")
    }
}
