import Foundation

/// A certificate authority made for one test, and a server certificate it signed for
/// `localhost` and 127.0.0.1 (with openssl: `TestTools.hasOpenSSL`).
package struct TestCertificates: Sendable {
    package let authority: String
    package let certificate: String
    package let key: String

    /// Makes them in `directory`.
    package static func make(in directory: String) async throws -> TestCertificates {
        try "subjectAltName=DNS:localhost,IP:127.0.0.1\n".write(
            toFile: directory + "/ext.cnf",
            atomically: true,
            encoding: .utf8
        )
        for command in [
            "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 1 -subj /CN=test-ca",
            "req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost",
            "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 1 -extfile ext.cnf",
        ] {
            let result = try await runCommand(
                URL(fileURLWithPath: "/usr/bin/sh"),
                ["-c", "cd \(directory) && openssl \(command) 2>&1"]
            )
            guard result.status == 0 else { throw TestSupportError("openssl \(command): \(result.stdout)") }
        }
        return TestCertificates(
            authority: directory + "/ca.crt",
            certificate: directory + "/server.crt",
            key: directory + "/server.key"
        )
    }

    /// redis-server's options for this certificate (clients are not asked for one).
    var redisArguments: [String] {
        [
            "--tls-cert-file", certificate, "--tls-key-file", key, "--tls-ca-cert-file", authority,
            "--tls-auth-clients", "no",
        ]
    }

    /// The same in a sentinel's config file.
    var sentinelConfig: String {
        "tls-cert-file \(certificate)\ntls-key-file \(key)\ntls-ca-cert-file \(authority)\ntls-auth-clients no\n"
    }
}
