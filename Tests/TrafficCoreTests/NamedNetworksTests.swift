import Testing
@testable import TrafficCore
import TrafficTestSupport

/// The named-network table against the plain definition of longest-prefix match: of the
/// blocks holding an address, the one with the longest prefix names it; none: unknown.
@Suite struct NamedNetworksTests {
    /// The oracle: every block tested, the longest match kept.
    static func naive(_ ip: IPAddress, _ blocks: [NamedNetworks.Block]) -> String? {
        var best: NamedNetworks.Block?
        for b in blocks where b.prefix.contains(ip) && b.prefix.length > (best?.prefix.length ?? -1) { best = b }
        return best?.name
    }

    /// The same definition, faster for many blocks: the address cut to every length, longest
    /// first, looked up among the blocks.
    static func byLength(_ ip: IPAddress, _ blocks: [NetworkPrefix: String]) -> String? {
        for length in stride(from: ip.isIPv6 ? 128 : 32, through: 0, by: -1) {
            if let name = blocks[NetworkPrefix(address: ip, length: length)] { return name }
        }
        return nil
    }

    static func prefix(_ text: String) -> NetworkPrefix {
        guard let p = try? NetworkPrefix(parsing: text) else { preconditionFailure("bad test prefix \(text)") }
        return p
    }

    @Test func nestedBlocksTakeTheMostSpecificName() throws {
        let blocks = [
            NamedNetworks.Block(prefix: Self.prefix("10.0.0.0/8"), name: "corp"),
            NamedNetworks.Block(prefix: Self.prefix("10.1.0.0/16"), name: "paris"),
            NamedNetworks.Block(prefix: Self.prefix("10.1.2.0/24"), name: "lab"),
            NamedNetworks.Block(prefix: Self.prefix("10.1.2.128/25"), name: "corp"),
            NamedNetworks.Block(prefix: Self.prefix("2001:db8::/32"), name: "v6"),
            NamedNetworks.Block(prefix: Self.prefix("2001:db8:1::/48"), name: "lab"),
        ]
        let networks = try NamedNetworks(blocks)
        let cases: [(String, String?)] = [
            ("10.0.0.1", "corp"), ("10.1.0.0", "paris"), ("10.1.1.255", "paris"), ("10.1.2.0", "lab"),
            ("10.1.2.127", "lab"), ("10.1.2.128", "corp"), ("10.1.2.255", "corp"), ("10.1.3.0", "paris"),
            ("10.255.255.255", "corp"), ("11.0.0.0", nil), ("9.255.255.255", nil),
            ("2001:db8::1", "v6"), ("2001:db8:1::5", "lab"), ("2001:db8:2::", "v6"), ("2001:db9::", nil),
            // An IPv4 block does not hold the IPv6 address with the same low bits.
            ("::a01:203", nil),
        ]
        for (text, expected) in cases {
            #expect(networks.name(of: addr(text)) == expected, "\(text)")
        }
        #expect(networks.names == ["corp", "paris", "lab", "v6"])
        #expect(networks.blockCount == 6)
    }

    @Test func theWholeSpaceAndItsEdges() throws {
        let networks = try NamedNetworks([
            .init(prefix: Self.prefix("0.0.0.0/0"), name: "all4"),
            .init(prefix: Self.prefix("255.255.255.255/32"), name: "top4"),
            .init(prefix: Self.prefix("0.0.0.0/32"), name: "zero4"),
            .init(prefix: Self.prefix("::/0"), name: "all6"),
            .init(prefix: Self.prefix("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"), name: "top6"),
            .init(prefix: Self.prefix("8000::/1"), name: "upper6"),
        ])
        #expect(networks.name(of: addr("0.0.0.0")) == "zero4")
        #expect(networks.name(of: addr("0.0.0.1")) == "all4")
        #expect(networks.name(of: addr("255.255.255.254")) == "all4")
        #expect(networks.name(of: addr("255.255.255.255")) == "top4")
        #expect(networks.name(of: addr("::")) == "all6")
        #expect(networks.name(of: addr("7fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")) == "all6")
        #expect(networks.name(of: addr("8000::")) == "upper6")
        #expect(networks.name(of: addr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe")) == "upper6")
        #expect(networks.name(of: addr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")) == "top6")
    }

    @Test func emptyTableKnowsNothing() throws {
        let networks = try NamedNetworks([])
        #expect(networks.name(of: addr("192.0.2.1")) == nil)
        #expect(networks.name(of: addr("2001:db8::1")) == nil)
        #expect(networks.rangeCount == 0)
    }

