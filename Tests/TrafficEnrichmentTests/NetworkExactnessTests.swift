import Foundation
import Testing
import TrafficCapture
import TrafficCore
import TrafficEnrichment
import TrafficTestSupport

/// Named networks on generated captures read through real libpcap, against the oracle:
/// per network, side and direction, the packets and bytes of the truth's flows whose
/// address the network holds (longest prefix, every block tested), and `unknown` for
/// the rest. Every window's networks add up to its IP totals, per side.
@Suite struct NetworkExactnessTests {
    static func configuration(
        _ layout: SyntheticTraffic.Layout, blocks: [WhoFixtures.Block<String>], maxClients: Int = 100_000, top: Int? = nil
    ) throws -> WindowAggregator.Configuration {
        var c = WindowAggregator.Configuration(
            localNetworks: LocalNetworks(try layout.localNetworks.map { try NetworkPrefix(parsing: $0) }), maxClients: maxClients, top: top)
        c.networks = try NetworksFile.parse(WhoFixtures.networksYAML(blocks), path: "networks.yaml")
        return c
    }

    static func differences(_ a: [WhoFixtures.NetworkKey: Counts], _ b: [WhoFixtures.NetworkKey: Counts]) -> [String] {
        Set(a.keys).union(b.keys).filter { a[$0] != b[$0] }.sorted { $0.description < $1.description }.prefix(5).map {
            "\($0): \(String(describing: a[$0])) vs \(String(describing: b[$0]))"
        }
    }

    @Test(arguments: [
        (SyntheticTraffic.Layout.servers, UInt64(31), Int?.none, 0),
        (SyntheticTraffic.Layout.servers, UInt64(32), Int?.some(3), 10_000),
        (SyntheticTraffic.Layout.uplink, UInt64(33), Int?.some(2), 0),
        (SyntheticTraffic.Layout.uplink, UInt64(34), Int?.none, 2_000),
    ])
    func networksMatchTheOracle(layout: SyntheticTraffic.Layout, seed: UInt64, threads: Int?, filler: Int) throws {
        let f = try WhoFixtures.Files(
            SyntheticTraffic(packets: 30_000, clients: 400, seconds: 40, seed: seed, layout: layout), layout: layout, snapLength: 128)
        defer { f.remove() }
        let blocks = WhoFixtures.networkBlocks(layout)
        let records = try Pump.file(f.capture, configuration: Self.configuration(layout, blocks: blocks + WhoFixtures.fillerBlocks(filler)), threads: threads).get()
        let expected = WhoFixtures.networkTotals(f.traffic.truth(snapLength: 128), blocks: blocks)
        let counted = WhoFixtures.networkTotals(in: records)

        #expect(Self.differences(counted, expected).isEmpty, "\(Self.differences(counted, expected))")
        // The fixture reaches named, nested and unknown blocks on both sides.
        let names = Set(expected.keys.map(\.network))
        #expect(names.contains("unknown"))
        #expect(names.count >= 5, "\(names)")
        #expect(Set(expected.keys.map(\.side)) == ["client", "server"])
        for r in records {
            #expect(r.isConserved && r.whoIsConserved, "window \(r.start)")
            #expect(r.networks?.contains { $0.network == "other" } == false)
            // Every listed party names its network as the oracle does.
            for (party, side) in r.clients.map({ ($0, "client") }) + r.servers.map({ ($0, "server") }) {
                #expect(party.network == (WhoFixtures.longestMatch(party.ip, in: blocks) ?? "unknown"), "\(side) \(party.ip)")
            }
        }
    }

    /// Past `--max-clients` the parties folded into `other` count under `network="other"`:
    /// each side still adds up to the window's totals, and the named networks and `other`
    /// together hold exactly what the oracle gives the whole capture.
    @Test(arguments: [Int?.none, 2])
    func partiesPastTheCapCountAsOther(threads: Int?) throws {
        let layout = SyntheticTraffic.Layout.servers
        let f = try WhoFixtures.Files(SyntheticTraffic(packets: 20_000, clients: 600, seconds: 20, seed: 35, layout: layout), layout: layout)
        defer { f.remove() }
        let blocks = WhoFixtures.networkBlocks(layout)
        let records = try Pump.file(f.capture, configuration: Self.configuration(layout, blocks: blocks, maxClients: 40), threads: threads).get()
        var otherClients = Counts(), otherByRecord = Counts()
        for r in records {
            #expect(r.whoIsConserved, "window \(r.start)")
            let other = r.networks?.filter { $0.network == "other" && $0.side == .client } ?? []
            #expect(other.count == 1)
            otherClients += other.reduce(Counts()) { $0 + $1.total }
            otherByRecord += r.other.in + r.other.out
        }
        #expect(otherClients == otherByRecord)
        #expect(otherClients.packets > 1000)
        // Named + unknown + other over the capture: the oracle's whole IP traffic per side.
        let expected = WhoFixtures.networkTotals(f.traffic.truth, blocks: blocks)
        let counted = WhoFixtures.networkTotals(in: records)
        for side in ["client", "server"] {
            let all = expected.filter { $0.key.side == side }.values.reduce(Counts(), +)
            #expect(counted.filter { $0.key.side == side }.values.reduce(Counts(), +) == all)
        }
    }

    /// `--top N` lists at most N named networks per side, the rest in `other`, each listed
    /// one with its whole figures.
    @Test func topFoldsNetworksIntoOther() throws {
        let layout = SyntheticTraffic.Layout.servers
        let f = try WhoFixtures.Files(SyntheticTraffic(packets: 10_000, clients: 300, seconds: 10, seed: 36, layout: layout), layout: layout)
        defer { f.remove() }
        let blocks = WhoFixtures.networkBlocks(layout)
        let whole = try Pump.file(f.capture, configuration: Self.configuration(layout, blocks: blocks)).get()
        let folded = try Pump.file(f.capture, configuration: Self.configuration(layout, blocks: blocks, top: 2)).get()
        #expect(whole.count == folded.count)
        var sawFold = false
        for (w, f) in zip(whole, folded) {
            #expect(f.whoIsConserved)
            for side in NetworkSide.allCases {
                let named = f.networks?.filter { $0.side == side && $0.network != "other" && $0.network != "unknown" } ?? []
                #expect(named.count <= 2)
                for n in named { #expect(w.networks?.contains(n) == true, "\(n)") }
                if f.networks?.contains(where: { $0.side == side && $0.network == "other" }) == true { sawFold = true }
            }
            // Folding the whole record again gives the same lists.
            #expect(w.folded(top: 2).networks == f.networks)
        }
        #expect(sawFold)
    }
}
