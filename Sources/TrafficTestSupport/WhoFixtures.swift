import Foundation
import TrafficCore

/// Named networks, ASN and country databases over `SyntheticTraffic`'s addresses, and the
/// oracle that adds up a capture's truth by them: each flow's address goes to the block
/// with the longest prefix that holds it, found by testing every block.
///
/// ```swift
/// try WhoFixtures.networksYAML(.servers).write(to: yaml, atomically: true, encoding: .utf8)
/// try WhoFixtures.asnDatabase().write(to: asnURL)
/// let expected = WhoFixtures.networkTotals(traffic.truth, blocks: WhoFixtures.networkBlocks(.servers))
/// ```
public enum WhoFixtures {
    /// A block of the fixtures: CIDR text and what it maps to.
    public struct Block<Value: Hashable & Sendable>: Hashable, Sendable {
        public var cidr: String
        public var value: Value

        public init(_ cidr: String, _ value: Value) {
            self.cidr = cidr
            self.value = value
        }

        public var prefix: NetworkPrefix {
            guard let p = try? NetworkPrefix(parsing: cidr) else { preconditionFailure("bad fixture block \(cidr)") }
            return p
        }
    }

    /// An AS as GeoLite2-ASN describes it.
    public struct AS: Hashable, Sendable {
        public var number: UInt32
        public var organization: String

        public init(_ number: UInt32, _ organization: String) {
            self.number = number
            self.organization = organization
        }
    }

    /// Named networks over the layout's clients and servers: nested blocks, blocks that
    /// share a name, and addresses no block holds (the servers layout: 10.0.0.4 and the
    /// clients in 203.0.0.0/16; the uplink: the remote servers outside the CDN blocks).
    public static func networkBlocks(_ layout: SyntheticTraffic.Layout) -> [Block<String>] {
        switch layout {
        case .servers:
            return [
                Block("198.51.0.0/16", "docs"),
                Block("198.51.0.0/17", "docs-low"),
                Block("198.51.64.0/18", "docs"),
                Block("100.64.0.0/10", "cgnat"),
                Block("100.64.128.0/17", "cgnat-b"),
                Block("11.0.0.0/16", "eleven"),
                Block("10.0.0.0/31", "servers"),
                Block("10.0.0.2/32", "servers"),
                Block("10.0.0.3/32", "server-3"),
                Block("2001:db8::1/128", "servers"),
                Block("2001:db8:1000::/36", "v6-clients"),
                Block("2001:db8:1000:8000::/49", "v6-odd"),
            ]
        case .uplink:
            return [
                Block("192.168.0.0/16", "office"),
                Block("192.168.1.0/25", "office-a"),
                Block("192.168.1.128/26", "office-b"),
                Block("2001:db8:1::/48", "office-v6"),
                Block("142.250.0.0/16", "google"),
                Block("2a00:1450:4001:800::/64", "google"),
                Block("151.101.0.0/16", "fastly"),
                Block("104.16.0.0/13", "cdn"),
            ]
        }
    }

    /// `count` more blocks in 172.16.0.0/12 and fc00::/7, where no synthetic address lies
    /// (a big file: each an IPv4 host or an IPv6 /48 of its own name, `filler-N`).
    public static func fillerBlocks(_ count: Int) -> [Block<String>] {
        (0..<count).map { i in
            i % 4 == 3
                ? Block("fc00:\(String(i >> 16, radix: 16)):\(String(i & 0xFFFF, radix: 16))::/48", "filler-\(i)")
                : Block("172.\(16 + (i >> 16) % 16).\((i >> 8) & 0xFF).\(i & 0xFF)/32", "filler-\(i)")
        }
    }

    /// `count` blocks of one size (a power of two) that together hold the `sources`
    /// addresses from 11.0.0.0 up (a spoofed flood's, as `synth-capture --spoofed` writes
    /// them), each of its own name, `net-N`.
    public static func floodBlocks(count: Int, sources: Int) -> [Block<String>] {
        var size = 1
        while size * count < sources { size <<= 1 }
        let length = 32 - size.trailingZeroBitCount
        return (0..<count).map { k in
            let a = 0x0B00_0000 &+ UInt32(truncatingIfNeeded: k * size)
            return Block("\(a >> 24).\((a >> 16) & 0xFF).\((a >> 8) & 0xFF).\(a & 0xFF)/\(length)", "net-\(k)")
        }
    }

