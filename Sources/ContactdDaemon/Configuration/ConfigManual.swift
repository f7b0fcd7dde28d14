import Foundation

/// The manual's parts that come from the settings table, so that a new setting reaches them
/// without anyone remembering to write it there: `contactd.yaml(5)` and contactd(8)'s
/// ENVIRONMENT, FILES, EXIT STATUS and SEE ALSO (the rest of contactd(8) is ArgumentParser's
/// `generate-manual`). Both are committed under packaging/man and checked against this by a test;
/// scripts/package puts the date in (`@DATE@`).
extension DaemonConfiguration {
    /// `contactd.yaml(5)`, in mdoc.
    package static var configManualPage: String {
        var lines = [
            ".Dd @DATE@",
            ".Dt CONTACTD.YAML 5",
            ".Os",
            ".Sh NAME",
            ".Nm contactd.yaml",
            ".Nd settings of the contactd daemon",
            ".Sh SYNOPSIS",
            ".Pa /etc/contactd/contactd.yaml",
            ".Sh DESCRIPTION",
            ".Xr contactd 8",
            "reads its settings from this file at start, when it exists; a different file is named with",
            ".Fl -config .",
            "It is YAML (JSON when the name ends in .json): one key per setting, named as the flag without",
            "its dashes, e.g.",
            ".Li cache-max-entries: 100000 .",
            "An unknown key or a bad value stops a start with exit status 78 and a message naming it;",
            ".Ql contactd --check-config",
            "reads the file as a start would and says so without starting.",
            ".Pp",
            "A flag wins over its",
            ".Ev CONTACTD_*",
            "environment variable, which wins over this file, which wins over the default.",
            "Durations are seconds or a number with ms, s, m or h; sizes are bytes or a number with K, M or G;",
            "lists are YAML lists or comma-separated.",
            ".Pp",
            ".Ql systemctl reload contactd",
            "or",
            ".Ql contactctl reload",
            "reads the file again: the keys marked",
            ".Em applied on reload",
            "below change at once, the others when the daemon next starts.",
            "A file that no longer loads on reload changes nothing; the daemon keeps its running settings.",
            ".Pp",
            "The API token is not a setting here: it comes from",
            ".Pa /etc/credstore/contactd.api-token",
            "(systemd's",
            ".Cm LoadCredential= ) ,",
            "from the file named by",
            ".Cm token-file ,",
            "or from",
            ".Ev CONTACTD_API_TOKEN .",
            ".Sh KEYS",
            ".Bl -tag -width Ds",
        ]
        for setting in settings where setting.name != "config" {
            let placeholder: String
            switch setting.form {
            case .value(let name): placeholder = " Ar \(name)"
            case .list(let name): placeholder = " Ar \(name) Ns , Ar ..."
            case .presence: placeholder = " Cm on | off"
            }
            lines.append(".It Ic \(setting.name) Ns :\(placeholder)")
            lines.append(mdocText(setting.help))
            lines.append(".Pp")
            lines.append(mdocText("Default: \(setting.defaultText)."))
            lines.append("Environment:")
            lines.append(".Ev \(setting.environmentVariable) .")
            lines.append(setting.reload.isLive ? "Applied on reload." : "Takes effect at the next start.")
        }
        lines += [
            ".El",
            ".Sh FILES",
            ".Bl -tag -width Ds",
            ".It Pa /etc/contactd/contactd.yaml",
            "This file; the package installs it with every key commented out at its default.",
            ".It Pa /etc/credstore/contactd.api-token",
            "The API token (mode 0600), handed to the service by systemd.",
            ".El",
            ".Sh EXAMPLES",
            ".Bd -literal -offset indent",
            "cache-max-entries: 500000",
            "ttl: 10m",
            "allow-gid: [1001, 1002]",
            "metrics-listen: 127.0.0.1:9464",
            ".Ed",
            ".Sh SEE ALSO",
            ".Xr contactctl 1 ,",
            ".Xr contactd 8 ,",
            ".Xr systemd.exec 5",
        ]
        return lines.joined(separator: "\n") + "\n"
    }

    /// contactd(8)'s sections after the generated ones.
    package static var daemonManualSections: String {
        var lines = [
            ".Sh ENVIRONMENT",
            ".Bl -tag -width Ds",
            ".It Ev CONTACTD_API_TOKEN",
            "The API token, when neither",
            ".Fl -token-file",
            "nor a systemd credential gives one. Never a flag: a flag would show in",
            ".Xr ps 1 .",
            ".It Ev CREDENTIALS_DIRECTORY",
            "Set by systemd; the token is read from its file",
            ".Pa api-token .",
            ".It Ev LISTEN_FDS , Ev LISTEN_FDNAMES",
            "Set by systemd for socket activation: the listening socket, and cache snapshots kept in the",
            "file descriptor store.",
            ".It Ev NOTIFY_SOCKET , Ev WATCHDOG_USEC",
            "Set by systemd: readiness, reload and stop notifications, and the watchdog.",
        ]
        for setting in settings {
            lines.append(".It Ev \(setting.environmentVariable)")
            lines.append(mdocText("As --\(setting.name)."))
        }
        lines += [
            ".El",
            ".Sh FILES",
            ".Bl -tag -width Ds",
            ".It Pa /etc/contactd/contactd.yaml",
            "Settings; see",
            ".Xr contactd.yaml 5 .",
            ".It Pa /etc/credstore/contactd.api-token",
            "The API token (mode 0600), loaded by the service's",
            ".Cm LoadCredential= .",
            ".It Pa /run/contactd/contactd.sock",
            "The socket clients connect to (owned by systemd's",
            ".Pa contactd.socket ) .",
            ".It Pa /usr/lib/systemd/system/contactd.service , Pa contactd.socket",
            "The units.",
            ".El",
            ".Sh EXIT STATUS",
            ".Bl -tag -width Ds",
            ".It 0",
            "A clean stop, or",
            ".Fl -check-config",
            "found nothing wrong.",
            ".It 64",
            "The command line cannot be read (an unknown flag, a missing value).",
            ".It 78",
            "No API token, a bad setting or config file, or an unusable socket path; the message says which.",
            ".El",
            ".Sh SEE ALSO",
            ".Xr contactctl 1 ,",
            ".Xr contactd.yaml 5 ,",
            ".Xr systemd.socket 5 ,",
            ".Xr systemd-creds 1",
        ]
        return lines.joined(separator: "\n") + "\n"
    }
}

/// `text` as an mdoc text line: backslashes escaped, and a leading `.` or `'` kept from being
/// read as a macro.
private func mdocText(_ text: String) -> String {
    let escaped = text.replacingOccurrences(of: "\\", with: "\\e")
    return escaped.hasPrefix(".") || escaped.hasPrefix("'") ? "\\&" + escaped : escaped
}
