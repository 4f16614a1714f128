import Testing
@testable import TrafficCore
import TrafficTestSupport

/// `WindowRecord.folded(top:)` (`/stats/history?top=K`): at most K services named, in the
/// window's list and in each listed client's, the rest under `other`, whatever the count.
@Suite struct WindowFoldingTests {
    /// A window holding `services` distinct services of one client.
    static func record(services: Int) -> WindowRecord {
        var closed: [WindowRecord] = []
        let aggregator = WindowAggregator(configuration: .init(windowLength: 1_000_000_000)) { (r: WindowRecord) in closed.append(r) }
        for port in 0..<services {
            aggregator.add(
                Attribution(client: IPAddress("198.51.100.7")!, direction: .inbound, service: Service(label: "TCP/\(8000 + port)")!),
                timestamp: 1_000_000_000, wireLength: 100 + port)
        }
        aggregator.finish()
        return closed[0]
    }

    @Test(arguments: [1, 2, 5])
    func noServiceIsNamedPastTop(services: Int) throws {
        let full = Self.record(services: services)
        #expect(full.services.count == services)
        for top in 0...services {
            let folded = full.folded(top: top)
            let named = folded.services.filter { $0.service != .other }
            #expect(named.count == min(top, services), "top \(top) of \(services): \(folded.services.map(\.service.label))")
            #expect(folded.services.reduce(0) { $0 + $1.bytes } == full.bytes)
            for client in folded.clients {
                #expect(client.services.filter { $0.service != .other }.count <= top)
                #expect(client.services.reduce(0) { $0 + $1.bytes } == client.total.bytes)
            }
        }
    }

    /// A window of 3,000 packets from 300 clients (IPv4 and IPv6) of three sizes: many
    /// clients tie on bytes and packets, so the address decides their place.
    static func crowd(top: Int?) -> WindowRecord {
        var closed: [WindowRecord] = []
        let configuration = WindowAggregator.Configuration(windowLength: 1_000_000_000, top: top)
        let aggregator = WindowAggregator(configuration: configuration) { (r: WindowRecord) in closed.append(r) }
        var rng = SplitMix64(seed: 50)
        for _ in 0..<3000 {
            let n = rng.next() % 300
            let client = n % 2 == 0 ? IPAddress(ipv4: 0xC633_6400 &+ UInt32(n)) : IPAddress(ipv6High: 0x2001_0DB8_0000_0000, low: n)
            aggregator.add(
                Attribution(client: client, server: IPAddress(ipv4: 0x0A00_0001), direction: .inbound, service: Service(label: "TCP/443")!),
                timestamp: 1_000_000_000, wireLength: 100 * (1 + Int(rng.next() % 3)))
        }
        aggregator.finish()
        return closed[0]
    }

    /// `--top K` lists the first K clients of the full listing, in its order, and `other`
    /// holds exactly the rest: whether K is small against the clients (a selection) or not.
    @Test(arguments: [0, 1, 7, 50, 299, 300, 1000])
    func topListsTheHeadOfTheFullOrder(top: Int) {
        let full = Self.crowd(top: nil)
        #expect(full.clients.count == 300)
        let cut = Self.crowd(top: top)
        let listed = min(top, full.clients.count)
        #expect(cut.clients.map(\.ip) == full.clients.prefix(listed).map(\.ip))
        #expect(cut.clients.map(\.total) == full.clients.prefix(listed).map(\.total))
        let rest = full.clients.dropFirst(listed)
        #expect(cut.other.clients == UInt64(rest.count))
        #expect(cut.other.in == rest.reduce(Counts.zero) { $0 + $1.in })
        #expect(cut.other.out == rest.reduce(Counts.zero) { $0 + $1.out })
    }

    /// The full listing's sort (by bytes, then packets, then address) gives the order a
    /// comparison sort gives: with many ties on bytes; with totals over all of the radix
    /// sort's 40 bits (every byte of them differing), and around its edges (0, 2^32 ± 1,
    /// 2^39, 2^40 - 1); with totals past it (one 2^40 among small ones, or many: sorted by
    /// comparison); and for lists of 0, 1 and 2 keys.
    @Test(arguments: [
        (0, 1 as UInt64, nil as UInt64?), (1, 1, nil), (2, 1, nil), (1000, 3, nil), (5000, 1 << 30, nil), (5000, 1 << 40, nil),
        (4000, 0, nil), (3000, 7, 1 << 40), (3000, 1 << 41, nil), (20000, 7, nil),
    ])
    func fullSortIsTheComparisonOrder(count: Int, byteRange: UInt64, oneLarge: UInt64?) {
        var rng = SplitMix64(seed: UInt64(count) &+ byteRange)
        let edges: [UInt64] = [0, 1 << 32 - 1, 1 << 32, 1 << 32 + 1, 1 << 39, 1 << 40 - 1]
        var keys: [PartySide.OrderKey] = (0..<count).map { i in
            let address = rng.next() % 2 == 0
                ? IPAddress(ipv4: UInt32(truncatingIfNeeded: rng.next() % 512))
                : IPAddress(ipv6High: 0x2001_0DB8_0000_0000, low: rng.next() % 512)
            // A range of 0: the edge values alone.
            let bytes = byteRange == 0 ? edges[Int(rng.next() % UInt64(edges.count))] : rng.next() % byteRange
            return PartySide.OrderKey(bytes: bytes, packets: rng.next() % 3, address: address, index: Int32(i))
        }
        if let oneLarge, count > 0 { keys[count / 2].bytes = oneLarge }
        var sorted = keys
        PartySide.sortAll(&sorted)
        let expected = keys.sorted()
        #expect(sorted.map(\.index) == expected.map(\.index))
    }
}