    /// The `--networks` file of `blocks`, with labels (`site`, `tier`) on the first block of
    /// each fixture name (not on the filler and flood blocks).
    public static func networksYAML(_ blocks: [Block<String>]) -> String {
        var text = "# trafficmon --networks, written by the tests\nnetworks:\n"
        var labelled: Set<String> = []
        for b in blocks {
            text += "  - cidr: \(b.cidr)\n    name: \(b.value)\n"
            if !b.value.hasPrefix("filler-") && !b.value.hasPrefix("net-"), labelled.insert(b.value).inserted {
                text += "    labels: {site: \(b.value.hasPrefix("docs") || b.value.hasPrefix("office") ? "paris" : "lyon"), tier: \"\(b.value.count % 3)\"}\n"
            }
        }
        return text
    }

    /// ASes over the synthetic clients and servers (both layouts), nested: 198.51.0.0/16 in
    /// one AS with a /20 of another; 203.0.0.0/16 in none.
    public static let asBlocks: [Block<AS>] = [
        Block("198.51.0.0/16", AS(64500, "Doc \"Net\" \\ Paris")),
        Block("198.51.16.0/20", AS(64501, "Doc Net Sub")),
        Block("100.64.0.0/10", AS(64512, "Carrier Grade")),
        Block("11.0.0.0/8", AS(4_200_000_000, "Eleven 32-bit ASN")),
        Block("10.0.0.0/8", AS(65000, "Private Servers")),
        Block("2001:db8:1000::/36", AS(64496, "IPv6 Doc")),
        Block("192.168.0.0/16", AS(65001, "Office")),
        Block("2001:db8:1::/48", AS(65001, "Office")),
        Block("142.250.0.0/15", AS(15169, "GOOGLE")),
        Block("151.101.0.0/16", AS(54113, "FASTLY")),
    ]

    /// Countries over the same addresses: a country whose code is not two letters A-Z
    /// (`Fr`) counts as unknown, like an address in no block.
    public static let countryBlocks: [Block<String>] = [
        Block("198.51.0.0/16", "FR"),
        Block("198.51.128.0/17", "DE"),
        Block("100.64.0.0/10", "US"),
        Block("11.0.0.0/8", "Fr"),
        Block("10.0.0.0/8", "NL"),
        Block("2001:db8:1000::/36", "JP"),
        Block("2001:db8:1000:c000::/50", "BR"),
        Block("192.168.1.0/24", "CH"),
        Block("2001:db8:1::/48", "CH"),
        Block("142.250.0.0/15", "US"),
        Block("104.16.0.0/13", "CA"),
    ]

    public static func asnDatabase(recordSize: Int? = nil, ipVersion: Int = 6) -> MMDBWriter {
        var writer = MMDBWriter(databaseType: "GeoLite2-ASN", ipVersion: ipVersion, recordSize: recordSize)
        for b in asBlocks { writer.insert(b.prefix, MMDBWriter.asnRecord(asn: b.value.number, organization: b.value.organization)) }
        return writer
    }

    public static func countryDatabase(recordSize: Int? = nil, ipVersion: Int = 6) -> MMDBWriter {
        var writer = MMDBWriter(databaseType: "GeoLite2-Country", ipVersion: ipVersion, recordSize: recordSize, languages: ["en", "fr"])
        for (i, b) in countryBlocks.enumerated() {
            writer.insert(b.prefix, MMDBWriter.countryRecord(
                isoCode: b.value, name: "Country \(b.value)", geonameID: 3_000_000 + UInt32(i), inEuropeanUnion: ["FR", "DE", "NL"].contains(b.value)))
        }
        return writer
    }

