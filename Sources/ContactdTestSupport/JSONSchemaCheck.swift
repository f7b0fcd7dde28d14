import ContactdJSON

/// Checks a JSON value against the part of JSON Schema contactd's OpenRPC document uses: `type`
/// (one or a list), `enum`, `const`, `required`, `properties`, `additionalProperties` (false or a
/// schema), `items`, `minimum`, `maximum`. Returns every mismatch as `path: problem`; empty when
/// the value fits.
package enum JSONSchemaCheck {
    package static func problems(_ value: JSONValue, against schema: JSONValue, at path: String = "$") -> [String] {
        var problems: [String] = []
        if let types = schema["type"] {
            let allowed = types.arrayValue?.compactMap(\.stringValue) ?? [types.stringValue ?? ""]
            if !allowed.contains(where: { matches(value, type: $0) }) {
                problems.append("\(path): \(value.jsonString) is not \(allowed.joined(separator: " or "))")
            }
        }
        if let options = schema["enum"]?.arrayValue, !options.contains(value) {
            problems.append("\(path): \(value.jsonString) is not one of \(JSONValue.array(options).jsonString)")
        }
        if let constant = schema["const"], constant != value {
            problems.append("\(path): \(value.jsonString) is not \(constant.jsonString)")
        }
        if let number = value.doubleValue {
            if let minimum = schema["minimum"]?.doubleValue, number < minimum {
                problems.append("\(path): \(number) is below \(minimum)")
            }
            if let maximum = schema["maximum"]?.doubleValue, number > maximum {
                problems.append("\(path): \(number) is above \(maximum)")
            }
        }
        if let object = value.objectValue {
            let properties = schema["properties"]?.objectValue
            for name in schema["required"]?.arrayValue?.compactMap(\.stringValue) ?? [] where object[name] == nil {
                problems.append("\(path): \(name) is missing")
            }
            for (name, member) in object.members {
                if let property = properties?[name] {
                    problems += self.problems(member, against: property, at: "\(path).\(name)")
                } else if let additional = schema["additionalProperties"] {
                    if additional == .bool(false) {
                        problems.append("\(path): \(name) is not in the schema")
                    } else if additional.objectValue != nil {
                        problems += self.problems(member, against: additional, at: "\(path).\(name)")
                    }
                }
            }
        }
        if let elements = value.arrayValue, let items = schema["items"] {
            for (index, element) in elements.enumerated() {
                problems += self.problems(element, against: items, at: "\(path)[\(index)]")
            }
        }
        return problems
    }

    private static func matches(_ value: JSONValue, type: String) -> Bool {
        switch (type, value) {
        case ("null", .null), ("boolean", .bool), ("string", .string), ("array", .array), ("object", .object),
            ("number", .number):
            true
        case ("integer", .number): value.intValue != nil
        default: false
        }
    }
}
