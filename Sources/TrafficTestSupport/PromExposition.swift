/// One parsed sample of a Prometheus exposition: `name{labels} value`.
public struct PromSample: Hashable, Sendable, CustomStringConvertible {
    public var name: String
    public var labels: [String: String]
    public var value: Double

    public init(name: String, labels: [String: String], value: Double) {
        self.name = name
        self.labels = labels
        self.value = value
    }

    public var description: String {
        "\(name){\(labels.sorted { $0.key < $1.key }.map { "\($0.key)=\"\($0.value)\"" }.joined(separator: ","))} \(value)"
    }
}

/// A strict parser for the Prometheus text exposition format (0.0.4) and the OpenMetrics
/// text format: comments, `name{label="value",...} value [timestamp]`, with `\\`, `\"` and
/// `\n` escapes in label values. It throws on any line it cannot read, so a test that
/// parses `/metrics` also checks that the whole exposition is well formed.
///
/// ```swift
/// let m = try PromExposition.parse(metricsText)
/// #expect(m.sum("trafficmon_bytes_total", ["direction": "in"]) == 1200)
/// ```
public struct PromExposition: Sendable {
    public var samples: [PromSample] = []
    /// `# HELP` text per family name.
    public var help: [String: String] = [:]
    /// `# TYPE` per family name.
    public var types: [String: String] = [:]
    /// Family names in the order their `# TYPE` lines appear.
    public var typeOrder: [String] = []
    /// Sample names that appeared before their family's `# TYPE` line.
    public var samplesBeforeType: [String] = []
    /// Comment lines other than HELP / TYPE (for example `# EOF`).
    public var otherComments: [String] = []
    /// The number of non-comment, non-empty lines: one per sample.
    public var seriesLines: Int { samples.count }

    public init() {}

    public struct ParseError: Error, CustomStringConvertible {
        public var line: String
        public var reason: String
        public var description: String { "cannot parse metrics line '\(line)': \(reason)" }
    }