    /// What the block with the longest prefix holding `ip` maps to; `nil` when none does.
    public static func longestMatch<Value>(_ ip: IPAddress, in blocks: [Block<Value>]) -> Value? {
        var best: (length: Int, value: Value)?
        for b in blocks {
            let p = b.prefix
            if p.contains(ip) && p.length > (best?.length ?? -1) { best = (p.length, b.value) }
        }
        return best?.value
    }

    /// A (name, side, direction) of the networks oracle.
    public struct NetworkKey: Hashable, Sendable, CustomStringConvertible {
        public var network: String
        public var side: String
        public var direction: String

        public init(network: String, side: String, direction: String) {
            self.network = network
            self.side = side
            self.direction = direction
        }

        public var description: String { "\(network)/\(side)/\(direction)" }
    }

    /// The truth's flows added up per named network (`unknown` where no block holds the
    /// party), side and direction.
    public static func networkTotals(_ truth: SyntheticTraffic.Truth, blocks: [Block<String>]) -> [NetworkKey: Counts] {
        var result: [NetworkKey: Counts] = [:]
        var memo: [String: String] = [:]
        for (side, flows) in [("client", truth.flows), ("server", truth.serverFlows)] {
            for (key, counts) in flows {
                let name = memo[key.client] ?? IPAddress(key.client).flatMap { longestMatch($0, in: blocks) } ?? "unknown"
                memo[key.client] = name
                result[NetworkKey(network: name, side: side, direction: key.direction), default: .zero] += counts
            }
        }
        return result
    }

    /// The same figures as counted in `records` (every window's `networks` added up).
    public static func networkTotals(in records: [WindowRecord]) -> [NetworkKey: Counts] {
        var result: [NetworkKey: Counts] = [:]
        for r in records {
            for n in r.networks ?? [] {
                result[NetworkKey(network: n.network, side: n.side.rawValue, direction: "in"), default: .zero] += n.in
                result[NetworkKey(network: n.network, side: n.side.rawValue, direction: "out"), default: .zero] += n.out
            }
        }
        return result.filter { $0.value != .zero }
    }

    /// The truth's client flows per (country or `unknown`, direction): `Fr` is not a code.
    public static func countryTotals(_ truth: SyntheticTraffic.Truth) -> [String: Counts] {
        var result: [String: Counts] = [:]
        for (key, counts) in truth.flows {
            var country = IPAddress(key.client).flatMap { longestMatch($0, in: countryBlocks) } ?? "unknown"
            if country.count != 2 || country.uppercased() != country { country = "unknown" }
            result["\(country)/\(key.direction)", default: .zero] += counts
        }
        return result
    }

    /// The same figures as counted in `records` (every window's `countries` added up).
    public static func countryTotals(in records: [WindowRecord]) -> [String: Counts] {
        totals(in: records) { r in (r.countries ?? []).map { ($0.country, $0.in, $0.out) } }
    }

    /// The truth's client flows per (AS number or `unknown`, direction).
    public static func asnTotals(_ truth: SyntheticTraffic.Truth) -> [String: Counts] {
        var result: [String: Counts] = [:]
        for (key, counts) in truth.flows {
            let asn = IPAddress(key.client).flatMap { longestMatch($0, in: asBlocks) }.map { String($0.number) } ?? "unknown"
            result["\(asn)/\(key.direction)", default: .zero] += counts
        }
        return result
    }

    /// The same figures as counted in `records` (every window's `asns` added up).
    public static func asnTotals(in records: [WindowRecord]) -> [String: Counts] {
        totals(in: records) { r in (r.asns ?? []).map { ($0.asn, $0.in, $0.out) } }
    }

    /// The (name, in, out) rows `rows` gives of each record added up per "name/direction",
    /// without the zero ones.
    private static func totals(in records: [WindowRecord], _ rows: (WindowRecord) -> [(String, Counts, Counts)]) -> [String: Counts] {
        var result: [String: Counts] = [:]
        for r in records {
            for (name, inbound, outbound) in rows(r) {
                result["\(name)/in", default: .zero] += inbound
                result["\(name)/out", default: .zero] += outbound
            }
        }
        return result.filter { $0.value != .zero }
    }
}
