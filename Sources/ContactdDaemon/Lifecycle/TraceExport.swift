import ContactdCore
import ContactdProtocol
import Logging
import OTel
import ServiceLifecycle
import Tracing

/// `--otlp-endpoint`: spans to an OpenTelemetry collector over OTLP/HTTP (protobuf), with
/// swift-otel. Only traces: the daemon's logs go to the journal and its metrics to Prometheus.
///
/// The tracer is the daemon's own (handed to `ContactResolver` as a `LookupTracer`), not bootstrapped
/// into the process-wide `InstrumentationSystem`: nothing else in the process writes spans, and
/// tests run several daemons in one process. The `OTEL_*` environment variables swift-otel reads
/// (batching, timeouts, headers such as an API key for the collector) apply on top.
enum TraceExport {
    /// The tracer, and the service that batches and sends its spans (it flushes them at stop).
    static func make(
        endpoint: String,
        logger: Logger
    ) throws(ConfigurationError) -> (tracer: any Tracer, service: any Service) {
        var configuration = OTel.Configuration.default
        configuration.serviceName = "contactd"
        configuration.resourceAttributes["service.version"] = ContactdVersion.current
        configuration.logs.enabled = false
        configuration.metrics.enabled = false
        configuration.traces.enabled = true
        configuration.traces.exporter = .otlp
        configuration.traces.otlpExporter.endpoint = tracesURL(endpoint)
        configuration.traces.otlpExporter.protocol = .httpProtobuf
        // A caller's unsampled trace stays unsampled; a lookup without one is a new, sampled trace.
        configuration.traces.sampler = .parentBasedAlwaysOn
        configuration.propagators = [.traceContext]
        // Spans go out within a second (OTel's default batches for 5): misses are few, and an
        // operator following one lookup should not wait.
        configuration.traces.batchSpanProcessor.scheduleDelay = .seconds(1)
        configuration.diagnosticLogger = .custom(logger)
        configuration.diagnosticLogLevel = .warning
        do {
            let backend = try OTel.makeTracingBackend(configuration: configuration)
            return (backend.factory, backend.service)
        } catch {
            throw ConfigurationError("--otlp-endpoint: cannot export traces to \(endpoint): \(error)")
        }
    }

    /// OTLP/HTTP's traces path on a collector's base URL (`http://host:4318` →
    /// `http://host:4318/v1/traces`); a URL with a path is taken as it is.
    static func tracesURL(_ endpoint: String) -> String {
        let afterScheme = endpoint.split(separator: "://", maxSplits: 1).last ?? Substring(endpoint)
        return afterScheme.contains("/") ? endpoint : endpoint + "/v1/traces"
    }
}
