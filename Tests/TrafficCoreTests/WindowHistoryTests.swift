import Testing
@testable import TrafficCore
import TrafficTestSupport

@Suite("WindowHistory")
struct WindowHistoryTests {
    static let w: Int64 = 5 * nanosPerSecond

    /// The i-th window (start i * 5 s), tagged with `packets` so replacements are visible.
    static func window(_ i: Int64, packets: UInt64 = 0) -> WindowRecord {
        WindowRecord(start: i * w, end: (i + 1) * w, nonIP: Counts(packets: packets == 0 ? UInt64(i) : packets))
    }

    static func indices(_ records: [WindowRecord]) -> [Int64] { records.map { $0.start / w } }

    @Test func emptyHistory() {
        let h = WindowHistory<WindowRecord>(capacity: 10)
        #expect(h.isEmpty && h.count == 0)
        #expect(h.newest == nil && h.oldest == nil)
        #expect(h.all.isEmpty && h.last(5).isEmpty)
        #expect(h.windows(since: nil, until: nil, limit: 10).isEmpty)
    }

    @Test(arguments: [1, 2, 3, 7, 10], [0, 1, 2, 6, 7, 8, 25])
    func keepsTheNewestCapacityOldestFirst(capacity: Int, appended: Int) {
        var h = WindowHistory<WindowRecord>(capacity: capacity)
        for i in 0..<appended { h.append(Self.window(Int64(i))) }
        let expected = Array(Int64(max(0, appended - capacity))..<Int64(appended))
        #expect(h.capacity == capacity)
        #expect(h.count == expected.count)
        #expect(h.isEmpty == expected.isEmpty)
        #expect(Self.indices(h.all) == expected)
        #expect(h.oldest.map { $0.start / Self.w } == expected.first)
        #expect(h.newest.map { $0.start / Self.w } == expected.last)
        for n in [0, 1, 2, capacity, capacity + 5] {
            #expect(Self.indices(h.last(n)) == Array(expected.suffix(n)), "last(\(n))")
        }
    }

    @Test func capacityIsAtLeastOne() {
        var h = WindowHistory<WindowRecord>(capacity: 0)
        #expect(h.capacity == 1)
        h.append(Self.window(1))
        h.append(Self.window(2))
        #expect(Self.indices(h.all) == [2])
        #expect(WindowHistory<WindowRecord>(capacity: -5).capacity == 1)
    }

    @Test func lastOfANegativeCountIsEmpty() {
        var h = WindowHistory<WindowRecord>(capacity: 4)
        for i in 0..<3 { h.append(Self.window(Int64(i))) }
        #expect(h.last(-1).isEmpty)
    }

    @Test func windowsSinceUntilLimit() {
        var h = WindowHistory<WindowRecord>(capacity: 8)
        for i in 0..<12 { h.append(Self.window(Int64(i))) }   // holds 4...11
        let w = Self.w
        #expect(Self.indices(h.windows(since: nil, until: nil, limit: 100)) == Array(4...11))
        #expect(Self.indices(h.windows(since: 6 * w, until: 9 * w, limit: 100)) == [6, 7, 8], "since inclusive, until exclusive")
        #expect(Self.indices(h.windows(since: 6 * w + 1, until: 9 * w + 1, limit: 100)) == [7, 8, 9])
        #expect(Self.indices(h.windows(since: 6 * w, until: 9 * w, limit: 2)) == [7, 8], "the newest ones when more match")
        #expect(Self.indices(h.windows(since: nil, until: 6 * w, limit: 10)) == [4, 5])
        #expect(Self.indices(h.windows(since: 10 * w, until: nil, limit: 10)) == [10, 11])
        #expect(h.windows(since: 0, until: 4 * w, limit: 10).isEmpty, "evicted windows are gone")
        #expect(h.windows(since: 9 * w, until: 9 * w, limit: 10).isEmpty)
        #expect(h.windows(since: nil, until: nil, limit: 0).isEmpty)
        #expect(h.windows(since: nil, until: nil, limit: -1).isEmpty)
    }

    @Test func matchesASimpleModelOnRandomAppends() {
        var rng = SplitMix64(seed: 720)
        for capacity in [1, 3, 16] {
            var h = WindowHistory<WindowRecord>(capacity: capacity)
            var model: [Int64] = []
            var next: Int64 = 0
            for _ in 0..<200 {
                next += Int64(1 + rng.next() % 3)   // gaps: windows with no packets that were not emitted
                h.append(Self.window(next))
                model.append(next)
                model = Array(model.suffix(capacity))
                #expect(Self.indices(h.all) == model)
                let n = Int(rng.next() % UInt64(capacity + 2))
                #expect(Self.indices(h.last(n)) == Array(model.suffix(n)))
                let since = next - Int64(rng.next() % 10), until = since + Int64(rng.next() % 10)
                let limit = Int(rng.next() % 5)
                let expected = Array(model.filter { $0 >= since && $0 < until }.suffix(limit))
                #expect(Self.indices(h.windows(since: since * Self.w, until: until * Self.w, limit: limit)) == expected)
            }
        }
    }

    @Test func aRepeatedWindowReplacesTheOldOneAndOrderIsByStart() {
        var h = WindowHistory<WindowRecord>(capacity: 5)
        for i: Int64 in [1, 2, 4] { h.append(Self.window(i)) }
        h.append(Self.window(2, packets: 99))     // the same window again
        h.append(Self.window(3))                  // an older one arriving late
        #expect(Self.indices(h.all) == [1, 2, 3, 4])
        #expect(h.all.map(\.packets) == [1, 99, 3, 4])
        #expect(h.newest?.start == 4 * Self.w)
        h.append(Self.window(5))
        h.append(Self.window(6))
        #expect(Self.indices(h.all) == [2, 3, 4, 5, 6])
        h.append(Self.window(0))                  // older than everything held, with the ring full
        #expect(Self.indices(h.all) == [2, 3, 4, 5, 6])
    }
}
