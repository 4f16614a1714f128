import Testing
@testable import TrafficCore
import TrafficTestSupport

@Suite("CounterTable")
struct CounterTableTests {
    @Test func addsFindsGrowsAndEmpties() {
        var table = CounterTable(minimumCapacity: 4)
        defer { table.deallocate() }
        let initialCapacity = table.capacity
        var expected: [CounterTable.Key: (UInt64, UInt64)] = [:]
        var rng = SplitMix64(seed: 99)
        for i in 0..<3000 {
            let key = CounterTable.Key(a: rng.next() % 50, b: UInt64(i % 700), c: 1 + rng.next() % 3)
            let bytes = rng.next() % 1500
            let inserted = table.add(key, bytes: bytes)
            #expect(inserted == (expected[key] == nil))
            expected[key, default: (0, 0)].0 += 1
            expected[key, default: (0, 0)].1 += bytes
        }
        #expect(table.capacity > initialCapacity)
        #expect(table.count == expected.count)
        for (key, (packets, bytes)) in expected {
            let e = table.entry(key)
            #expect(e?.packets == packets && e?.bytes == bytes)
        }
        var seen = 0
        table.forEach { entry in
            seen += 1
            #expect(expected[entry.key].map { $0 == (entry.packets, entry.bytes) } == true)
        }
        #expect(seen == expected.count)
        let missing = CounterTable.Key(a: 1000, b: 1000, c: 1)
        #expect(!table.contains(missing) && table.entry(missing) == nil)
        let missingSlot = table.addOrFindSlot(missing, hash: CounterTable.hash(missing), bytes: 5)
        #expect(missingSlot < 0)
        #expect(table.entry(missing) == nil)
        let present = expected.keys.first!
        let presentSlot = table.addOrFindSlot(present, hash: CounterTable.hash(present), bytes: 5)
        #expect(presentSlot >= 0)
        #expect(table.entry(present)?.packets == expected[present]!.0 + 1)

        let capacity = table.capacity
        table.removeAll()
        #expect(table.count == 0 && table.capacity == capacity)
        #expect(!table.contains(present))
        var after = 0
        table.forEach { _ in after += 1 }
        #expect(after == 0)
    }

    /// The packet path's insert: a lookup that misses gives the empty slot, and the insert
    /// goes there without a second probe, or re-probes after the table grows.
    @Test func insertsWhereTheMissingLookupPointed() {
        var table = CounterTable(minimumCapacity: 4)
        defer { table.deallocate() }
        var expected: [CounterTable.Key: (UInt64, UInt64)] = [:]
        var rng = SplitMix64(seed: 7)
        var grew = 0
        for _ in 0..<5000 {
            let key = CounterTable.Key(a: rng.next() % 300, b: rng.next() % 7, c: 1 + rng.next() % 2)
            let hash = CounterTable.hash(key)
            let bytes = rng.next() % 1500
            let slot = table.addOrFindSlot(key, hash: hash, bytes: bytes)
            #expect((slot < 0) == (expected[key] == nil))
            if slot < 0 {
                let capacity = table.capacity
                table.insert(key, hash: hash, at: slot, bytes: bytes)
                if table.capacity > capacity { grew += 1 }
            }
            expected[key, default: (0, 0)].0 += 1
            expected[key, default: (0, 0)].1 += bytes
        }
        #expect(grew >= 3)
        #expect(table.count == expected.count)
        for (key, (packets, bytes)) in expected {
            let e = table.entry(key)
            #expect(e?.packets == packets && e?.bytes == bytes)
        }
    }

    /// A new table set for the next window starts as large as the last window's grew, and a
    /// spare set is handed out before any new one is made.
    @Test func poolSizesANewSetLikeThePreviousOne() {
        let pool = WindowTablesPool(flowCapacity: 16, clientCapacity: 16)
        let previous = pool.take()
        let small = previous.flows.capacity
        for i in 0..<5000 {
            previous.flows.add(CounterTable.Key(a: UInt64(i), b: 1, c: 1), bytes: 1)
            previous.clients.add(CounterTable.Key(a: UInt64(i), b: 2, c: 1), bytes: 1)
        }
        #expect(previous.flows.capacity > small)
        let next = pool.take(sizedLike: previous)
        #expect(next.flows.capacity == previous.flows.capacity)
        #expect(next.clients.capacity == previous.clients.capacity)
        #expect(next.flows.count == 0 && next.clients.count == 0)
        pool.give(previous)
        let spare = pool.take(sizedLike: next)
        #expect(spare === previous)
        #expect(spare.flows.count == 0)
    }
}
