import Foundation
import Testing
@testable import TrafficCore
import TrafficTestSupport

/// `ServiceList` (a party's services as a run of an array shared by the record's parties)
/// reads, compares, hashes and encodes as the array of its elements; services sorted and
/// folded where they lie are those the folding rule gives for the list alone.
@Suite struct ServiceListTests {
    static func services(_ count: Int, seed: UInt64, withOther: Bool = false) -> [ServiceCounts] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { i in
            let service = withOther && rng.next() % 5 == 0 ? Service.other : Service(ipProtocol: 6, port: UInt16(truncatingIfNeeded: rng.next() % 40 + 1))
            // Few distinct byte counts, so ties fall to packets, service and direction.
            return ServiceCounts(
                service: service, direction: rng.next() % 2 == 0 ? .inbound : .outbound,
                packets: rng.next() % 3 + 1, bytes: (rng.next() % 4 + UInt64(i % 2)) * 100)
        }
    }

    @Test func aRunReadsComparesHashesAndEncodesAsItsElements() throws {
        let all = Self.services(30, seed: 1)
        for range in [0..<0, 0..<30, 3..<4, 10..<25, 29..<30] {
            let run = ServiceList(all, range: range)
            let alone = Array(all[range])
            #expect(run.count == alone.count && run.isEmpty == alone.isEmpty)
            #expect(Array(run) == alone)
            #expect(run.indices == 0..<alone.count)
            for i in alone.indices { #expect(run[i] == alone[i]) }
            #expect(run.first == alone.first && run.last == alone.last)
            #expect(run.withUnsafeBufferPointer { Array($0) } == alone)
            // Equal to the same elements held alone, and hashed alike.
            #expect(run == ServiceList(alone))
            #expect(run.hashValue == ServiceList(alone).hashValue)
            #expect(Set([run, ServiceList(alone)]).count == 1)
            // JSON: the array's, both ways.
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            let json = try encoder.encode(run)
            #expect(json == (try encoder.encode(alone)))
            #expect(try JSONDecoder().decode(ServiceList.self, from: json) == run)
        }
        #expect(ServiceList(all, range: 0..<2) != ServiceList(all, range: 1..<3))
        #expect(ServiceList(all, range: 0..<2) != ServiceList(all, range: 0..<3))
        let literal: ServiceList = [all[4], all[5]]
        #expect(literal == ServiceList(all, range: 4..<6))
    }

    /// Sorting and folding where the items lie gives the list folded on its own (the same
    /// rule written plainly here), and only the front of the run is written.
    @Test(arguments: [0, 1, 2, 3, 7, 21, 40])
    func foldedInPlaceAsAlone(count: Int) {
        for seed in UInt64(0)..<20 {
            let items = Self.services(count, seed: seed &* 31 &+ UInt64(count), withOther: seed % 2 == 1)
            for top in [nil, 0, 1, 2, 5, count, count + 1] as [Int?] {
                var shared = Self.services(5, seed: 99) + items + Self.services(5, seed: 98)
                let before = shared
                let kept = shared.withUnsafeMutableBufferPointer { all in
                    WindowRecordBuilder.sortAndFold(UnsafeMutableBufferPointer(rebasing: all[5..<(5 + count)]), top: top)
                }
                #expect(Array(shared[5..<(5 + kept)]) == Self.plainFold(items, top: top), "\(count) items, top \(String(describing: top))")
                #expect(shared[0..<5] == before[0..<5] && shared[(5 + count)...] == before[(5 + count)...])
                #expect(WindowRecordBuilder.sortedAndFolded(items, top: top) == Self.plainFold(items, top: top))
            }
        }
    }

    /// A record keeps only the services it shows: with `--top` (a client with 60 services,
    /// most folded away) and after `folded(top:)` the parties' lists share one array of
    /// exactly their elements; without a cut, one array of all of them.
    @Test(arguments: [nil, 3] as [Int?])
    func recordsHoldOnlyTheServicesTheyList(top: Int?) {
        var closed: [WindowRecord] = []
        let configuration = WindowAggregator.Configuration(windowLength: 1_000_000_000, top: top)
        let aggregator = WindowAggregator(configuration: configuration) { (r: WindowRecord) in closed.append(r) }
        for client in 0..<10 {
            for port in 0..<(client == 0 ? 60 : 2) {
                aggregator.add(
                    Attribution(client: IPAddress(ipv4: 0xC633_6400 | UInt32(client)), server: IPAddress(ipv4: 0x0A00_0001), direction: .inbound,
                                service: Service(ipProtocol: 6, port: UInt16(1000 + port))),
                    timestamp: 1_000_000_000, wireLength: 100 + client)
            }
        }
        aggregator.finish()
        let record = closed[0]
        for sample in [record, record.folded(top: 2)] {
            for side in [sample.clients, sample.servers] {
                let listed = side.reduce(0) { $0 + $1.services.count }
                #expect(side.allSatisfy { $0.services.storageCount == listed }, "\(side.map(\.services.storageCount)) for \(listed) listed")
            }
        }
        #expect(record.clients.first?.services.count == (top == nil ? 60 : 4))
    }

    /// Most bytes first (then packets, service, direction); past `top` named services, and
    /// `other` itself, one `other` per direction at the end, inbound first.
    static func plainFold(_ items: [ServiceCounts], top: Int?) -> [ServiceCounts] {
        let sorted = items.sorted { a, b in
            (b.bytes, b.packets, a.service.rawValue, a.direction.rawValue) < (a.bytes, a.packets, b.service.rawValue, b.direction.rawValue)
        }
        let limit = top ?? .max
        guard sorted.count > limit || sorted.contains(where: { $0.service == .other }) else { return sorted }
        var result: [ServiceCounts] = []
        var rest: [ServiceCounts] = []
        for item in sorted {
            if item.service != .other && result.count < limit { result.append(item) } else { rest.append(item) }
        }
        for direction in [Direction.inbound, .outbound] {
            let folded = rest.filter { $0.direction == direction }
            guard !folded.isEmpty else { continue }
            result.append(ServiceCounts(
                service: .other, direction: direction, packets: folded.reduce(0) { $0 + $1.packets }, bytes: folded.reduce(0) { $0 + $1.bytes }))
        }
        return result
    }
}
