/// RFC 3339 UTC timestamps from and to nanoseconds since the Unix epoch, without
/// Foundation's formatters (fast, allocation-light and thread-safe).
///
/// ```swift
/// Timestamp.rfc3339(1_700_000_000_000_000_000)   // "2023-11-14T22:13:20Z"
/// Timestamp.parse("2023-11-14T22:13:20Z")        // 1_700_000_000_000_000_000
/// ```
public enum Timestamp {
    public static let nanosPerSecond: Int64 = 1_000_000_000

    /// `YYYY-MM-DDTHH:MM:SS[.fff…]Z`; fractional digits only when the instant has them.
    public static func rfc3339(_ nanos: Int64) -> String {
        var out = [UInt8]()
        out.reserveCapacity(32)
        appendRFC3339(nanos, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    public static func appendRFC3339(_ nanos: Int64, to out: inout some ByteSink) {
        let seconds = floorDiv(nanos, nanosPerSecond)
        var fraction = nanos - seconds * nanosPerSecond
        let days = floorDiv(seconds, 86_400)
        let secondOfDay = Int(seconds - days * 86_400)
        let (year, month, day) = civil(fromDays: days)
        out.appendDecimal(UInt(year), minimumWidth: 4)
        out.append(UInt8(ascii: "-"))
        out.appendDecimal(UInt(month), minimumWidth: 2)
        out.append(UInt8(ascii: "-"))
        out.appendDecimal(UInt(day), minimumWidth: 2)
        out.append(UInt8(ascii: "T"))
        out.appendDecimal(UInt(secondOfDay / 3600), minimumWidth: 2)
        out.append(UInt8(ascii: ":"))
        out.appendDecimal(UInt(secondOfDay / 60 % 60), minimumWidth: 2)
        out.append(UInt8(ascii: ":"))
        out.appendDecimal(UInt(secondOfDay % 60), minimumWidth: 2)
        if fraction != 0 {
            var width = 9
            while fraction % 10 == 0 { fraction /= 10; width -= 1 }
            out.append(UInt8(ascii: "."))
            out.appendDecimal(UInt64(fraction), minimumWidth: width)
        }
        out.append(UInt8(ascii: "Z"))
    }

    /// Parses RFC 3339 (`Z` or a `±HH:MM` offset, optional fraction) to nanoseconds.
    public static func parse(_ text: String) -> Int64? {
        let b = Array(text.utf8)
        func num(_ from: Int, _ count: Int) -> Int? {
            guard from + count <= b.count else { return nil }
            var v = 0
            for i in from..<(from + count) {
                guard b[i] >= 48 && b[i] <= 57 else { return nil }
                v = v * 10 + Int(b[i] - 48)
            }
            return v
        }
        guard b.count >= 20, let year = num(0, 4), b[4] == UInt8(ascii: "-"), let month = num(5, 2),
              b[7] == UInt8(ascii: "-"), let day = num(8, 2), b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: "t") || b[10] == UInt8(ascii: " "),
              let hour = num(11, 2), b[13] == UInt8(ascii: ":"), let minute = num(14, 2),
              b[16] == UInt8(ascii: ":"), let second = num(17, 2),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second <= 60
        else { return nil }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let monthDays = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard day <= monthDays[month - 1] else { return nil }
        var i = 19
        var fraction: Int64 = 0
        if i < b.count && b[i] == UInt8(ascii: ".") {
            i += 1
            var digits = 0
            while i < b.count && b[i] >= 48 && b[i] <= 57 {
                if digits < 9 { fraction = fraction * 10 + Int64(b[i] - 48) }
                digits += 1
                i += 1
            }
            guard digits > 0 else { return nil }
            for _ in min(digits, 9)..<9 { fraction *= 10 }
        }
        guard i < b.count else { return nil }
        var offsetSeconds = 0
        if b[i] == UInt8(ascii: "Z") || b[i] == UInt8(ascii: "z") {
            i += 1
        } else if b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
            guard let oh = num(i + 1, 2), i + 3 < b.count, b[i + 3] == UInt8(ascii: ":"), let om = num(i + 4, 2),
                  oh < 24, om < 60 else { return nil }
            offsetSeconds = (oh * 3600 + om * 60) * (b[i] == UInt8(ascii: "+") ? 1 : -1)
            i += 6
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        let seconds = days * 86_400 + Int64(hour * 3600 + minute * 60 + second - offsetSeconds)
        let (product, overflow) = seconds.multipliedReportingOverflow(by: nanosPerSecond)
        guard !overflow else { return nil }
        return product + fraction
    }

    @inline(__always)
    public static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }

    /// Howard Hinnant's days-from-civil algorithm (proleptic Gregorian).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let m = Int64(month)
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civil(fromDays z0: Int64) -> (Int, Int, Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (Int(m <= 2 ? y + 1 : y), Int(m), Int(d))
    }
}
