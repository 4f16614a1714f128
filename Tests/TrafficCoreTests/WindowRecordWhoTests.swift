import Foundation
import Testing
@testable import TrafficCore
import TrafficTestSupport

/// A lookup from a fixed table (address -> origin), counting the addresses it was asked.
final class TableLookup: OriginLookup, @unchecked Sendable {
    let table: [IPAddress: ClientOrigin]
    let providesASN: Bool
    let providesCountry: Bool
    private let count = LockedValue(0)
    /// How many addresses it was asked about.
    var asked: Int { count.withLock { $0 } }

    init(_ table: [IPAddress: ClientOrigin], asn: Bool = true, country: Bool = true) {
        self.table = table
        providesASN = asn
        providesCountry = country
    }

    func origins(of addresses: [IPAddress]) -> [ClientOrigin] {
        count.withLock { $0 += addresses.count }
        return addresses.map { table[$0] ?? ClientOrigin() }
    }
}

/// `networks`, `countries` and `asns` in the record: built from hand-made windows, written
/// as JSON after the other keys, read back, folded to `--top`, filtered.
@Suite struct WindowRecordWhoTests {
    typealias A = Agg

    static let networks: NamedNetworks = {
        let blocks = [("198.51.100.0/24", "docs"), ("198.51.100.128/25", "docs-high"), ("10.0.0.0/8", "servers"), ("2001:db8:2::/48", "v6")]
        guard let n = try? NamedNetworks(blocks.map { NamedNetworks.Block(prefix: NamedNetworksTests.prefix($0.0), name: $0.1) }) else {
            preconditionFailure("fixture networks")
        }
        return n
    }()

    static let origins = TableLookup([
        addr("198.51.100.7"): ClientOrigin(asn: 64500, asOrg: "Doc \"Net\"", country: "FR"),
        addr("198.51.100.200"): ClientOrigin(asn: 64500, asOrg: "Doc \"Net\"", country: "DE"),
        addr("2001:db8:2::7"): ClientOrigin(asn: 64501, asOrg: "V6 Net", country: "FR"),
        addr("203.0.113.9"): ClientOrigin(asn: nil, asOrg: "", country: nil),
    ])

    /// Two windows: five clients (one past `--max-clients 4`), servers 10.0.0.1 and
    /// 2001:db8:1::1, then one client.
    static func records(top: Int? = nil, lookup: (any OriginLookup)? = origins) -> [WindowRecord] {
        var c = A.config(maxClients: 4, top: top)
        c.networks = networks
        c.origins = lookup
        let (agg, out) = makeAggregator(c)
        let traffic: [(String, Direction, String, Int)] = [
            ("198.51.100.7", .inbound, "TCP/443", 900), ("198.51.100.7", .outbound, "TCP/443", 15000),
            ("198.51.100.200", .inbound, "UDP/53", 80), ("198.51.100.200", .outbound, "UDP/53", 2000),
            ("2001:db8:2::7", .inbound, "UDP/53", 300), ("2001:db8:2::7", .outbound, "UDP/53", 100),
            ("203.0.113.9", .inbound, "TCP/22", 500),
            ("192.0.2.99", .inbound, "TCP/80", 64),   // past --max-clients 4: other
        ]
        for (i, (client, direction, service, bytes)) in traffic.enumerated() {
            A.add(agg, client, direction, service, at: A.t0 + Int64(i) * 1_000_000, bytes: bytes)
        }
        A.add(agg, "198.51.100.7", .inbound, "TCP/443", at: A.t0 + A.w5, bytes: 100)
        agg.finish()
        return out.records
    }

