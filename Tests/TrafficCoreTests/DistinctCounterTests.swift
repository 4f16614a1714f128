import Testing
@testable import TrafficCore
import TrafficTestSupport

@Suite("DistinctCounter")
struct DistinctCounterTests {
    static func hashes(_ n: Int, seed: UInt64) -> [UInt64] {
        var rng = SplitMix64(seed: seed)
        return (0..<n).map { _ in rng.next() }
    }

    @Test func emptyCountsZero() {
        var c = DistinctCounter()
        #expect(c.estimate == 0 && c.isEmpty)
        c.insert(hash: 42)
        #expect(c.estimate == 1 && !c.isEmpty)
        c.removeAll()
        #expect(c.estimate == 0 && c.isEmpty)
    }

    /// Small counts: within one of the truth (linear counting), and repeats change nothing.
    @Test func smallCountsAreCloseAndDuplicatesDoNotCount() {
        var c = DistinctCounter()
        let values = Self.hashes(16, seed: 1)
        for (i, v) in values.enumerated() {
            c.insert(hash: v)
            let once = c.estimate
            c.insert(hash: v)
            for earlier in values[..<i] { c.insert(hash: earlier) }
            #expect(c.estimate == once, "repeats moved the estimate")
            #expect(abs(Int(c.estimate) - (i + 1)) <= 1, "estimate \(c.estimate) for \(i + 1)")
        }
    }

    @Test func weakSequentialHashesAreRemixed() {
        // Sequential hashes (differing only in the low bits) still spread over the registers.
        var c = DistinctCounter()
        for i: UInt64 in 1...2000 { c.insert(hash: i) }
        #expect(abs(Double(c.estimate) - 2000) / 2000 < 0.05, "estimate \(c.estimate)")
    }

    @Test(arguments: [1000, 10_000, 100_000])
    func largeCountsAreWithinAFewPercent(n: Int) {
        var c = DistinctCounter()
        for v in Self.hashes(n, seed: UInt64(n)) { c.insert(hash: v) }
        let error = abs(Double(c.estimate) - Double(n)) / Double(n)
        #expect(error < 0.05, "estimate \(c.estimate) for \(n)")
    }
}
