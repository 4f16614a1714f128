import Testing
@testable import TrafficCore
import TrafficTestSupport

@Suite("CounterTable")
struct CounterTableTests {
    @Test func addsFindsGrowsAndEmpties() {
        var table = CounterTable<PartyKey>(minimumCapacity: 4)
        defer { table.deallocate() }
        let initialCapacity = table.capacity
        var expected: [PartyKey: (UInt64, UInt64)] = [:]
        var rng = SplitMix64(seed: 99)
        for i in 0..<3000 {
            let key = PartyKey(high: rng.next() % 50, low: UInt64(i % 700), tag: 1 + rng.next() % 3)
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
        let missing = PartyKey(high: 1000, low: 1000, tag: 1)
        #expect(!table.contains(missing) && table.entry(missing) == nil)
        let missingSlot = table.addOrFindSlot(missing, hash: missing.hash, bytes: 5)
        #expect(missingSlot < 0)
        #expect(table.entry(missing) == nil)
        let present = expected.keys.first!
        let presentSlot = table.addOrFindSlot(present, hash: present.hash, bytes: 5)
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
        var table = CounterTable<PartyKey>(minimumCapacity: 4)
        defer { table.deallocate() }
        var expected: [PartyKey: (UInt64, UInt64)] = [:]
        var rng = SplitMix64(seed: 7)
        var grew = 0
        for _ in 0..<5000 {
            let key = PartyKey(high: rng.next() % 300, low: rng.next() % 7, tag: 1 + rng.next() % 2)
            let hash = key.hash
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
        let pool = WindowTablesPool(flowCapacity: 16, partyCapacity: 16)
        let previous = pool.take()
        let small = previous.flows.capacity
        for i in 0..<5000 {
            previous.flows.add(FlowKey(clientHigh: 0, clientLow: UInt64(i), serverHigh: 0, serverLow: 1, tag: FlowTag(rawValue: 1)), bytes: 1)
            previous.clients.add(PartyKey(high: UInt64(i), low: 2, tag: 1), bytes: 1)
            previous.servers.add(PartyKey(high: UInt64(i), low: 3, tag: 1), bytes: 1)
        }
        #expect(previous.flows.capacity > small)
        let next = pool.take(sizedLike: previous)
        #expect(next.flows.capacity == previous.flows.capacity)
        #expect(next.clients.capacity == previous.clients.capacity)
        #expect(next.servers.capacity == previous.servers.capacity)
        #expect(next.flows.count == 0 && next.clients.count == 0)
        pool.give(previous)
        let spare = pool.take(sizedLike: next)
        #expect(spare === previous)
        #expect(spare.flows.count == 0)
    }

    /// Flow keys that differ only in which address is the client, or in one tag bit, are
    /// different entries; the owner's word stays as inserted while the counters add up.
    @Test func flowKeysKeepClientServerAndTagApart() {
        var table = CounterTable<FlowKey>(minimumCapacity: 4)
        defer { table.deallocate() }
        let a = IPAddress(ipv4: 0xC0A8_010A), b = IPAddress(ipv4: 0x8EFA_0101)
        let service = Service(ipProtocol: 6, port: 443)
        let keys = [
            FlowKey(client: a, server: b, direction: .outbound, service: service),
            FlowKey(client: b, server: a, direction: .outbound, service: service),
            FlowKey(client: a, server: b, direction: .inbound, service: service),
            FlowKey(client: a, server: nil, direction: .outbound, service: service),
            FlowKey(client: a, server: b, direction: .outbound, service: service).withOtherService,
        ]
        for (i, key) in keys.enumerated() {
            let inserted = table.add(key, bytes: 100, aux: UInt64(i))
            let insertedAgain = table.add(key, bytes: 10, aux: 99)
            #expect(inserted && !insertedAgain)
        }
        #expect(table.count == keys.count)
        for (i, key) in keys.enumerated() {
            #expect(table.entry(key)?.aux == UInt64(i))
            #expect(table.entry(key)?.bytes == 110 && table.entry(key)?.packets == 2)
        }
        #expect(MemoryLayout<CounterTable<FlowKey>.Entry>.stride == 64)
        #expect(keys[0].clientParty.address == a && keys[0].serverParty.address == b)
        #expect(keys[3].tag.isServerOther && !keys[0].tag.isServerOther)
    }
}
