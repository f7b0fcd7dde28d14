/// The samples of a Prometheus text exposition, by series as written (`name{label="value"}`).
package struct PrometheusText: Sendable {
    package let samples: [String: Double]
    /// Names with a `# HELP` line.
    package let helped: Set<String>
    /// Names with a `# TYPE` line, and the type.
    package let types: [String: String]

    package init(_ text: String) {
        var samples: [String: Double] = [:]
        var helped: Set<String> = []
        var types: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let words = line.split(separator: " ", maxSplits: 3)
            if line.hasPrefix("# HELP "), words.count >= 3 {
                helped.insert(String(words[2]))
            } else if line.hasPrefix("# TYPE "), words.count == 4 {
                types[String(words[2])] = String(words[3])
            } else if !line.hasPrefix("#"), let space = line.lastIndex(of: " ") {
                samples[String(line[..<space])] = Double(line[line.index(after: space)...])
            }
        }
        self.samples = samples
        self.helped = helped
        self.types = types
    }

    package subscript(series: String) -> Double? { samples[series] }
}
