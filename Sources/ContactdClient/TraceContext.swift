import ContactdJSON
import Instrumentation
import ServiceContextModule

/// The caller's trace context, passed to contactd as `params.traceparent` (W3C trace context),
/// so that a lookup contactd has to fetch shows in the caller's trace (docs/protocol.md,
/// "Tracing").
///
/// It comes from the process's instrument (`InstrumentationSystem`, which a service using
/// swift-otel has bootstrapped) and the task's current `ServiceContext`; with neither, nothing is
/// added and the request is the plain line the daemon's fast lane reads fastest.
enum TraceContext {
    /// `params` with the caller's `traceparent` added, when the caller is in a trace.
    static func adding(to params: JSONObject) -> JSONObject {
        guard let context = ServiceContext.current else { return params }
        var carrier: [String: String] = [:]
        InstrumentationSystem.instrument.inject(context, into: &carrier, using: DictionaryInjector())
        guard let traceparent = carrier["traceparent"] else { return params }
        var params = params
        params["traceparent"] = .string(traceparent)
        return params
    }

    private struct DictionaryInjector: Injector {
        func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) {
            carrier[key] = value
        }
    }
}
