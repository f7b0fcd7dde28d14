import ContactdProtocol
import Foundation
import Testing

/// The version is written once, in `ContactdVersion.current`; the changelog's newest entry (from
/// which scripts/package builds the Debian changelog) and the Python client say the same.
@Suite struct VersionTests {
    static func repositoryFile(_ path: String) throws -> String {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../" + path)
        return try String(contentsOf: url, encoding: .utf8)
    }

    @Test func theChangelogsNewestEntryIsThisVersion() throws {
        let changelog = try Self.repositoryFile("CHANGELOG.md")
        let newest = changelog.split(separator: "\n").first { $0.hasPrefix("## ") }
        #expect(newest?.hasPrefix("## \(ContactdVersion.current) — ") == true, "CHANGELOG.md: \(newest ?? "no entry")")
    }

    @Test func thePythonClientHasThisVersion() throws {
        let module = try Self.repositoryFile("clients/python/src/contactd/__init__.py")
        #expect(module.contains("__version__ = \"\(ContactdVersion.current)\""))
    }
}