    public static func parse(_ text: String) throws -> PromExposition {
        var e = PromExposition()
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = String(raw)
            if line.isEmpty { continue }
            if line.hasPrefix("#") {
                let parts = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false).map(String.init)
                if parts.count >= 3 && parts[1] == "HELP" {
                    e.help[parts[2]] = parts.count == 4 ? parts[3] : ""
                } else if parts.count == 4 && parts[1] == "TYPE" {
                    if e.types[parts[2]] != nil { throw ParseError(line: line, reason: "second TYPE line for \(parts[2])") }
                    e.types[parts[2]] = parts[3]
                    e.typeOrder.append(parts[2])
                } else {
                    e.otherComments.append(line)
                }
                continue
            }
            let sample = try parseSample(line)
            if e.family(of: sample.name) == nil { e.samplesBeforeType.append(sample.name) }
            e.samples.append(sample)
        }
        return e
    }

    static func isNameStart(_ c: Character) -> Bool { c == "_" || c == ":" || (c.isASCII && c.isLetter) }
    static func isNameChar(_ c: Character) -> Bool { isNameStart(c) || (c.isASCII && c.isNumber) }

    /// One sample line; throws `ParseError` when the line is not one.
    public static func parseSample(_ line: String) throws -> PromSample {
        let chars = Array(line)
        var i = 0
        func fail(_ reason: String) -> ParseError { ParseError(line: line, reason: reason) }
        guard i < chars.count, isNameStart(chars[i]) else { throw fail("no metric name") }
        var name = ""
        while i < chars.count, isNameChar(chars[i]) { name.append(chars[i]); i += 1 }
        var labels: [String: String] = [:]
        if i < chars.count, chars[i] == "{" {
            i += 1
            while true {
                guard i < chars.count else { throw fail("unterminated labels") }
                if chars[i] == "}" { i += 1; break }
                guard isNameStart(chars[i]), chars[i] != ":" else { throw fail("bad label name") }
                var label = ""
                while i < chars.count, isNameChar(chars[i]), chars[i] != ":" { label.append(chars[i]); i += 1 }
                guard i + 1 < chars.count, chars[i] == "=", chars[i + 1] == "\"" else { throw fail("expected =\" after \(label)") }
                i += 2
                var value = ""
                while true {
                    guard i < chars.count else { throw fail("unterminated label value") }
                    let c = chars[i]
                    if c == "\"" { i += 1; break }
                    if c == "\\" {
                        guard i + 1 < chars.count else { throw fail("dangling escape") }
                        switch chars[i + 1] {
                        case "\\": value.append("\\")
                        case "\"": value.append("\"")
                        case "n": value.append("\n")
                        default: throw fail("bad escape \\\(chars[i + 1])")
                        }
                        i += 2
                        continue
                    }
                    value.append(c)
                    i += 1
                }
                guard labels[label] == nil else { throw fail("label \(label) twice") }
                labels[label] = value
                guard i < chars.count else { throw fail("unterminated labels") }
                if chars[i] == "," { i += 1 } else if chars[i] != "}" { throw fail("expected , or }") }
            }
        }
        guard i < chars.count, chars[i] == " " else { throw fail("expected a space before the value") }
        let rest = String(chars[(i + 1)...]).split(separator: " ", omittingEmptySubsequences: false)
        guard (1...2).contains(rest.count) else { throw fail("expected a value and an optional timestamp") }
        guard let value = parseValue(String(rest[0])) else { throw fail("bad value '\(rest[0])'") }
        if rest.count == 2 { guard Int64(rest[1]) != nil || Double(rest[1]) != nil else { throw fail("bad timestamp") } }
        return PromSample(name: name, labels: labels, value: value)
    }

    /// A sample value: a decimal or exponent number, `+Inf`, `-Inf` or `NaN`.
    public static func parseValue(_ text: String) -> Double? {
        switch text {
        case "+Inf": return .infinity
        case "-Inf": return -.infinity
        case "NaN": return .nan
        default:
            // Only plain decimal / exponent forms (Swift's Double(String) also takes "inf", "0x1p3").
            guard text.allSatisfy({ $0.isASCII && ($0.isNumber || "+-.eE".contains($0)) }) else { return nil }
            return Double(text)
        }
    }

    /// The family a sample name belongs to: its own name (text format 0.0.4), the name
    /// without `_total` for an OpenMetrics counter, or without `_bucket`, `_sum` or `_count`
    /// for a histogram.
    public func family(of sampleName: String) -> String? {
        if types[sampleName] != nil { return sampleName }
        if sampleName.hasSuffix("_total") {
            let base = String(sampleName.dropLast(6))
            if types[base] == "counter" { return base }
        }
        for suffix in ["_bucket", "_sum", "_count"] where sampleName.hasSuffix(suffix) {
            let base = String(sampleName.dropLast(suffix.count))
            if types[base] == "histogram" { return base }
        }
        return nil
    }

    /// Samples named `name` whose labels include `matching`.
    public func samples(_ name: String, _ matching: [String: String] = [:]) -> [PromSample] {
        samples.filter { s in s.name == name && matching.allSatisfy { s.labels[$0.key] == $0.value } }
    }

    /// `sum(name{matching})`.
    public func sum(_ name: String, _ matching: [String: String] = [:]) -> Double {
        samples(name, matching).reduce(0) { $0 + $1.value }
    }

    /// The single sample `name{matching}`, or nil when there is none or more than one.
    public func value(_ name: String, _ matching: [String: String] = [:]) -> Double? {
        let found = samples(name, matching)
        return found.count == 1 ? found[0].value : nil
    }

    /// `sum by (label) (name)`.
    public func sum(_ name: String, by label: String) -> [String: Double] {
        var out: [String: Double] = [:]
        for s in samples(name) { out[s.labels[label] ?? "", default: 0] += s.value }
        return out
    }

    /// Distinct values of `label` among the samples of `name`.
    public func labelValues(_ name: String, _ label: String) -> Set<String> {
        Set(samples(name).compactMap { $0.labels[label] })
    }
}

extension Double {
    /// The value as an exact unsigned integer (nil when it is not one), for comparing a
    /// sample with a count.
    public var promExactUInt: UInt64? {
        guard self >= 0, self == rounded(), self < 1.8e19 else { return nil }
        return UInt64(self)
    }
}
