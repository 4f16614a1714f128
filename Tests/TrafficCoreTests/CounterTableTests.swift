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
        let small = previous.clientFlows.capacity
        for i in 0..<5000 {
            previous.clientFlows.add(PartyKey(high: UInt64(i), low: 1, tag: 1), bytes: 1)
            previous.serverFlows.add(PartyKey(high: UInt64(i), low: 4, tag: 1), bytes: 1)
            previous.clients.add(PartyKey(high: UInt64(i), low: 2, tag: 1), bytes: 1)
            previous.servers.add(PartyKey(high: UInt64(i), low: 3, tag: 1), bytes: 1)
        }
        #expect(previous.clientFlows.capacity > small)
        let next = pool.take(sizedLike: WindowTablesPool.Capacities(previous))
        #expect(next.clientFlows.capacity == previous.clientFlows.capacity)
        #expect(next.serverFlows.capacity == previous.serverFlows.capacity)
        #expect(next.clients.capacity == previous.clients.capacity)
        #expect(next.servers.capacity == previous.servers.capacity)
        #expect(next.clientFlows.count == 0 && next.clients.count == 0)
        pool.give(previous)
        let spare = pool.take(sizedLike: WindowTablesPool.Capacities(next))
        #expect(spare === previous)
        #expect(spare.clientFlows.count == 0)
    }

    /// A packet's flow key splits into one key per side: the client's and the server's
    /// (party, direction, service), each with its own family and `other` marks; keys that
    /// differ in one tag bit are different entries, and the owner's word stays as inserted
    /// while the counters add up.
    @Test func flowKeysSplitIntoOneKeyPerSide() {
        let a = IPAddress(ipv4: 0xC0A8_010A), b = IPAddress(ipv6High: 0x2A00_1450_0000_0000, low: 7)
        let service = Service(ipProtocol: 6, port: 443)
        let key = FlowKey(client: a, server: b, direction: .outbound, service: service)
        #expect(key.clientSide.address == a && key.serverSide.address == b)
        #expect(key.clientSide.party == PartyKey(a) && key.serverSide.party == PartyKey(b))
        for side in [key.clientSide, key.serverSide] {
            #expect(side.flowTag.service == service && side.flowTag.direction == .outbound && !side.isOther)
        }
        let unknown = FlowKey(client: a, server: nil, direction: .inbound, service: service)
        #expect(unknown.serverSide.isOther && !unknown.clientSide.isOther)
        #expect(unknown.serverSide == unknown.serverSide.withOtherParty)

        var table = CounterTable<PartyKey>(minimumCapacity: 4)
        defer { table.deallocate() }
        let keys = [
            key.clientSide, key.serverSide, FlowKey(client: b, server: a, direction: .outbound, service: service).clientSide,
            FlowKey(client: a, server: b, direction: .inbound, service: service).clientSide,
            key.clientSide.withOtherService, key.clientSide.withOtherParty, key.serverSide.withOtherParty, key.clientSide.party,
            key.clientSide.serviceTotal,
        ]
        // Two pairs coincide: a server side and a client side of the same address and flow,
        // and any party folded into `other` for the same flow.
        #expect(Set(keys).count == keys.count - 2)
        #expect(key.serverSide == keys[2] && key.clientSide.withOtherParty == key.serverSide.withOtherParty)
        for (i, k) in Set(keys).enumerated() {
            let inserted = table.add(k, bytes: 100, aux: UInt64(i))
            let insertedAgain = table.add(k, bytes: 10, aux: 99)
            #expect(inserted && !insertedAgain)
            #expect(table.entry(k)?.aux == UInt64(i))
            #expect(table.entry(k)?.bytes == 110 && table.entry(k)?.packets == 2)
        }
        #expect(MemoryLayout<CounterTable<PartyKey>.Entry>.stride == 48)
    }
}
