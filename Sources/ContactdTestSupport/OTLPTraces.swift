/// The spans in OTLP/HTTP export requests (`ExportTraceServiceRequest`, protobuf), read with a
/// small wire-format walker: what tests check of the spans contactd exports. Only the fields the
/// tests look at are read; everything else is skipped by its wire type.
///
/// Field numbers (opentelemetry-proto, trace/v1 and common/v1): ExportTraceServiceRequest
/// 1 resource_spans; ResourceSpans 1 resource, 2 scope_spans; Resource 1 attributes;
/// ScopeSpans 2 spans; Span 1 trace_id, 2 span_id, 4 parent_span_id, 5 name, 6 kind,
/// 9 attributes, 15 status; Status 3 code; KeyValue 1 key, 2 value; AnyValue 1 string,
/// 2 bool, 3 int, 4 double.
package struct ExportedSpan: Sendable, CustomStringConvertible {
    package var traceID = ""
    package var spanID = ""
    /// Empty for a root span.
    package var parentSpanID = ""
    package var name = ""
    /// 1 internal, 2 server, 3 client.
    package var kind = 0
    /// Every attribute's value as text (`true`, `3`, `api`).
    package var attributes: [String: String] = [:]
    /// 0 unset, 1 ok, 2 error.
    package var statusCode = 0
    /// The resource's attributes (`service.name`, …).
    package var resource: [String: String] = [:]

    package var description: String {
        "\(name) trace=\(traceID) span=\(spanID) parent=\(parentSpanID) kind=\(kind) status=\(statusCode) \(attributes)"
    }

    /// Every span in `bodies`, in the order sent.
    package static func decode(_ bodies: [[UInt8]]) throws -> [ExportedSpan] {
        var spans: [ExportedSpan] = []
        for body in bodies {
            for (field, resourceSpans) in try Protobuf.fields(body[...]) where field.number == 1 {
                var resource: [String: String] = [:]
                for (inner, value) in try Protobuf.fields(resourceSpans) {
                    if inner.number == 1 {
                        for (attribute, keyValue) in try Protobuf.fields(value) where attribute.number == 1 {
                            let (key, text) = try Protobuf.keyValue(keyValue)
                            resource[key] = text
                        }
                    }
                }
                for (inner, scopeSpans) in try Protobuf.fields(resourceSpans) where inner.number == 2 {
                    for (spanField, bytes) in try Protobuf.fields(scopeSpans) where spanField.number == 2 {
                        var span = try span(bytes)
                        span.resource = resource
                        spans.append(span)
                    }
                }
            }
        }
        return spans
    }

    private static func span(_ bytes: ArraySlice<UInt8>) throws -> ExportedSpan {
        var span = ExportedSpan()
        for (field, value) in try Protobuf.fields(bytes) {
            switch field.number {
            case 1: span.traceID = hex(value)
            case 2: span.spanID = hex(value)
            case 4: span.parentSpanID = hex(value)
            case 5: span.name = String(decoding: value, as: UTF8.self)
            case 6: span.kind = Int(field.varint)
            case 9:
                let (key, text) = try Protobuf.keyValue(value)
                span.attributes[key] = text
            case 15:
                for (statusField, _) in try Protobuf.fields(value) where statusField.number == 3 {
                    span.statusCode = Int(statusField.varint)
                }
            default: break
            }
        }
        return span
    }

    private static func hex(_ bytes: ArraySlice<UInt8>) -> String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }
}

/// Protobuf's wire format, as far as reading fields goes.
private enum Protobuf {
    struct Field {
        var number: Int
        /// For a varint field, its value (else 0).
        var varint: UInt64
    }

    /// The fields of a message: number, and the bytes of a length-delimited value (empty for
    /// the other wire types, whose value is in `varint` or skipped).
    static func fields(_ bytes: ArraySlice<UInt8>) throws -> [(Field, ArraySlice<UInt8>)] {
        var index = bytes.startIndex
        var fields: [(Field, ArraySlice<UInt8>)] = []
        func varint() throws -> UInt64 {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard index < bytes.endIndex, shift < 64 else { throw TestSupportError("protobuf: truncated varint") }
                let byte = bytes[index]
                index += 1
                value |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return value }
                shift += 7
            }
        }
        while index < bytes.endIndex {
            let tag = try varint()
            let number = Int(tag >> 3)
            switch tag & 7 {
            case 0: fields.append((Field(number: number, varint: try varint()), []))
            case 1: index += 8
            case 2:
                let length = Int(try varint())
                guard index + length <= bytes.endIndex else { throw TestSupportError("protobuf: truncated field") }
                fields.append((Field(number: number, varint: 0), bytes[index..<(index + length)]))
                index += length
            case 5: index += 4
            default: throw TestSupportError("protobuf: wire type \(tag & 7) of field \(number) is not one OTLP uses")
            }
        }
        guard index == bytes.endIndex else { throw TestSupportError("protobuf: a fixed field runs past the end") }
        return fields
    }

    /// A KeyValue's key and its value as text.
    static func keyValue(_ bytes: ArraySlice<UInt8>) throws -> (String, String) {
        var key = ""
        var text = ""
        for (field, value) in try fields(bytes) {
            if field.number == 1 { key = String(decoding: value, as: UTF8.self) }
            if field.number == 2 {
                for (anyField, anyValue) in try fields(value) {
                    switch anyField.number {
                    case 1: text = String(decoding: anyValue, as: UTF8.self)
                    case 2: text = anyField.varint != 0 ? "true" : "false"
                    case 3: text = String(Int64(bitPattern: anyField.varint))
                    default: text = "(\(anyField.number))"
                    }
                }
            }
        }
        return (key, text)
    }
}
