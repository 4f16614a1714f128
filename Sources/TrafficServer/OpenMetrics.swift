/// Turns Prometheus text format 0.0.4 into OpenMetrics 1.0 text: counter families are
/// named without their `_total` suffix in `# TYPE`/`# HELP` (samples keep it), and the
/// exposition ends with `# EOF`.
///
/// ```swift
/// let om = OpenMetrics.convert(Array("# TYPE a_total counter\na_total 1\n".utf8))
/// // "# TYPE a counter\na_total 1\n# EOF\n"
/// ```
enum OpenMetrics {
    static func convert(_ text: [UInt8]) -> [UInt8] {
        let lines = String(decoding: text, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true)
        // Which families are counters.
        var counters = Set<Substring>()
        for line in lines where line.hasPrefix("# TYPE ") {
            let parts = line.split(separator: " ")
            if parts.count == 4 && parts[3] == "counter" { counters.insert(parts[2]) }
        }
        var out = ""
        out.reserveCapacity(text.count + 64)
        for line in lines {
            if line.hasPrefix("# TYPE ") || line.hasPrefix("# HELP ") {
                let parts = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
                if parts.count >= 3, counters.contains(parts[2]), parts[2].hasSuffix("_total") {
                    let base = parts[2].dropLast("_total".count)
                    out += "\(parts[0]) \(parts[1]) \(base)"
                    if parts.count == 4 { out += " \(parts[3])" }
                    out += "\n"
                    continue
                }
            }
            out += line
            out += "\n"
        }
        out += "# EOF\n"
        return Array(out.utf8)
    }
}
