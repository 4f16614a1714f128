import Foundation
import Testing
@testable import TrafficCore
import TrafficTestSupport

@Suite("Timestamp: RFC 3339")
struct TimestampTests {
    static let formatCases: [(Int64, String)] = [
        (Int64(0), "1970-01-01T00:00:00Z"),
        (1_700_000_000 * 1_000_000_000, "2023-11-14T22:13:20Z"),
        (1_500_000_000, "1970-01-01T00:00:01.5Z"),
        (1, "1970-01-01T00:00:00.000000001Z"),
        (123_456_789, "1970-01-01T00:00:00.123456789Z"),
        (120_000_000, "1970-01-01T00:00:00.12Z"),
        (-1, "1969-12-31T23:59:59.999999999Z"),
        (-500_000_000, "1969-12-31T23:59:59.5Z"),
        (-86_400 * 1_000_000_000, "1969-12-31T00:00:00Z"),
        (951_782_400 * 1_000_000_000, "2000-02-29T00:00:00Z"),
        (1_709_208_000 * 1_000_000_000, "2024-02-29T12:00:00Z"),
        (4_107_542_400 * 1_000_000_000, "2100-03-01T00:00:00Z"),
        (7_258_118_400 * 1_000_000_000, "2200-01-01T00:00:00Z"),
    ]

    @Test(arguments: formatCases)
    func formats(nanos: Int64, text: String) {
        #expect(Timestamp.rfc3339(nanos) == text)
        var bytes: [UInt8] = [0x3C]
        Timestamp.appendRFC3339(nanos, to: &bytes)
        #expect(bytes == [0x3C] + Array(text.utf8))
        #expect(Timestamp.parse(text) == nanos)
    }

    @Test func agreesWithFoundationOnRandomInstants() {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.calendar = Calendar(identifier: .gregorian)
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd'T'HH:mm:ss"
        var rng = SplitMix64(seed: 3339)
        // 1900-01-01 ... 2255 (Int64 nanoseconds end in 2262), whole seconds plus a random fraction.
        let low: Int64 = -2_208_988_800, high: Int64 = 9_000_000_000
        for _ in 0..<2000 {
            let s = low + Int64(rng.next() % UInt64(high - low))
            let fraction = Int64(rng.next() % 1_000_000_000)
            let nanos = s * 1_000_000_000 + (rng.next() % 3 == 0 ? 0 : fraction)
            let text = Timestamp.rfc3339(nanos)
            let expectedSeconds = formatter.string(from: Date(timeIntervalSince1970: TimeInterval(s)))
            #expect(text.hasPrefix(expectedSeconds), "\(nanos)")
            #expect(text.hasSuffix("Z"))
            if nanos % 1_000_000_000 == 0 {
                #expect(text.count == 20)
            } else {
                // The fraction is the nanoseconds without trailing zeros.
                var digits = String(String(nanos - s * 1_000_000_000 + 1_000_000_000).dropFirst())
                while digits.hasSuffix("0") { digits.removeLast() }
                #expect(text == expectedSeconds + "." + digits + "Z")
            }
            #expect(Timestamp.parse(text) == nanos)
        }
    }

    static let offsetCases: [(String, Int64)] = [
        ("2023-11-14T22:13:20+00:00", Int64(1_700_000_000) * 1_000_000_000),
        ("2023-11-14T23:13:20+01:00", 1_700_000_000 * 1_000_000_000),
        ("2023-11-14T16:43:20-05:30", 1_700_000_000 * 1_000_000_000),
        ("2023-11-15T09:58:20+11:45", 1_700_000_000 * 1_000_000_000),
        ("2023-11-14t22:13:20z", 1_700_000_000 * 1_000_000_000),
        ("2023-11-14 22:13:20Z", 1_700_000_000 * 1_000_000_000),
        ("2023-11-14T22:13:20.5Z", 1_700_000_000_500_000_000),
        ("2023-11-14T22:13:20.000000001Z", 1_700_000_000_000_000_001),
        ("2023-11-14T22:13:20.1234567891Z", 1_700_000_000_123_456_789),  // past nanoseconds: cut
        ("2023-11-14T23:13:20.25+01:00", 1_700_000_000_250_000_000),
        ("1969-12-31T23:59:59.75Z", -250_000_000),
        ("1970-01-01T01:00:00+01:00", 0),
    ]

    @Test(arguments: offsetCases)
    func parsesOffsetsAndFractions(text: String, nanos: Int64) {
        #expect(Timestamp.parse(text) == nanos)
    }

