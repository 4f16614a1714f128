import Foundation

/// Parses durations as the command line takes them: `500ms`, `5s`, `1m`, `2h`, `7d`
/// (a bare number means seconds).
///
/// ```swift
/// TimeSpan.nanoseconds("5s")    // 5_000_000_000
/// TimeSpan.nanoseconds("7d")    // 604_800_000_000_000
/// ```
public enum TimeSpan {
    public static func nanoseconds(_ text: String) -> Int64? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        let units: [(String, Int64)] = [
            ("ms", 1_000_000), ("s", 1_000_000_000), ("m", 60_000_000_000),
            ("h", 3_600_000_000_000), ("d", 86_400_000_000_000), ("w", 604_800_000_000_000),
        ]
        var number = Substring(trimmed)
        var scale: Int64 = 1_000_000_000
        for (suffix, value) in units where trimmed.hasSuffix(suffix) {
            let candidate = trimmed.dropLast(suffix.count)
            if !candidate.isEmpty, candidate.allSatisfy({ $0.isNumber || $0 == "." }) {
                number = candidate
                scale = value
                break
            }
        }
        guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
              let value = Double(number), value.isFinite, value >= 0 else { return nil }
        let nanos = value * Double(scale)
        guard nanos < 9.0e18 else { return nil }
        return Int64(nanos.rounded())
    }

    /// A compact text form: `5s`, `500ms`, `7d`.
    public static func text(_ nanos: Int64) -> String {
        for (suffix, value): (String, Int64) in [("d", 86_400_000_000_000), ("h", 3_600_000_000_000), ("m", 60_000_000_000), ("s", 1_000_000_000), ("ms", 1_000_000)]
        where nanos >= value && nanos % value == 0 {
            return "\(nanos / value)\(suffix)"
        }
        return "\(nanos)ns"
    }
}