    @Test func networksAndOriginsAddUpPerWindow() throws {
        let records = Self.records()
        #expect(records.count == 2)
        let r = records[0]
        #expect(r.isConserved && r.whoIsConserved)
        func net(_ name: String, _ side: NetworkSide) -> NetworkCounts? { r.networks?.first { $0.network == name && $0.side == side } }
        #expect(net("docs", .client) == NetworkCounts(network: "docs", side: .client, in: Counts(packets: 1, bytes: 900), out: Counts(packets: 1, bytes: 15000)))
        #expect(net("docs-high", .client)?.total == Counts(packets: 2, bytes: 2080))
        #expect(net("v6", .client)?.total == Counts(packets: 2, bytes: 400))
        #expect(net("unknown", .client)?.total == Counts(packets: 1, bytes: 500))
        #expect(net("other", .client)?.total == Counts(packets: 1, bytes: 64))
        // Servers: 10.0.0.1 is in `servers`, 2001:db8:1::1 in no network.
        #expect(net("servers", .server)?.total == Counts(packets: 6, bytes: 18544))
        #expect(net("unknown", .server)?.total == Counts(packets: 2, bytes: 400))
        // Order: named by bytes, then unknown, then other.
        #expect(r.networks?.filter { $0.side == .client }.map(\.network) == ["docs", "docs-high", "v6", "unknown", "other"])
        #expect(r.networks?.filter { $0.side == .server }.map(\.network) == ["servers", "unknown"])

        #expect(r.countries?.map(\.country) == ["FR", "DE", "unknown", "other"])
        #expect(r.countries?.first?.total == Counts(packets: 4, bytes: 16300))
        #expect(r.asns?.map(\.asn) == ["64500", "64501", "unknown", "other"])
        #expect(r.asns?.first?.asOrg == "Doc \"Net\"")
        #expect(r.asns?.first?.total == Counts(packets: 4, bytes: 17980))

        let c7 = try #require(A.client(r, "198.51.100.7"))
        #expect(c7.network == "docs" && c7.country == "FR" && c7.asn == "64500" && c7.asOrg == "Doc \"Net\"")
        let c9 = try #require(A.client(r, "203.0.113.9"))
        #expect(c9.network == "unknown" && c9.country == "unknown" && c9.asn == "unknown" && c9.asOrg == "")
        #expect(r.servers.map(\.network) == ["servers", "unknown"])
        #expect(r.servers.allSatisfy { $0.asn == nil && $0.country == nil })
        #expect(records[1].whoIsConserved)
        #expect(records[1].networks?.map(\.network) == ["docs", "servers"])
    }

    @Test func withoutConfigurationTheRecordIsAsBefore() throws {
        var c = A.config(maxClients: 4)
        let (agg, out) = makeAggregator(c)
        A.add(agg, "198.51.100.7", at: A.t0, bytes: 900)
        agg.finish()
        let plain = try #require(out.records.first)
        #expect(plain.networks == nil && plain.countries == nil && plain.asns == nil)
        #expect(plain.clients.allSatisfy { $0.network == nil && $0.country == nil && $0.asn == nil && $0.asOrg == nil })
        let text = plain.jsonString
        for key in ["\"networks\"", "\"countries\"", "\"asns\"", "\"network\"", "\"country\"", "\"asn\"", "\"as_org\""] {
            #expect(!text.contains(key), "\(key) in \(text)")
        }
        // Only the ASN database: countries stay out.
        c.origins = TableLookup([:], asn: true, country: false)
        let (agg2, out2) = makeAggregator(c)
        A.add(agg2, "198.51.100.7", at: A.t0, bytes: 900)
        agg2.finish()
        let asnOnly = try #require(out2.records.first)
        #expect(asnOnly.countries == nil && asnOnly.asns?.map(\.asn) == ["unknown"])
        #expect(asnOnly.clients.first?.country == nil && asnOnly.clients.first?.asn == "unknown")
    }

    @Test func jsonPlacesTheListsAfterDesignsKeysAndReadsBack() throws {
        for r in Self.records() + Self.records(top: 1) {
            let json = try #require(OrderedJSON.parse(r.jsonBytes()), "not JSON: \(r.jsonString)")
            #expect(Array(json.keys.drop { $0 != "other_servers" }.prefix(5)) == ["other_servers", "networks", "countries", "asns", "tcp"])
            #expect(Array(json.keys.prefix(WindowRecordJSONTests.designKeys.count)) == WindowRecordJSONTests.designKeys)
            let first = json["clients"]?.elements.first
            #expect(Array(first?.keys.suffix(4) ?? []) == ["network", "country", "asn", "as_org"])
            #expect(json["networks"]?.elements.first?.keys == ["network", "side", "in", "out"])
            #expect(json["asns"]?.elements.first?.keys == ["asn", "as_org", "in", "out"])
            #expect(json["countries"]?.elements.first?.keys == ["country", "in", "out"])
            let back = try JSONDecoder().decode(WindowRecord.self, from: Data(r.jsonBytes()))
            #expect(back == r)
            #expect(back.jsonBytes() == r.jsonBytes())
        }
    }

