import Testing

@testable import ContactdDaemon

/// Issue #23, item 6: allow lists need peers' real ids, which a user namespace other than the
/// identity (systemd's PrivateUsers=yes) hides: the daemon refuses them there instead.
@Suite struct AllowListNamespaceTests {
    @Test func theIdentityMapAllowsAllowLists() {
        #expect(AllowLists.unusableReason(uidMap: "         0          0 4294967295\n") == nil)
    }

    @Test func aPrivateUsersMapRefusesThemSayingWhy() throws {
        let reason = try #require(
            AllowLists.unusableReason(uidMap: "         0          0          1\n     61234      61234          1\n")
        )
        #expect(reason.contains("PrivateUsers") && reason.contains("65534"))
    }
}
