import Foundation
import Testing
import TrafficCore
import TrafficTestSupport

/// `trafficmon report --networks --asn-db --country-db` as a user runs it: the built binary
/// on a generated capture, a networks file and MMDB files the tests write, against the
/// oracle; every mistake in those files is one line naming the file (and line), status 2.
@Suite struct ReportNetworksTests {
    typealias R = ReportCommandTests

    /// The files of a capture of `packets` packets from 400 clients over 20 s.
    static func files(packets: Int = 20_000, seed: UInt64 = 51) throws -> WhoFixtures.Files {
        try WhoFixtures.Files(SyntheticTraffic(packets: packets, clients: 400, seconds: 20, seed: seed))
    }

    @Test(arguments: [1, 2])
    func jsonMatchesTheOracle(threads: Int) throws {
        let f = try Self.files()
        defer { try? FileManager.default.removeItem(at: f.dir) }
        let result = try R.trafficmon(["report", f.capture.path, "--threads", "\(threads)"] + R.localNetArguments + f.all)
        #expect(result.status == 0, "\(result.stderr)")
        let records = try R.records(result)
        R.expectMatches(records, f.traffic.truth)
        let blocks = WhoFixtures.networkBlocks(.servers)
        #expect(WhoFixtures.networkTotals(in: records) == WhoFixtures.networkTotals(f.traffic.truth, blocks: blocks))
        for r in records {
            #expect(r.whoIsConserved)
            for c in r.clients {
                #expect(c.network == (WhoFixtures.longestMatch(c.ip, in: blocks) ?? "unknown"))
                #expect(c.asn != nil && c.country != nil && c.asOrg != nil)
            }
        }
        #expect(WhoFixtures.countryTotals(in: records) == WhoFixtures.countryTotals(f.traffic.truth))
        #expect(WhoFixtures.asnTotals(in: records) == WhoFixtures.asnTotals(f.traffic.truth))
    }

    @Test func tableShowsNetworksCountriesAndASes() throws {
        let f = try Self.files(packets: 4_000)
        defer { try? FileManager.default.removeItem(at: f.dir) }
        let result = try R.trafficmon(["report", f.capture.path, "--format", "table", "--top", "3"] + R.localNetArguments + f.all)
        #expect(result.status == 0, "\(result.stderr)")
        let json = try R.records(try R.trafficmon(["report", f.capture.path, "--top", "3"] + R.localNetArguments + f.all))
        let text = result.stdoutText
        for title in ["network (clients)", "network (servers)", "country (clients)", "AS (clients)"] {
            #expect(text.components(separatedBy: title).count - 1 == json.count, "\(title)")
        }
        // Each row of the first window as the JSON has it.
        let first = try #require(json.first)
        let lines = text.split(separator: "\n").map(String.init)
        for n in first.networks ?? [] {
            let row = "\(n.network) \(n.in.packets) \(n.in.bytes) \(n.out.packets) \(n.out.bytes)"
            #expect(lines.contains { $0.split(separator: " ").joined(separator: " ") == row }, "\(row)")
        }
        for a in first.asns ?? [] {
            let name = a.asOrg.isEmpty ? a.asn : "\(a.asn) \(a.asOrg)"
            #expect(lines.contains { $0.split(separator: " ").joined(separator: " ").hasPrefix(name + " \(a.in.packets) ") }, "\(name)")
        }
    }

    @Test func withoutTheFlagsNothingChanges() throws {
        let f = try Self.files(packets: 3_000)
        defer { try? FileManager.default.removeItem(at: f.dir) }
        let plain = try R.trafficmon(["report", f.capture.path] + R.localNetArguments)
        let records = try R.records(plain)
        #expect(records.allSatisfy { $0.networks == nil && $0.countries == nil && $0.asns == nil })
        #expect(!plain.stdoutText.contains("\"network\""))
        let table = try R.trafficmon(["report", f.capture.path, "--format", "table"] + R.localNetArguments)
        #expect(!table.stdoutText.contains("network ("))
    }

    @Test func environmentGivesTheFiles() throws {
        let f = try Self.files(packets: 2_000)
        defer { try? FileManager.default.removeItem(at: f.dir) }
        let result = try R.trafficmon(
            ["report", f.capture.path] + R.localNetArguments,
            environment: ["TRAFFICMON_NETWORKS": f.networks.path, "TRAFFICMON_ASN_DB": f.asn.path, "TRAFFICMON_COUNTRY_DB": f.country.path])
        #expect(result.status == 0, "\(result.stderr)")
        let records = try R.records(result)
        #expect(!records.isEmpty && records.allSatisfy { $0.networks != nil && $0.asns != nil && $0.countries != nil })
    }

    @Test func badFilesAreOneLineAndStatus2() throws {
        let f = try Self.files(packets: 100)
        defer { try? FileManager.default.removeItem(at: f.dir) }
        let duplicate = try f.write("networks:\n  - cidr: 10.0.0.0/8\n    name: a\n  - cidr: 10.0.0.0/8\n    name: b\n", "dup.yaml")
        let badCIDR = try f.write("networks:\n  - cidr: 10.0.0.0/8\n    name: a\n  - cidr: 10.0.0.0/99\n    name: b\n", "cidr.yaml")
        let badYAML = try f.write("networks: [\n", "yaml.yaml")
        let cases: [([String], String)] = [
            (["--networks", f.dir.appendingPathComponent("missing.yaml").path], "missing.yaml does not exist"),
            (["--networks", duplicate], "--networks \(duplicate):4: 10.0.0.0/8 is named 'b' here but 'a' on line 2"),
            (["--networks", badCIDR], "--networks \(badCIDR):4: '10.0.0.0/99' is not a network in CIDR notation"),
            (["--networks", badYAML], "--networks \(badYAML):2: is not valid YAML"),
            (["--networks", f.capture.path], "--networks \(f.capture.path) is not UTF-8 text"),
            (["--asn-db", f.networks.path], "--asn-db \(f.networks.path) is not a MaxMind DB file"),
            (["--asn-db", f.country.path], "--asn-db \(f.country.path) is a 'GeoLite2-Country' database, not an ASN database"),
            (["--country-db", f.asn.path], "--country-db \(f.asn.path) is a 'GeoLite2-ASN' database, not a country database"),
            (["--country-db", f.dir.appendingPathComponent("none.mmdb").path], "none.mmdb does not exist"),
        ]
        for (flags, message) in cases {
            let result = try R.trafficmon(["report", f.capture.path] + flags)
            R.expectOneErrorLine(result)
            #expect(result.status == 2, "\(flags): \(result.stderr)")
            #expect(result.stderr.contains(message), "\(result.stderr)")
            #expect(result.stdout.isEmpty)
        }
        // An empty path is a usage error.
        let empty = try R.trafficmon(["report", f.capture.path, "--networks", ""])
        R.expectOneErrorLine(empty)
        #expect(empty.status == 64)
    }

    @Test func helpDocumentsTheFlags() throws {
        let help = try R.trafficmon(["report", "--help"]).stdoutText + (try R.trafficmon(["serve", "--help"])).stdoutText
        for flag in ["--networks", "--asn-db", "--country-db", "--max-network-series"] {
            #expect(help.contains(flag), "\(flag)")
        }
    }
}
