import ContactdProtocol

extension DaemonConfiguration {
    /// What `daemon.config` answers: every setting by name, its effective value as a flag would
    /// take it (`null` when unset) and where it came from; and the token's source only, never its
    /// value (SPEC §7).
    package func report(tokenSource: Secret.Source) -> DaemonConfig {
        var report = DaemonConfig()
        for setting in Self.settings {
            report.add(
                setting.name,
                DaemonConfig.Setting(value: setting.value(in: self), source: sources[setting.name] ?? .default)
            )
        }
        report.apiTokenSource = tokenSource.reported
        return report
    }
}
