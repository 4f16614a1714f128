import Foundation
import Testing
import TrafficCapture
import TrafficCore
import TrafficEnrichment
import TrafficTestSupport

/// Countries and ASes of generated captures, looked up in MMDB files through the real
/// libmaxminddb when each window's record is built, against the oracle: the truth's
/// client flows added up by the block that holds each client.
@Suite struct OriginExactnessTests {
    @Test(arguments: [(SyntheticTraffic.Layout.servers, UInt64(41), Int?.none), (.uplink, 42, 3), (.servers, 43, 2)])
    func countriesAndASesMatchTheOracle(layout: SyntheticTraffic.Layout, seed: UInt64, threads: Int?) throws {
        let f = try WhoFixtures.Files(SyntheticTraffic(packets: 20_000, clients: 400, seconds: 30, seed: seed, layout: layout), layout: layout)
        defer { f.remove() }
        var configuration = WindowAggregator.Configuration(
            localNetworks: LocalNetworks(try layout.localNetworks.map { try NetworkPrefix(parsing: $0) }))
        configuration.origins = try MaxMindOrigins(asnDatabase: f.asn.path, countryDatabase: f.country.path)
        let records = try Pump.file(f.capture, configuration: configuration, threads: threads).get()

        for r in records {
            #expect(r.whoIsConserved, "window \(r.start)")
            #expect(r.networks == nil)
            for a in r.asns ?? [] {
                let block = WhoFixtures.asBlocks.first { String($0.value.number) == a.asn }
                #expect(a.asOrg == (block?.value.organization ?? ""), "\(a.asn)")
            }
            // Each listed client carries its own origin.
            for c in r.clients {
                let block = WhoFixtures.longestMatch(c.ip, in: WhoFixtures.asBlocks)
                #expect(c.asn == block.map { String($0.number) } ?? "unknown", "\(c.ip)")
                #expect(c.asOrg == block?.organization ?? "", "\(c.ip)")
                let code = WhoFixtures.longestMatch(c.ip, in: WhoFixtures.countryBlocks)
                #expect(c.country == (code == nil || code == "Fr" ? "unknown" : code), "\(c.ip)")
                #expect(c.network == nil)
            }
            // Servers are not looked up.
            #expect(r.servers.allSatisfy { $0.asn == nil && $0.country == nil })
        }
        let countries = WhoFixtures.countryTotals(in: records), asns = WhoFixtures.asnTotals(in: records)
        let expectedCountries = WhoFixtures.countryTotals(f.traffic.truth)
        let expectedASNs = WhoFixtures.asnTotals(f.traffic.truth)
        #expect(countries == expectedCountries)
        #expect(asns == expectedASNs)
        // The fixture reaches several countries and ASes and leaves some clients unknown.
        #expect(Set(expectedCountries.keys.map { $0.split(separator: "/")[0] }).count >= 3)
        #expect(expectedASNs.keys.contains { $0.hasPrefix("unknown/") } || layout == .uplink)
        #expect(Set(expectedASNs.keys.map { $0.split(separator: "/")[0] }).count >= 2)
    }

    /// Past `--max-clients`, the folded clients count as `other` in both lists; `--top`
    /// folds the ASes past it into `other` too, and leaves the countries (bounded) whole.
    @Test func foldedClientsCountAsOther() throws {
        let f = try WhoFixtures.Files(SyntheticTraffic(packets: 10_000, clients: 500, seconds: 10, seed: 44))
        defer { f.remove() }
        func run(top: Int?) throws -> [WindowRecord] {
            var configuration = WindowAggregator.Configuration(
                localNetworks: LocalNetworks(try SyntheticTraffic.localNetworks.map { try NetworkPrefix(parsing: $0) }), maxClients: 30, top: top)
            configuration.origins = try MaxMindOrigins(asnDatabase: f.asn.path, countryDatabase: f.country.path)
            return try Pump.file(f.capture, configuration: configuration).get()
        }
        let whole = try run(top: nil), folded = try run(top: 1)
        #expect(whole.count == folded.count && !whole.isEmpty)
        for (w, f) in zip(whole, folded) {
            #expect(w.whoIsConserved && f.whoIsConserved)
            // Without --top, `other` holds only the clients past --max-clients.
            let otherCountry = w.countries?.first { $0.country == "other" }
            let otherAS = w.asns?.first { $0.asn == "other" }
            #expect(otherCountry.map { $0.in + $0.out } == w.other.in + w.other.out)
            #expect(otherAS.map { $0.in + $0.out } == w.other.in + w.other.out)
            #expect(w.other.packets > 0)
            #expect(f.countries == w.countries)
            #expect((f.asns ?? []).filter { $0.asn != "other" && $0.asn != "unknown" }.count <= 1)
            #expect(f.asns?.last?.asn == "other")
            #expect(f.asns == w.folded(top: 1).asns)
        }
    }
}
