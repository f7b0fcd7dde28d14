import Foundation
import Glibc

/// What a test needs from the machine beyond the built products, for `.enabled(if:)`: a test that
/// cannot run here is reported as skipped, with the reason, never passed.
package enum TestTools {
    /// Root and util-linux's `setpriv`: to run a program as uid 65534 (nobody).
    package static var canActAsNobody: Bool {
        getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")
    }

    /// util-linux's `prlimit`: to start a program under a descriptor limit.
    package static var hasPrlimit: Bool { FileManager.default.isExecutableFile(atPath: "/usr/bin/prlimit") }

    /// systemd's `systemd-socket-activate`.
    package static var hasSocketActivate: Bool {
        FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-socket-activate")
    }

    package static var hasOpenSSL: Bool { FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl") }

    /// Runs the built `contactctl` with `arguments` as uid and gid 65534, no other groups.
    package static func contactctlAsNobody(_ arguments: [String]) async throws -> CommandResult {
        try await runCommand(
            URL(fileURLWithPath: "/usr/bin/setpriv"),
            ["--reuid=65534", "--regid=65534", "--clear-groups", try builtProductURL("contactctl").path] + arguments
        )
    }
}
