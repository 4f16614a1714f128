import Testing
@testable import TrafficCore
import TrafficTestSupport

@Suite("IPAddress: canonical text (RFC 5952) and parsing")
struct IPAddressTests {
    /// (groups, RFC 5952 text)
    static let canonical: [([UInt16], String)] = [
        ([0x2001, 0xDB8, 0, 0, 0, 0, 0, 1], "2001:db8::1"),
        ([0, 0, 0, 0, 0, 0, 0, 0], "::"),
        ([0, 0, 0, 0, 0, 0, 0, 1], "::1"),
        ([1, 0, 0, 0, 0, 0, 0, 0], "1::"),
        ([0x2001, 0xDB8, 0, 0, 1, 0, 0, 1], "2001:db8::1:0:0:1"),                      // first of equal runs
        ([0x2001, 0, 0, 1, 0, 0, 0, 1], "2001:0:0:1::1"),                            // longest run wins
        ([0x2001, 0xDB8, 0, 1, 1, 1, 1, 1], "2001:db8:0:1:1:1:1:1"),                 // a single zero group stays
        ([1, 0, 1, 0, 1, 0, 1, 0], "1:0:1:0:1:0:1:0"),
        ([0, 1, 0, 0, 0, 0, 0, 0], "0:1::"),
        ([0, 0, 1, 0, 0, 0, 0, 0], "0:0:1::"),
        ([1, 2, 3, 4, 5, 6, 0, 0], "1:2:3:4:5:6::"),
        ([1, 0, 0, 2, 3, 4, 0, 0], "1::2:3:4:0:0"),
        ([0, 0, 1, 2, 3, 4, 5, 6], "::1:2:3:4:5:6"),
        ([0x2001, 0xDB8, 0xABCD, 0xEF01, 0x2345, 0x6789, 0xAAAA, 0xFFFF], "2001:db8:abcd:ef01:2345:6789:aaaa:ffff"), // lowercase
        ([0x2001, 0x0DB8, 0x00A0, 0x000B, 0x0C00, 0, 0, 0x0001], "2001:db8:a0:b:c00::1"), // no leading zeros
        ([0xFE80, 0, 0, 0, 0x0202, 0xB3FF, 0xFE1E, 0x8329], "fe80::202:b3ff:fe1e:8329"),
        ([0, 0, 0, 0, 0, 0xFFFF, 0xC000, 0x0201], "::ffff:192.0.2.1"),             // IPv4-mapped keeps the dotted quad
        ([0, 0, 0, 0, 0, 0xFFFF, 0, 0], "::ffff:0.0.0.0"),
        ([0, 0, 0, 0, 0, 0, 0xFFFF, 0], "::ffff:0"),                                 // not mapped: 0:0:0:0:0:0:ffff:0
        ([0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF], "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
    ]

    @Test(arguments: canonical)
    func formatsCanonically(groups: [UInt16], text: String) throws {
        let a = v6(groups)
        #expect(a.description == text)
        var bytes: [UInt8] = [0x41]
        a.appendText(to: &bytes)
        #expect(bytes == [0x41] + Array(text.utf8))
        // And the canonical form parses back to the same address.
        #expect(try #require(IPAddress(text)) == a)
    }

    @Test func formatsAgreeWithTheRFCRulesOnRandomAddresses() {
        // Sparse random groups (many zeros), checked against an independent reading of RFC 5952 4.2.
        var rng = SplitMix64(seed: 5952)
        for _ in 0..<3000 {
            let groups = (0..<8).map { _ in rng.next() % 3 == 0 ? UInt16(truncatingIfNeeded: rng.next() % 0x10000) : 0 }
            let a = v6(groups)
            if groups[0..<5].allSatisfy({ $0 == 0 }) && groups[5] == 0xFFFF { continue }  // mapped: its own form
            let text = Self.rfc5952(groups)
            #expect(a.description == text, "\(groups)")
            #expect(IPAddress(text) == a)
        }
    }

    /// RFC 5952 section 4: lowercase, no leading zeros, "::" for the longest run of two or more zero groups (the first on a tie).
    static func rfc5952(_ g: [UInt16]) -> String {
        var best = (start: -1, length: 0)
        var i = 0
        while i < 8 {
            if g[i] == 0 {
                var j = i
                while j < 8 && g[j] == 0 { j += 1 }
                if j - i > best.length && j - i >= 2 { best = (i, j - i) }
                i = j
            } else {
                i += 1
            }
        }
        let hex = g.map { String($0, radix: 16) }
        if best.start < 0 { return hex.joined(separator: ":") }
        let head = hex[..<best.start].joined(separator: ":")
        let tail = hex[(best.start + best.length)...].joined(separator: ":")
        return head + "::" + tail
    }

    @Test(arguments: [
        ("0.0.0.0", UInt32(0)), ("255.255.255.255", 0xFFFF_FFFF), ("198.51.100.7", 0xC633_6407),
        ("10.0.0.1", 0x0A00_0001), ("1.2.3.4", 0x0102_0304), ("192.0.2.10", 0xC000_020A),
    ])
    func ipv4TextRoundTrips(text: String, value: UInt32) throws {
        let a = try #require(IPAddress(text))
        #expect(!a.isIPv6)
        #expect(a.ipv4Value == value)
        #expect(a == IPAddress(ipv4: value))
        #expect(IPAddress(ipv4: value).description == text)
    }

    @Test(arguments: [
        ("2001:DB8::1", [0x2001, 0xDB8, 0, 0, 0, 0, 0, 1]),
        ("2001:0db8:0000:0000:0000:0000:0000:0001", [0x2001, 0xDB8, 0, 0, 0, 0, 0, 1]),
        ("2001:db8:0:0:0:0:0:1", [0x2001, 0xDB8, 0, 0, 0, 0, 0, 1]),
        ("::ffff:192.0.2.1", [0, 0, 0, 0, 0, 0xFFFF, 0xC000, 0x0201]),
        ("::FFFF:c000:0201", [0, 0, 0, 0, 0, 0xFFFF, 0xC000, 0x0201]),
        ("1:2:3:4:5:6:7::", [1, 2, 3, 4, 5, 6, 7, 0]),
        ("::2:3:4:5:6:7:8", [0, 2, 3, 4, 5, 6, 7, 8]),
        ("1:2:3:4:5:6:1.2.3.4", [1, 2, 3, 4, 5, 6, 0x0102, 0x0304]),
        ("64:ff9b::192.0.2.33", [0x64, 0xFF9B, 0, 0, 0, 0, 0xC000, 0x0221]),
        ("FE80::0202:B3FF:FE1E:8329", [0xFE80, 0, 0, 0, 0x0202, 0xB3FF, 0xFE1E, 0x8329]),
        ("0:0:0:0:0:0:0:0", [0, 0, 0, 0, 0, 0, 0, 0]),
        ("::0:0:1", [0, 0, 0, 0, 0, 0, 0, 1]),
        ("1::", [1, 0, 0, 0, 0, 0, 0, 0]),
        ("a:b::c:d", [0xA, 0xB, 0, 0, 0, 0, 0xC, 0xD]),
    ] as [(String, [UInt16])])
    func parsesIPv6Forms(text: String, groups: [UInt16]) throws {
        let a = try #require(IPAddress(text))
        #expect(a.isIPv6)
        #expect(a == v6(groups))
        // Its text form is canonical: it parses back, and formatting is idempotent.
        #expect(IPAddress(a.description) == a)
        #expect(a.description == a.description.lowercased())
    }

    @Test(arguments: [
        "", ":", ":::", "1:::2", "1::2::3", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "12345::", "g::1", "1::2:",
        ":1::2", "1:2:3:4:5:6:7:8::", "::1:2:3:4:5:6:7:8", "::1.2.3", "::1.2.3.4:5", "fe80::1%eth0", "1.2.3.4:80",
        "::ffff:1.2.3.04", "::ffff:256.1.1.1", "1:2:3:4:5:6:7:1.2.3.4", "[::1]", " ::1", "::1 ", "2001:db8::1/64",
        "1.2.3", "1.2.3.4.5", "256.0.0.1", "01.2.3.4", "1..2.3", "1.2.3.", ".1.2.3", " 1.2.3.4", "1.2.3.4 ",
        "a.b.c.d", "1.2.3.-4", "1234.1.1.1", "0x1.2.3.4", "1.2.3.4x", "localhost",
        String(repeating: "0", count: 40) + "::1",
    ])
    func rejectsInvalidText(_ text: String) {
        #expect(IPAddress(text) == nil)
    }

    @Test func familiesAreDistinctAndOrdered() {
        // The same 32 bits as IPv4 and as IPv6 are different addresses; IPv4 sorts first.
        let four = addr("1.2.3.4"), six = addr("::102:304")
        #expect(four != six)
        #expect(four.low == six.low && four.high == six.high)
        #expect(four < six && !(six < four))
        #expect(addr("1.2.3.4") < addr("1.2.3.5"))
        #expect(addr("9.255.255.255") < addr("10.0.0.0"))
        #expect(addr("2001:db8::1") < addr("2001:db8::2"))
        #expect(addr("::ffff:ffff:ffff:ffff") < addr("0:0:0:1::"))
        #expect(Set([four, six, addr("1.2.3.4")]).count == 2)
    }
}

@Suite("NetworkPrefix and LocalNetworks")
struct NetworkPrefixTests {
    @Test(arguments: [
        ("10.1.2.3/8", "10.0.0.0/8", 8),
        ("192.0.2.255/24", "192.0.2.0/24", 24),
        ("192.0.2.1/32", "192.0.2.1/32", 32),
        ("192.0.2.1", "192.0.2.1/32", 32),
        ("203.0.113.77/0", "0.0.0.0/0", 0),
        ("172.31.255.255/12", "172.16.0.0/12", 12),
        ("2001:db8:abcd:12ff::1/56", "2001:db8:abcd:1200::/56", 56),
        ("2001:db8::1/128", "2001:db8::1/128", 128),
        ("2001:db8::1", "2001:db8::1/128", 128),
        ("2001:db8:1:2:3:4:5:6/64", "2001:db8:1:2::/64", 64),
        ("2001:db8:1:2:ffff:4:5:6/65", "2001:db8:1:2:8000::/65", 65),
        ("ffff::1/1", "8000::/1", 1),
        ("ffff::1/0", "::/0", 0),
    ])
    func parsesAndClearsHostBits(text: String, canonical: String, length: Int) throws {
        let p = try NetworkPrefix(parsing: text)
        #expect(p.description == canonical)
        #expect(p.length == length)
        #expect(p.contains(addr(String(text.split(separator: "/")[0]))))
        #expect(try NetworkPrefix(parsing: canonical) == p)
    }