    @Test func topFoldsNetworksAndASesAndKeepsTheTotals() throws {
        let whole = Self.records()[0]
        let folded = Self.records(top: 1)[0]
        #expect(folded.whoIsConserved)
        #expect(folded.networks?.filter { $0.side == .client }.map(\.network) == ["docs", "unknown", "other"])
        let otherClients = folded.networks?.first { $0.network == "other" && $0.side == .client }
        // docs-high (2080) + v6 (400) + the client past --max-clients (64).
        #expect(otherClients?.total == Counts(packets: 5, bytes: 2544))
        #expect(folded.asns?.map(\.asn) == ["64500", "unknown", "other"])
        #expect(folded.countries == whole.countries)
        // Folding the whole record gives what building with --top gives.
        #expect(whole.folded(top: 1).networks == folded.networks)
        #expect(whole.folded(top: 1).asns == folded.asns)
        #expect(whole.folded(top: 0).whoIsConserved)
        #expect(whole.folded(top: 0).networks?.allSatisfy { $0.network == "unknown" || $0.network == "other" } == true)
    }

    /// Conservation of the parties alone (a filtered record's lists hold only the selection).
    static func partiesConserved(_ r: WindowRecord) -> Bool {
        var parties = r
        parties.networks = nil
        parties.countries = nil
        parties.asns = nil
        return parties.isConserved
    }

    @Test func filtersKeepTheSelectionAndConserveTheParties() throws {
        let r = Self.records()[0]
        let docs = r.filtered(WhoFilter(network: "docs"))
        #expect(docs.clients.map(\.ip.description) == ["198.51.100.7"])
        #expect(docs.servers.isEmpty)
        #expect(docs.networks?.map(\.side) == [.client])
        #expect(Self.partiesConserved(docs), "parties not selected are added into other")
        #expect(docs.other.clients == r.other.clients + 3)
        let servers = r.filtered(WhoFilter(network: "servers"))
        #expect(servers.clients.isEmpty && servers.servers.map(\.ip.description) == ["10.0.0.1"])
        let fr = r.filtered(WhoFilter(country: "FR"))
        #expect(Set(fr.clients.map(\.ip.description)) == ["198.51.100.7", "2001:db8:2::7"])
        #expect(fr.countries?.map(\.country) == ["FR"])
        #expect(fr.servers == r.servers)
        let both = r.filtered(WhoFilter(asn: "64500", country: "DE"))
        #expect(both.clients.map(\.ip.description) == ["198.51.100.200"])
        #expect(both.asns?.map(\.asn) == ["64500"])
        let unknown = r.filtered(WhoFilter(asn: "unknown"))
        #expect(unknown.clients.map(\.ip.description) == ["203.0.113.9"])
        let none = r.filtered(WhoFilter(network: "no-such"))
        #expect(none.clients.isEmpty && none.networks == [] && Self.partiesConserved(none))
        #expect(r.filtered(WhoFilter()) == r)
    }

    @Test func eachClientIsLookedUpOncePerWindow() {
        let lookup = TableLookup([:])
        _ = Self.records(lookup: lookup)
        // Window 1: the 4 clients known one by one; window 2: one client.
        #expect(lookup.asked == 5)
    }

    @Test func oldRecordsWithoutTheListsStillRead() throws {
        let r = try JSONDecoder().decode(WindowRecord.self, from: Data(WindowRecordJSONTests.designExample.utf8))
        #expect(r.networks == nil && r.countries == nil && r.asns == nil)
        #expect(r.whoIsConserved)
    }
}
