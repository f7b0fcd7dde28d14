import ContactdJSON

extension DaemonConfiguration {
    /// What `daemon.config` answers: every setting by name, its effective value as a flag would
    /// take it (`null` when unset) and where it came from; and the token's source only, never its
    /// value (SPEC §7).
    package func report(tokenSource: Secret.Source) -> JSONValue {
        var object = JSONObject()
        for setting in Self.settings {
            object[setting.name] = .object([
                "value": setting.value(in: self).map(JSONValue.string) ?? .null,
                "source": .string((sources[setting.name] ?? .default).rawValue),
            ])
        }
        object["api-token"] = .object(["source": .string(tokenSource.rawValue)])
        return .object(object)
    }
}
