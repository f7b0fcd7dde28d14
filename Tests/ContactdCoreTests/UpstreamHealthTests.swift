import ContactdCore
import ContactdJSON
import ContactdProtocol
import Testing

/// `UpstreamHealth` on its own: events in, verdicts and actions out, time given as plain seconds.
@Suite struct UpstreamHealthTests {
    let john = ContactKey.phone(PhoneNumber("+14155551234")!)
    let jane = ContactKey.phone(PhoneNumber("+442079460958")!)
    let contact = try! APIContact(apiBody: Array(#"{"id":"c1","phone_number":"+14155551234"}"#.utf8))
    let policy = UpstreamPolicy()

    @Test func aRateLimitHoldsItsKeyUntilRetryAfterAndRefusalsDoNotExtendIt() {
        var health = UpstreamHealth()
        let action = health.learn(
            .failure(.rateLimited(retryAfter: 3)),
            for: john,
            generation: 0,
            background: false,
            policy: policy,
            now: 100
        )
        #expect(action == .none)
        // Refused again and again while held: each refusal leaves the hold where it was.
        for now in stride(from: 100.0, to: 102.9, by: 0.3) {
            #expect(health.fetchRefusal(for: john, now: now, tokenRetryAfter: 10) != nil)
        }
        #expect(health.fetchRefusal(for: john, now: 102.9, tokenRetryAfter: 10) == .rateLimited(retryAfter: 1))
        #expect(health.fetchRefusal(for: john, now: 103, tokenRetryAfter: 10) == nil)
        #expect(health.fetchRefusal(for: jane, now: 100, tokenRetryAfter: 10) == nil)
    }

    @Test func withRateLimitAllKeysAHoldCoversEveryKeyAndItsStaleEntries() {
        var health = UpstreamHealth()
        var policy = policy
        policy.rateLimitAllKeys = true
        _ = health.learn(
            .failure(.rateLimited(retryAfter: nil)),
            for: john,
            generation: 0,
            background: false,
            policy: policy,
            now: 0
        )
        #expect(health.fetchRefusal(for: jane, now: 0.5, tokenRetryAfter: 10) == .rateLimited(retryAfter: 1))
        #expect(health.staleVerdict(for: jane, now: 0.5) == .serveHeld(.rateLimited))
        #expect(health.staleSince == 0.5)
        #expect(!health.mayRefreshAhead(jane, now: 0.5))
        #expect(health.staleVerdict(for: jane, now: 1.5) == .serveAndRefresh)
    }

    @Test func aRejectedTokenIsAnnouncedOnceFailsFastAndIsTriedOncePerCooldown() {
        var health = UpstreamHealth()
        #expect(
            health.learn(.failure(.unauthorized), for: john, generation: 0, background: false, policy: policy, now: 0)
                == .announceTokenRejected
        )
        #expect(
            health.learn(.failure(.unauthorized), for: jane, generation: 0, background: false, policy: policy, now: 1)
                == .none
        )
        #expect(health.token == .rejected(since: 0, lastTry: 0))
        #expect(health.staleVerdict(for: john, now: 2) == .refuse)
        #expect(health.fetchRefusal(for: john, now: 5, tokenRetryAfter: 10) == .unauthorized)
        #expect(health.fetchRefusal(for: john, now: 10, tokenRetryAfter: 10) == nil)  // the one try
        #expect(health.fetchRefusal(for: jane, now: 10.5, tokenRetryAfter: 10) == .unauthorized)
        _ = health.learn(.success(contact), for: john, generation: 0, background: false, policy: policy, now: 11)
        #expect(health.token == .accepted)
        #expect(health.lastFailure == nil)
    }

    @Test func aReloadedTokenEndsTheRejectionAndAnswersForTheOldOneAreNotBelieved() {
        var health = UpstreamHealth()
        _ = health.learn(.failure(.unauthorized), for: john, generation: 0, background: false, policy: policy, now: 0)
        #expect(health.tokenReloaded(changed: false) == .none)
        #expect(health.token == .accepted)
        _ = health.learn(.failure(.unauthorized), for: john, generation: 0, background: false, policy: policy, now: 1)
        #expect(health.tokenReloaded(changed: true) == .dropNotFoundEntries)
        #expect(health.generation == 1)
        #expect(health.lastFailure == nil)
        // A 401 for a call made with the old token does not reject the new one.
        #expect(
            health.learn(.failure(.unauthorized), for: john, generation: 0, background: false, policy: policy, now: 2)
                == .none
        )
        #expect(health.token == .accepted)
    }

    @Test func aFailedRefreshHoldsOnlyRefreshesOfItsKey() {
        var health = UpstreamHealth()
        var policy = policy
        policy.retryMaxDelay = .seconds(2)
        let failure = LookupError.unavailable(detail: "503", retryAfter: nil, retryable: true)
        _ = health.learn(.failure(failure), for: john, generation: 0, background: true, policy: policy, now: 0)
        #expect(health.lastFailure == failure)
        #expect(health.staleVerdict(for: john, now: 1) == .serveHeld(.upstreamUnavailable))
        #expect(health.fetchRefusal(for: john, now: 1, tokenRetryAfter: 10) == nil)  // a waiting client may ask
        #expect(health.staleVerdict(for: john, now: 2.5) == .serveAndRefresh)
        // A foreground failure holds nothing.
        _ = health.learn(.failure(failure), for: jane, generation: 0, background: false, policy: policy, now: 0)
        #expect(health.staleVerdict(for: jane, now: 0.5) == .serveAndRefresh)
        // An answer clears the key's hold and the stale state.
        _ = health.learn(.success(contact), for: john, generation: 0, background: true, policy: policy, now: 1.5)
        #expect(health.staleVerdict(for: john, now: 1.6) == .serveAndRefresh)
        #expect(health.staleSince == nil)
    }
}