    @Test(arguments: [
        "", "2023-11-14", "2023-11-14T22:13:20", "2023-11-14T22:13Z", "2023-13-01T00:00:00Z", "2023-00-10T00:00:00Z",
        "2023-11-00T00:00:00Z", "2023-11-32T00:00:00Z", "2023-11-14T24:00:00Z", "2023-11-14T22:60:00Z",
        "2023-11-14T22:13:61Z", "2023-11-14T22:13:20.Z", "2023-11-14T22:13:20+0100", "2023-11-14T22:13:20+01",
        "2023-11-14T22:13:20+01:00x", "2023-11-14T22:13:20ZZ", "2023/11/14T22:13:20Z", "2023-11-14X22:13:20Z",
        "abcd-11-14T22:13:20Z", "2023-11-14T22:13:20+24:00", "2023-11-14T22:13:20+01:60", " 2023-11-14T22:13:20Z",
        "2023-11-14T22:13:20Z ", "2023-1-14T22:13:20Z", "+2023-11-14T22:13:20Z", "2023-11-14T22:13:20.5",
    ])
    func rejectsBadText(_ text: String) {
        #expect(Timestamp.parse(text) == nil)
    }

    /// RFC 3339 5.7: the day must exist in its month (February 29 only in leap years).
    @Test(arguments: ["2023-02-29T00:00:00Z", "2023-02-30T00:00:00Z", "2024-02-30T00:00:00Z", "2023-04-31T00:00:00Z",
                      "2023-06-31T12:00:00Z", "2023-09-31T00:00:00Z", "2023-11-31T00:00:00Z", "2100-02-29T00:00:00Z"])
    func rejectsDaysPastTheEndOfTheMonth(_ text: String) {
        #expect(Timestamp.parse(text) == nil, "parsed as \(Timestamp.parse(text).map(Timestamp.rfc3339) ?? "nil")")
    }

    @Test(arguments: ["2024-02-29T00:00:00Z", "2000-02-29T00:00:00Z", "2023-01-31T00:00:00Z", "2023-12-31T23:59:59Z",
                      "2023-04-30T00:00:00Z"])
    func acceptsTheLastDayOfEachMonth(_ text: String) {
        #expect(Timestamp.parse(text).map(Timestamp.rfc3339) == text)
    }

    @Test func floorDivision() {
        #expect(Timestamp.floorDiv(7, 5) == 1)
        #expect(Timestamp.floorDiv(5, 5) == 1)
        #expect(Timestamp.floorDiv(0, 5) == 0)
        #expect(Timestamp.floorDiv(-1, 5) == -1)
        #expect(Timestamp.floorDiv(-5, 5) == -1)
        #expect(Timestamp.floorDiv(-6, 5) == -2)
    }
}

@Suite("TimeSpan")
struct TimeSpanTests {
    static let spanCases: [(String, Int64)] = [
        ("500ms", Int64(500_000_000)), ("5s", 5_000_000_000), ("1m", 60_000_000_000), ("2h", 7_200_000_000_000),
        ("7d", 604_800_000_000_000), ("1w", 604_800_000_000_000), ("5", 5_000_000_000), ("1.5s", 1_500_000_000),
        ("0.5", 500_000_000), ("1ms", 1_000_000), ("90s", 90_000_000_000), (" 5s ", 5_000_000_000), ("5S", 5_000_000_000),
        ("10M", 600_000_000_000), ("0s", 0), ("0.25m", 15_000_000_000), ("720", 720_000_000_000),
    ]

    @Test(arguments: spanCases)
    func parses(text: String, nanos: Int64) {
        #expect(TimeSpan.nanoseconds(text) == nanos)
    }

    @Test(arguments: ["", " ", "s", "ms", "-5s", "5x", "abc", "5 s", "1e3", "1e3s", "5sec", "..s", "1.2.3s", "inf", "nan",
                      "+5s", "5s5", "999999999999d", "٣s", "½s", "5ns"])
    func rejects(_ text: String) {
        #expect(TimeSpan.nanoseconds(text) == nil)
    }

    static let textCases: [(Int64, String)] = [
        (Int64(5_000_000_000), "5s"), (500_000_000, "500ms"), (604_800_000_000_000, "7d"), (60_000_000_000, "1m"),
        (90_000_000_000, "90s"), (3_600_000_000_000, "1h"), (1500, "1500ns"), (1_500_000_000, "1500ms"),
        (86_400_000_000_000 * 2, "2d"),
    ]

    @Test(arguments: textCases)
    func compactText(nanos: Int64, text: String) {
        #expect(TimeSpan.text(nanos) == text)
        if !text.hasSuffix("ns") { #expect(TimeSpan.nanoseconds(text) == nanos) }
    }
}
