import Tracing

// MARK: - The steps of a fetch, each in a span: called instead of the plain step when tracing is on

extension ContactResolver {
    func tracedFetch(_ key: ContactKey, generation: Int, started: Double, refresh: Bool) async -> Fetched {
        await tracing.span("contactd.fetch") { span in
            span?.attributes["contactd.key.kind"] = key.kindName
            span?.attributes["contactd.refresh"] = refresh
            let fetched = await fetch(key, generation: generation, started: started)
            span?.attributes["contactd.fetch.source"] = fetched.shared != nil ? "shared" : "api"
            if case .failure(let error) = fetched.result { span?.fail(APICallOutcome(.failure(error)).rawValue) }
            return fetched
        }
    }

    func tracedLookUp(_ shared: any SharedTier, _ key: ContactKey, lease: Double) async -> SharedLookup {
        await tracing.span("contactd.shared_cache.lookup", kind: .client) { span in
            let answer = await shared.lookUp(key, lease: lease)
            span?.attributes["contactd.shared_cache.result"] = answer.name
            return answer
        }
    }

    /// Another host holds the fleet's claim on this key: the wait for what it fetches.
    func tracedAwaitPeer(_ shared: any SharedTier, _ key: ContactKey, until: Double) async -> SharedEntry? {
        await tracing.span("contactd.shared_cache.wait_for_claim") { span in
            let entry = await shared.awaitPeer(key, until: until)
            span?.attributes["contactd.shared_cache.found"] = entry != nil
            return entry
        }
    }

    /// Attempt `number`: 2 and later are retries (or, beside one still running, hedges).
    func tracedAttempt(_ key: ContactKey, number: Int, deadline: Double, shortest: Double, hedge: Bool) async
        -> Attempt
    {
        await tracing.span("contactd.api.attempt", kind: .client) { span in
            span?.attributes["contactd.attempt"] = number
            span?.attributes["contactd.hedge"] = hedge
            let attempt = await attempt(key, deadline: deadline, shortest: shortest, hedge: hedge)
            switch attempt {
            case .refused(let error):
                span?.attributes["contactd.api.called"] = false
                span?.fail(APICallOutcome(.failure(error)).rawValue)
            case .answered(let result):
                span?.attributes["contactd.api.called"] = true
                let outcome = APICallOutcome(result)
                span?.attributes["contactd.api.outcome"] = outcome.rawValue
                if outcome != .ok, outcome != .notFound { span?.fail(outcome.rawValue) }
            }
            return attempt
        }
    }
}
