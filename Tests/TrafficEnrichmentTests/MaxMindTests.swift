import Foundation
import Testing
import TrafficCapture
@testable import TrafficCore
@testable import TrafficEnrichment
import TrafficTestSupport

/// MaxMind DB files written by the tests' writer, read by the real libmaxminddb (and
/// cross-checked with Debian's `mmdblookup`), against the blocks they were written from.
@Suite struct MaxMindTests {
    static func write(_ writer: MMDBWriter, in dir: URL, _ name: String) throws -> String {
        let url = dir.appendingPathComponent(name)
        try writer.write(to: url)
        return url.path
    }

    /// Addresses in, between and around the fixture blocks, IPv4 and IPv6.
    static func probes() -> [IPAddress] {
        var rng = SplitMix64(seed: 99)
        var list: [IPAddress] = []
        for b in WhoFixtures.asBlocks.map(\.prefix) + WhoFixtures.countryBlocks.map(\.prefix) {
            var last = b.address
            if last.isIPv6 { last.high |= ~b.maskHigh; last.low |= ~b.maskLow } else { last.low |= ~b.maskLow & 0xFFFF_FFFF }
            list += [b.address, last]
            // One past each end.
            if !b.address.isIPv6 {
                list.append(IPAddress(ipv4: b.address.ipv4Value &- 1))
                list.append(IPAddress(ipv4: last.ipv4Value &+ 1))
            }
            for _ in 0..<20 {
                var ip = b.address
                if ip.isIPv6 { ip.low = rng.next(); ip.high ^= rng.next() & 0xFFFF_FFFF } else { ip.low ^= rng.next() & 0xFF_FFFF }
                list.append(ip)
            }
        }
        return list + [addr("203.0.113.9"), addr("8.8.8.8"), addr("2a00:1450:4001:800::1"), addr("::1")]
    }

    @Test(arguments: [(24, 6), (28, 6), (32, 6), (24, 4), (28, 4), (32, 4)])
    func writtenDatabasesReadBackThroughLibmaxminddb(recordSize: Int, ipVersion: Int) throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let asnPath = try Self.write(WhoFixtures.asnDatabase(recordSize: recordSize, ipVersion: ipVersion), in: dir, "asn.mmdb")
        let countryPath = try Self.write(WhoFixtures.countryDatabase(recordSize: recordSize, ipVersion: ipVersion), in: dir, "country.mmdb")
        let asnDB = try MaxMindDB(path: asnPath)
        #expect(asnDB.databaseType == "GeoLite2-ASN")
        #expect(asnDB.recordSize == recordSize)
        #expect(asnDB.ipVersion == ipVersion)

