import Foundation
import Testing
import TrafficCapture
import TrafficCore
import TrafficTestSupport

/// Real libpcap on real capture files, written by the tests, against the generator's oracle.
@Suite struct ExactnessTests {
    static func local() throws -> LocalNetworks {
        LocalNetworks(try SyntheticTraffic.localNetworks.map { try NetworkPrefix(parsing: $0) })
    }

    /// Reads `url` through libpcap + decoder + aggregator and returns every closed window.
    static func windows(of url: URL, configuration: WindowAggregator.Configuration) throws -> [WindowRecord] {
        var records: [WindowRecord] = []
        let aggregator = WindowAggregator(configuration: configuration) { records.append($0) }
        let source = try PacketSource.openFile(url.path)
        try PacketPump(source: source, aggregator: aggregator).drain()
        aggregator.finish()
        return records
    }

    @Test(arguments: [
        (UInt64(1), 262_144, PcapWriter.Format.pcapMicro),
        (UInt64(2), 64, PcapWriter.Format.pcapNano),
        (UInt64(3), 96, PcapWriter.Format.pcapng),
        (UInt64(4), 64, PcapWriter.Format.pcapng),
    ])
    func totalsMatchTheOracle(seed: UInt64, snapLength: Int, format: PcapWriter.Format) throws {
        let traffic = SyntheticTraffic(packets: 30_000, clients: 800, seconds: 40, seed: seed)
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("t.pcap")
        try traffic.pcap(snapLength: snapLength, format: format).write(to: url)

        let records = try Self.windows(of: url, configuration: .init(localNetworks: try Self.local()))
        let truth = traffic.truth(snapLength: snapLength)
        let flows = SyntheticTraffic.flows(in: records)
        var nonIP = Counts(), malformed = Counts(), total = Counts()
        var late: UInt64 = 0
        for r in records {
            #expect(r.isConserved, "window \(r.start) does not conserve packets and bytes")
            #expect(r.start % 5_000_000_000 == 0)
            #expect(r.end - r.start == 5_000_000_000)
            nonIP += r.nonIP
            malformed.add(packets: r.malformed.packets, bytes: r.malformed.bytes)
            total.add(packets: r.packets, bytes: r.bytes)
            late += r.latePackets
        }
        #expect(records.last?.partial == true)
        #expect(records.dropLast().allSatisfy { !$0.partial })
        #expect(Set(records.map(\.start)) == truth.windowStarts)
        #expect(total == truth.total)
        #expect(nonIP == truth.nonIP)
        #expect(malformed == truth.malformed)
        #expect(late == truth.latePackets)
        let mismatches = Set(flows.keys).union(truth.flows.keys).filter { flows[$0] != truth.flows[$0] }
        #expect(mismatches.isEmpty, "\(mismatches.count) differences, first: \(mismatches.prefix(3).map { "\($0): \(String(describing: flows[$0])) vs \(String(describing: truth.flows[$0]))" })")
    }
}