    @Test(arguments: [
        "", "/8", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/ 8", "10.0.0.0/8 ", "10.0.0/8",
        "10.0.0.0/8/9", "10.0.0.0/a", "::/129", "2001:db8::/1000", "2001:db8::/", "2001:zz::/32", "abc", "10.0.0.0\\8",
        "10.0.0.0/٣",
    ])
    func rejectsBadInput(_ text: String) {
        #expect(throws: NetworkPrefixError.self) { try NetworkPrefix(parsing: text) }
    }

    @Test func errorNamesTheInput() {
        let error = #expect(throws: NetworkPrefixError.self) { try NetworkPrefix(parsing: "10.0.0.0/33") }
        #expect(error?.text == "10.0.0.0/33")
        #expect(error?.description.contains("'10.0.0.0/33'") == true)
    }

    @Test func ipv4Boundaries() throws {
        let p = try NetworkPrefix(parsing: "10.0.0.0/8")
        #expect(p.contains(addr("10.0.0.0")))
        #expect(p.contains(addr("10.255.255.255")))
        #expect(!p.contains(addr("11.0.0.0")))
        #expect(!p.contains(addr("9.255.255.255")))
        #expect(!p.contains(addr("::a00:1")), "an IPv6 address with the same low bits is not in an IPv4 block")
        #expect(!p.contains(addr("::ffff:10.0.0.1")))

        let host = try NetworkPrefix(parsing: "192.0.2.1/32")
        #expect(host.contains(addr("192.0.2.1")))
        #expect(!host.contains(addr("192.0.2.0")) && !host.contains(addr("192.0.2.2")))

        let all = try NetworkPrefix(parsing: "0.0.0.0/0")
        for a in ["0.0.0.0", "255.255.255.255", "10.0.0.1", "198.51.100.7"] { #expect(all.contains(addr(a))) }
        #expect(!all.contains(addr("::")))
        #expect(!all.contains(addr("2001:db8::1")))
    }

    @Test func ipv6Boundaries() throws {
        let p64 = try NetworkPrefix(parsing: "2001:db8::/64")
        #expect(p64.contains(addr("2001:db8::ffff:ffff:ffff:ffff")))
        #expect(!p64.contains(addr("2001:db8:0:1::")))
        let p65 = try NetworkPrefix(parsing: "2001:db8::/65")
        #expect(p65.contains(addr("2001:db8::7fff:ffff:ffff:ffff")))
        #expect(!p65.contains(addr("2001:db8::8000:0:0:0")))
        let p1 = try NetworkPrefix(parsing: "::/1")
        #expect(p1.contains(addr("7fff:ffff::")))
        #expect(!p1.contains(addr("8000::")))
        let host = try NetworkPrefix(parsing: "2001:db8::1/128")
        #expect(host.contains(addr("2001:db8::1")))
        #expect(!host.contains(addr("2001:db8::")) && !host.contains(addr("2001:db8::3")))
        let all = try NetworkPrefix(parsing: "::/0")
        #expect(all.contains(addr("::")) && all.contains(addr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")))
        #expect(!all.contains(addr("0.0.0.0")) && !all.contains(addr("10.0.0.1")))
    }

    @Test func containsMatchesABitwiseComparison() {
        // For random blocks and addresses: inside exactly when the first `length` bits agree.
        func bits(_ a: IPAddress) -> [Bool] {
            let bytes = FrameBuilder.addressBytes(a)
            return bytes.flatMap { b in (0..<8).map { b & (0x80 >> $0) != 0 } }
        }
        func address(bits: [Bool], six: Bool) -> IPAddress {
            if six {
                var words: [UInt64] = [0, 0]
                for (i, bit) in bits.enumerated() where bit { words[i / 64] |= 1 << UInt64(63 - i % 64) }
                return IPAddress(ipv6High: words[0], low: words[1])
            }
            var v: UInt32 = 0
            for (i, bit) in bits.enumerated() where bit { v |= 1 << UInt32(31 - i) }
            return IPAddress(ipv4: v)
        }
        var rng = SplitMix64(seed: 1918)
        for round in 0..<1500 {
            let six = round % 2 == 1
            func random() -> IPAddress {
                six ? IPAddress(ipv6High: rng.next(), low: rng.next()) : IPAddress(ipv4: UInt32(truncatingIfNeeded: rng.next()))
            }
            let base = random()
            let length = Int(rng.next() % UInt64(six ? 129 : 33))
            var candidate = random()
            if rng.next() % 2 == 0 {
                // Share a random number of leading bits with the base, so both answers occur.
                let shared = Int(rng.next() % UInt64(six ? 129 : 33))
                let b = bits(base), c = bits(candidate)
                candidate = address(bits: Array(b[..<shared] + c[shared...]), six: six)
            }
            let prefix = NetworkPrefix(address: base, length: length)
            let expected = bits(base)[..<length] == bits(candidate)[..<length]
            #expect(prefix.contains(candidate) == expected, "\(base)/\(length) contains \(candidate)")
            #expect(prefix.contains(base))
            #expect(prefix.address == NetworkPrefix(address: prefix.address, length: length).address)
        }
    }

    @Test func lengthIsClampedToTheFamily() {
        #expect(NetworkPrefix(address: addr("10.1.2.3"), length: 40).length == 32)
        #expect(NetworkPrefix(address: addr("10.1.2.3"), length: -3).description == "0.0.0.0/0")
        #expect(NetworkPrefix(address: addr("2001:db8::1"), length: 200).description == "2001:db8::1/128")
    }

    @Test func localNetworks() throws {
        var local = LocalNetworks()
        #expect(local.isEmpty)
        #expect(!local.contains(addr("10.0.0.1")))
        local.add(try NetworkPrefix(parsing: "2001:db8:1::/48"))
        local.add(try NetworkPrefix(parsing: "10.0.0.0/8"))
        local.add(try NetworkPrefix(parsing: "10.9.9.9/8"))  // the same block again
        local.add(try NetworkPrefix(parsing: "192.168.0.0/16"))
        #expect(!local.isEmpty)
        #expect(local.prefixes.map(\.description) == ["10.0.0.0/8", "192.168.0.0/16", "2001:db8:1::/48"])
        #expect(local.contains(addr("10.200.0.1")))
        #expect(local.contains(addr("192.168.77.1")))
        #expect(local.contains(addr("2001:db8:1:abcd::9")))
        #expect(!local.contains(addr("172.16.0.1")))
        #expect(!local.contains(addr("2001:db8:2::1")))
        #expect(!local.contains(addr("::ffff:10.0.0.1")))
        #expect(!local.contains(addr("::a00:1")))
        let same = LocalNetworks(local.prefixes + local.prefixes)
        #expect(same.prefixes == local.prefixes)
    }

    /// With 0 to 6 blocks of each family (the first two IPv4 ones are held apart from the
    /// rest), an address is local exactly when one of the blocks contains it.
    @Test(arguments: 0...6)
    func localIsWhatABlockContains(blocks: Int) {
        var rng = SplitMix64(seed: UInt64(blocks) &+ 17)
        var prefixes: [NetworkPrefix] = []
        for _ in 0..<blocks {
            prefixes.append(NetworkPrefix(address: IPAddress(ipv4: UInt32(truncatingIfNeeded: rng.next())), length: Int(rng.next() % 33)))
            prefixes.append(NetworkPrefix(address: IPAddress(ipv6High: rng.next(), low: rng.next()), length: Int(rng.next() % 129)))
        }
        let local = LocalNetworks(prefixes)
        var candidates = prefixes.map(\.address)
        for _ in 0..<2000 {
            candidates.append(IPAddress(ipv4: UInt32(truncatingIfNeeded: rng.next())))
            candidates.append(IPAddress(ipv6High: rng.next(), low: rng.next()))
        }
        // Addresses near each block: inside it and just outside it.
        for p in prefixes {
            if p.address.isIPv6 {
                let (high, low) = (p.address.high, p.address.low)
                candidates += [(high, low &+ 1), (high, low &- 1), (high &+ 1, low), (high, low | 0xFF), (high ^ 1 << 63, low)]
                    .map { IPAddress(ipv6High: $0.0, low: $0.1) }
            } else {
                let a = UInt32(truncatingIfNeeded: p.address.low)
                candidates += [a &+ 1, a &- 1, a | 0xFF, a ^ 0x8000_0000].map { IPAddress(ipv4: $0) }
            }
        }
        for ip in candidates {
            #expect(local.contains(ip) == prefixes.contains { $0.contains(ip) }, "\(ip) with \(blocks) blocks of each family")
        }
    }
}