        let origins = try MaxMindOrigins(asnDatabase: asnPath, countryDatabase: countryPath)
        let probes = Self.probes()
        let found = origins.origins(of: probes)
        var matched = 0
        for (ip, origin) in zip(probes, found) {
            // An IPv4 tree knows no IPv6 address.
            let inTree = ipVersion == 6 || !ip.isIPv6
            let asBlock = inTree ? WhoFixtures.longestMatch(ip, in: WhoFixtures.asBlocks) : nil
            var country = inTree ? WhoFixtures.longestMatch(ip, in: WhoFixtures.countryBlocks) : nil
            if country == "Fr" { country = nil }
            #expect(origin.asn == asBlock?.number, "\(ip)")
            #expect(origin.asOrg == (asBlock?.organization ?? ""), "\(ip)")
            #expect(origin.country == country, "\(ip)")
            if asBlock != nil { matched += 1 }
        }
        #expect(matched > 100 && matched < probes.count)
        // The cache answers as the files do.
        #expect(origins.origins(of: probes) == found)
    }

    /// Debian's `mmdblookup` reads the written files as libmaxminddb's own tool.
    @Test func mmdblookupAgrees() async throws {
        guard TestProcess.which("mmdblookup") != nil else {
            Issue.record("mmdblookup is missing: scripts/install-deps --test installs mmdb-bin")
            return
        }
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let asnPath = try Self.write(WhoFixtures.asnDatabase(recordSize: 28), in: dir, "asn.mmdb")
        let countryPath = try Self.write(WhoFixtures.countryDatabase(recordSize: 32), in: dir, "country.mmdb")
        for (ip, asn) in [("198.51.16.5", "64501"), ("198.51.200.1", "64500"), ("11.1.2.3", "4200000000"), ("2001:db8:1000::9", "64496")] {
            let r = try await TestProcess.run(program: "mmdblookup", ["--file", asnPath, "--ip", ip, "autonomous_system_number"])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines) == "\(asn) <uint32>", "\(ip): \(r.stdoutText)")
        }
        let org = try await TestProcess.run(program: "mmdblookup", ["--file", asnPath, "--ip", "198.51.200.1", "autonomous_system_organization"])
        // mmdblookup prints strings between quotes as they are, unescaped.
        #expect(org.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines) == #""Doc "Net" \ Paris" <utf8_string>"#)
        let country = try await TestProcess.run(program: "mmdblookup", ["--file", countryPath, "--ip", "2001:db8:1000:c000::1", "country", "iso_code"])
        #expect(country.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines) == #""BR" <utf8_string>"#)
        let eu = try await TestProcess.run(program: "mmdblookup", ["--file", countryPath, "--ip", "198.51.1.1", "country", "is_in_european_union"])
        #expect(eu.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines) == "true <boolean>")
        let none = try await TestProcess.run(program: "mmdblookup", ["--file", asnPath, "--ip", "203.0.113.1"])
        #expect((none.stdoutText + none.stderr).contains("Could not find an entry for this IP address (203.0.113.1)"))
        let meta = try await TestProcess.run(program: "mmdblookup", ["--file", countryPath, "--ip", "10.0.0.1", "--verbose"])
        let lines = meta.stdoutText.split(separator: "\n").map { $0.split(separator: " ").joined(separator: " ") }
        for line in ["Type: GeoLite2-Country", "Record size: 32 bits", "IP version: IPv6", "Binary format: 2.0", "Languages: en fr"] {
            #expect(lines.contains(line), "\(line) in \(meta.stdoutText)")
        }
    }

    /// A long string (past the one-byte size forms), a big map and every integer width
    /// round-trip through libmaxminddb.
    @Test func wideValuesReadBack() throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var writer = MMDBWriter(databaseType: "GeoLite2-ASN", ipVersion: 4)
        let long = String(repeating: "é", count: 40_000)
        for (i, org) in ["", "x", String(repeating: "a", count: 29), String(repeating: "b", count: 300), long].enumerated() {
            writer.insert(NetworkPrefix(address: IPAddress(ipv4: 0x0A00_0000 | UInt32(i) << 8), length: 24), .map([
                MMDBWriter.Pair("autonomous_system_number", .uint32([0, 1, 255, 65_536, UInt32.max][i])),
                MMDBWriter.Pair("autonomous_system_organization", .string(org)),
                MMDBWriter.Pair("extra", .map((0..<40).map { MMDBWriter.Pair("k\($0)", .uint64(UInt64($0) << 40)) })),
            ]))
        }
        let path = try Self.write(writer, in: dir, "wide.mmdb")
        let origins = try MaxMindOrigins(asnDatabase: path, countryDatabase: nil)
        let found = origins.origins(of: (0..<5).map { IPAddress(ipv4: 0x0A00_0001 | UInt32($0) << 8) })
        #expect(found.map(\.asn) == [0, 1, 255, 65_536, UInt32.max])
        #expect(found.map(\.asOrg.count) == [0, 1, 29, 300, 40_000])
        #expect(found[4].asOrg == long)
    }

    /// The cache keeps at most two generations of `cacheSize` addresses and answers like
    /// the files whatever it has forgotten.
    @Test func theCacheIsBoundedAndExact() throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = try Self.write(WhoFixtures.asnDatabase(), in: dir, "asn.mmdb")
        let small = try MaxMindOrigins(asnDatabase: path, countryDatabase: nil, cacheSize: 64)
        let large = try MaxMindOrigins(asnDatabase: path, countryDatabase: nil, cacheSize: 100_000)
        var rng = SplitMix64(seed: 5)
        let addresses = (0..<5_000).map { _ in IPAddress(ipv4: 0xC633_0000 | UInt32(truncatingIfNeeded: rng.next() & 0xFFFF)) }
        for _ in 0..<3 {
            #expect(small.origins(of: addresses) == large.origins(of: addresses))
            #expect(small.cachedAddresses <= 128)
        }
        #expect(large.cachedAddresses == Set(addresses).count)
    }

    @Test func badDatabasesAreRefusedWithOneLine() throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let asn = try Self.write(WhoFixtures.asnDatabase(), in: dir, "asn.mmdb")
        let country = try Self.write(WhoFixtures.countryDatabase(), in: dir, "country.mmdb")
        let garbage = dir.appendingPathComponent("garbage.mmdb")
        try Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7) }).write(to: garbage)
        let empty = dir.appendingPathComponent("empty.mmdb")
        try Data().write(to: empty)
        let pcap = dir.appendingPathComponent("capture.pcap")
        try SyntheticTraffic(packets: 10, clients: 2).pcap().write(to: pcap)

        let cases: [(String?, String?, String)] = [
            (dir.appendingPathComponent("missing.mmdb").path, nil, "does not exist"),
            (dir.path, nil, "is a directory"),
            (garbage.path, nil, "is not a MaxMind DB file"),
            (empty.path, nil, "is not a MaxMind DB file"),
            (pcap.path, nil, "is not a MaxMind DB file"),
            (country, nil, "is a 'GeoLite2-Country' database, not an ASN database"),
            (nil, asn, "is a 'GeoLite2-ASN' database, not a country database"),
        ]
        for (asnPath, countryPath, problem) in cases {
            do {
                _ = try MaxMindOrigins(asnDatabase: asnPath, countryDatabase: countryPath)
                Issue.record("\(asnPath ?? countryPath ?? "") was accepted")
            } catch {
                #expect(error.description.contains(problem), "\(error.description)")
                #expect(error.description.hasPrefix(asnPath ?? countryPath ?? "-"))
                #expect(!error.description.contains("\n"))
            }
        }
        // A database whose type names neither kind is any MMDB: accepted.
        var custom = MMDBWriter(databaseType: "my-own-asns")
        custom.insert(try NetworkPrefix(parsing: "10.0.0.0/8"), MMDBWriter.asnRecord(asn: 7, organization: "Seven"))
        let customPath = try Self.write(custom, in: dir, "custom.mmdb")
        let origins = try MaxMindOrigins(asnDatabase: customPath, countryDatabase: nil)
        #expect(origins.origins(of: [addr("10.1.1.1")]).first?.asn == 7)
    }
}

func addr(_ text: String) -> IPAddress {
    guard let a = IPAddress(text) else { preconditionFailure("bad test address literal \(text)") }
    return a
}
