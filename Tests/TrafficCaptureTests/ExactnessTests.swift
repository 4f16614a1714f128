import Foundation
import Testing
import TrafficCapture
import TrafficCore
import TrafficTestSupport

/// Real libpcap on real capture files, written by the tests, against the generator's oracle.
@Suite struct ExactnessTests {
    static func local(_ layout: SyntheticTraffic.Layout = .servers) throws -> LocalNetworks {
        LocalNetworks(try layout.localNetworks.map { try NetworkPrefix(parsing: $0) })
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

    /// Both places trafficmon is put, watched exactly: per (client, direction, service) and
    /// per (server, direction, service), each party marked local or not. Watching servers,
    /// the clients are the remote visitors and the services the local ports; watching an
    /// uplink, the clients are the office machines, the services what they use (TCP/443,
    /// UDP/53, UDP/123, ...) and never a client's ephemeral port, and the remote servers
    /// are listed apart.
    @Test(arguments: [
        (SyntheticTraffic.Layout.servers, UInt64(21), 262_144),
        (SyntheticTraffic.Layout.uplink, UInt64(22), 262_144),
        (SyntheticTraffic.Layout.uplink, UInt64(23), 64),
    ])
    func bothSidesMatchTheOracle(layout: SyntheticTraffic.Layout, seed: UInt64, snapLength: Int) throws {
        let traffic = SyntheticTraffic(packets: 30_000, clients: 200, seconds: 40, seed: seed, layout: layout)
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("t.pcap")
        try traffic.pcap(snapLength: snapLength).write(to: url)
        let local = try Self.local(layout)
        let records = try Self.windows(of: url, configuration: .init(localNetworks: local))
        let truth = traffic.truth(snapLength: snapLength)

        for (name, counted, expected) in [
            ("clients", SyntheticTraffic.flows(in: records), truth.flows),
            ("servers", SyntheticTraffic.serverFlows(in: records), truth.serverFlows),
        ] {
            let mismatches = Set(counted.keys).union(expected.keys).filter { counted[$0] != expected[$0] }
            #expect(!expected.isEmpty)
            #expect(mismatches.isEmpty, "\(name): \(mismatches.count) differences, first: \(mismatches.prefix(3).map { "\($0): \(String(describing: counted[$0])) vs \(String(describing: expected[$0]))" })")
        }
        for r in records {
            #expect(r.isConserved)
            for party in r.clients + r.servers { #expect(party.local == local.contains(party.ip), "\(party.ip)") }
        }
        let clients = records.flatMap(\.clients), servers = records.flatMap(\.servers)
        let ports = Set(records.flatMap { $0.services.compactMap(\.service.port) })
        #expect(ports.allSatisfy { $0 < 32768 }, "a client's ephemeral port taken for a service: \(ports.sorted())")
        switch layout {
        case .uplink:
            // The office machines are the clients and the servers they use are remote; only
            // frames without ports (GRE, a later fragment: the destination is the server side)
            // coming in turn a remote server into a client and a local machine into a server.
            #expect(clients.filter { !$0.local }.allSatisfy { $0.services.allSatisfy { $0.service.port == nil } })
            #expect(servers.filter(\.local).allSatisfy { $0.services.allSatisfy { $0.service.port == nil } })
            #expect(clients.filter(\.local).count > 50)
            #expect(Set(servers.filter { !$0.local }.map(\.ip)).count > 20)
            #expect(ports.isSuperset(of: [443, 53, 123]))
        case .servers:
            #expect(servers.filter { !$0.local }.allSatisfy { $0.services.allSatisfy { $0.service.port == nil } })
            #expect(clients.filter { !$0.local }.count > 100)
            #expect(ports == [22, 53, 80, 123, 443, 2905, 4789, 8000])
        }
    }
}