    /// 10,000 random blocks (nested by construction: lengths 8 to 32 and 16 to 128 drawn
    /// from a small pool of roots) and 100,000 random addresses near them, IPv4 and IPv6.
    @Test(arguments: [UInt64(1), 2, 3])
    func randomBlocksMatchTheOracle(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        var blocks: [NamedNetworks.Block] = []
        var seen: Set<NetworkPrefix> = []
        let roots4: [UInt32] = (0..<20).map { _ in UInt32(truncatingIfNeeded: rng.next()) }
        let roots6: [UInt64] = (0..<20).map { _ in rng.next() }
        while blocks.count < 10_000 {
            let p: NetworkPrefix
            if rng.next() % 3 == 0 {
                let high = roots6[Int(rng.next() % 20)] ^ (rng.next() & 0xFFFF_FFFF)
                p = NetworkPrefix(address: IPAddress(ipv6High: high, low: rng.next()), length: 16 + Int(rng.next() % 113))
            } else {
                let a = roots4[Int(rng.next() % 20)] ^ UInt32(truncatingIfNeeded: rng.next() & 0xFF_FFFF)
                p = NetworkPrefix(address: IPAddress(ipv4: a), length: 8 + Int(rng.next() % 25))
            }
            guard seen.insert(p).inserted else { continue }
            blocks.append(.init(prefix: p, name: "n\(rng.next() % 500)"))
        }
        let networks = try NamedNetworks(blocks)
        #expect(networks.blockCount == 10_000)
        let byPrefix = Dictionary(blocks.map { ($0.prefix, $0.name) }, uniquingKeysWith: { a, _ in a })
        // Addresses inside and around the blocks, and at their first and last addresses.
        var mismatches = 0
        var matched = 0
        for i in 0..<100_000 {
            let b = blocks[Int(rng.next() % UInt64(blocks.count))].prefix
            var ip = b.address
            switch i % 5 {
            case 0: break
            case 4:
                // Anywhere: mostly outside every block.
                ip = ip.isIPv6 ? IPAddress(ipv6High: rng.next(), low: rng.next()) : IPAddress(ipv4: UInt32(truncatingIfNeeded: rng.next()))
            case 1:
                if ip.isIPv6 { ip.low |= ~b.maskLow; ip.high |= ~b.maskHigh } else { ip.low |= ~b.maskLow & 0xFFFF_FFFF }
            case 2:
                if ip.isIPv6 { ip.low ^= rng.next() } else { ip.low ^= rng.next() & 0xFFFF }
            default:
                if ip.isIPv6 { ip.high ^= rng.next() & 0xFF_FFFF } else { ip.low ^= rng.next() & 0xFF_FFFF }
            }
            let expected = Self.byLength(ip, byPrefix)
            // Every 100th address against the plain scan too.
            if i % 100 == 0 && Self.naive(ip, blocks) != expected { mismatches += 1 }
            if expected != nil { matched += 1 }
            if networks.name(of: ip) != expected { mismatches += 1 }
        }
        #expect(mismatches == 0)
        // The addresses exercise both outcomes.
        #expect(matched > 50_000 && matched < 100_000)
    }

    @Test func theSameBlockUnderTwoNamesIsRefused() {
        let blocks = [
            NamedNetworks.Block(prefix: Self.prefix("192.0.2.0/24"), name: "office"),
            NamedNetworks.Block(prefix: Self.prefix("198.51.100.0/24"), name: "lab"),
            // Host bits are cleared: this is 192.0.2.0/24 again.
            NamedNetworks.Block(prefix: Self.prefix("192.0.2.9/24"), name: "guest"),
        ]
        #expect(throws: NamedNetworksError.conflict(prefix: Self.prefix("192.0.2.0/24"), first: 0, second: 2)) {
            try NamedNetworks(blocks)
        }
        // Under one name, twice is once.
        let same = try? NamedNetworks([blocks[0], blocks[1], .init(prefix: Self.prefix("192.0.2.0/24"), name: "office")])
        #expect(same?.blockCount == 2)
    }

    @Test(arguments: ["unknown", "other", ""])
    func reservedNamesAreRefused(name: String) {
        #expect(throws: NamedNetworksError.reservedName(position: 1)) {
            try NamedNetworks([.init(prefix: Self.prefix("10.0.0.0/8"), name: "a"), .init(prefix: Self.prefix("11.0.0.0/8"), name: name)])
        }
    }

    @Test func adjacentBlocksOfOneNameMerge() throws {
        let networks = try NamedNetworks([
            .init(prefix: Self.prefix("10.0.0.0/25"), name: "a"),
            .init(prefix: Self.prefix("10.0.0.128/25"), name: "a"),
            .init(prefix: Self.prefix("10.0.1.0/24"), name: "b"),
        ])
        #expect(networks.rangeCount == 2)
        #expect(networks.name(of: addr("10.0.0.200")) == "a")
        #expect(networks.name(of: addr("10.0.1.0")) == "b")
        #expect(networks.name(of: addr("10.0.2.0")) == nil)
    }
}
