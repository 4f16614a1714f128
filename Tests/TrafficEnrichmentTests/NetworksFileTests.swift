import Foundation
import Testing
import TrafficCore
import TrafficEnrichment
import TrafficTestSupport

/// The `--networks` file: DESIGN.md's example reads as written; every mistake is one line
/// naming the file and the line.
@Suite struct NetworksFileTests {
    @Test func designsExampleReads() throws {
        let text = """
            networks:
              - cidr: 192.0.2.0/24
                name: office
                labels: {site: paris}     # optional; exported once, as trafficmon_network_info{network,site}
              - cidr: 2001:db8:1::/48
                name: lab
            """
        let networks = try NetworksFile.parse(text, path: "n.yaml")
        #expect(networks.names == ["office", "lab"])
        #expect(networks.labels[0].map(\.name) == ["site"] && networks.labels[0].map(\.value) == ["paris"])
        #expect(networks.labels[1].isEmpty)
        #expect(networks.name(of: addr("192.0.2.77")) == "office")
        #expect(networks.name(of: addr("2001:db8:1:ffff::1")) == "lab")
        #expect(networks.name(of: addr("2001:db8:2::1")) == nil)
    }

    @Test func blocksShareANameAndTheirLabels() throws {
        let text = """
            networks:
            - {cidr: 10.0.0.0/8, name: corp, labels: {site: paris}}
            - {cidr: 172.16.0.0/12, name: corp, labels: {tier: gold, site: paris}}
            - {cidr: 10.1.0.0/16, name: "site 2 (lyon)"}
            - cidr: 10.0.0.0/8
              name: corp
            """
        let networks = try NetworksFile.parse(text, path: "n.yaml")
        #expect(networks.names == ["corp", "site 2 (lyon)"])
        #expect(networks.blockCount == 3)
        #expect(networks.labels[0].map(\.name) == ["site", "tier"])
        #expect(networks.name(of: addr("10.1.2.3")) == "site 2 (lyon)")
        #expect(networks.name(of: addr("172.20.0.1")) == "corp")
    }

    /// YAML an operator may write beyond the plain form: anchors and aliases (shared labels,
    /// a whole entry), tags, quoting styles, block scalars, comments, document markers.
    @Test func anchorsAliasesTagsAndStylesRead() throws {
        let text = """
            %YAML 1.1
            --- # the office and its guests
            networks:
              - cidr: 192.0.2.0/25
                name: &office office
                labels: &paris {site: paris, tier: "gold"}
              - cidr: !!str 192.0.2.128/25
                name: 'guest wifi'
                labels: *paris
              - &lab {cidr: "2001:db8:1::/48", name: lab}
              - *lab
              - cidr: 198.51.100.0/24
                name: *office
              - cidr: 203.0.113.0/24
                name: >-
                  folded
                  name
              - cidr: 100.64.0.0/10
                name: !!int 012
            ...
            """
        let networks = try NetworksFile.parse(text, path: "n.yaml")
        #expect(networks.names == ["office", "guest wifi", "lab", "folded name", "012"])
        // The aliased entry is the same block under the same name: taken once.
        #expect(networks.blockCount == 6)
        #expect(networks.labels[0].map(\.name) == ["site", "tier"])
        #expect(networks.labels[0].map(\.value) == ["paris", "gold"])
        #expect(networks.labels[1].map(\.value) == ["paris", "gold"])
        #expect(networks.name(of: addr("198.51.100.9")) == "office")
        #expect(networks.name(of: addr("2001:db8:1::5")) == "lab")
        #expect(networks.name(of: addr("100.64.0.1")) == "012")
        #expect(try NetworksFile.parse("# nothing here yet\nnetworks: []  # none\n", path: "n.yaml").names.isEmpty)
    }

    /// A repeated key, deep nesting, an alias without its anchor (or inside it), a second
    /// document and a control character are refused with their line.
    @Test func malformedYAMLIsRefusedWithItsLine() {
        let keys = (0..<40).map { "  k\($0): v" }.joined(separator: "\n")
        let cases: [(String, Int, String)] = [
            ("networks: []\nextra:\n\(keys)\n  k7: again\n", 43, "a key appears twice in one mapping: k7"),
            ("networks: " + String(repeating: "[", count: 100) + String(repeating: "]", count: 100) + "\n", 1, "nested more than"),
            ("networks:\n  - &a {cidr: 10.0.0.0/8, name: *a}\n", 2, "found undefined alias 'a'"),
            ("networks:\n  - *nowhere\n", 2, "found undefined alias 'nowhere'"),
            ("networks: []\n---\nnetworks: []\n", 2, "expected a single document"),
            ("networks:\n  - {cidr: 10.0.0.0/8,\n     name: \u{07}a}\n", 3, "is not valid YAML: control characters are not allowed"),
        ]
        for (text, line, problem) in cases {
            do {
                _ = try NetworksFile.parse(text, path: "n.yaml")
                Issue.record("accepted: \(text.prefix(60))")
            } catch {
                #expect(error.description.contains(problem), "\(error.description)")
                #expect(error.line == line, "\(error.description)")
            }
        }
    }

    /// A network carries at most `maxLabels` labels, however they are given (an alias
    /// repeats a mapping, it does not multiply the work past that).
    @Test func labelsAreBounded() throws {
        let labels = (0..<NetworksFile.maxLabels).map { "l\($0): v" }.joined(separator: ", ")
        let entries = (0..<300).map { "  - {cidr: 10.\($0 / 256).\($0 % 256).0/24, name: n, labels: *all}" }.joined(separator: "\n")
        let text = "networks:\n  - {cidr: 11.0.0.0/8, name: n, labels: &all {\(labels)}}\n\(entries)\n"
        let networks = try NetworksFile.parse(text, path: "n.yaml")
        #expect(networks.labels[0].count == NetworksFile.maxLabels)
        #expect(networks.blockCount == 301)
        let oneMore = "networks:\n  - {cidr: 11.0.0.0/8, name: n, labels: {\(labels), extra: v}}\n"
        #expect {
            try NetworksFile.parse(oneMore, path: "n.yaml")
        } throws: { error in
            (error as? NetworksFileError)?.description == "n.yaml:2: network 'n' has more than \(NetworksFile.maxLabels) labels"
        }
    }

    /// A file past `maxFileSize` (here a device that never ends) is refused, not read on.
    @Test func aFileTooLargeIsRefused() {
        #expect {
            try NetworksFile.load(path: "/dev/zero")
        } throws: { error in
            (error as? NetworksFileError)?.description == "/dev/zero is larger than \(NetworksFile.maxFileSize >> 20) MiB"
        }
    }

    @Test func anEmptyListIsNoNetworks() throws {
        let networks = try NetworksFile.parse("networks: []\n", path: "n.yaml")
        #expect(networks.names.isEmpty)
    }

    @Test(arguments: [
        ("", 1, "is empty"),
        ("- cidr: 10.0.0.0/8\n", 1, "must be a mapping"),
        ("nets:\n  - {cidr: 10.0.0.0/8, name: a}\n", 1, "unknown key 'nets'"),
        ("networks: 12\n", 1, "must be a list"),
        ("networks:\n", 1, "must be a list"),
        ("networks:\n  - {cidr: 10.0.0.0/8, name: a}\n  - 10.1.0.0/16\n", 3, "must be a mapping"),
        ("networks:\n  - {cidr: 10.0.0.0/8, name: a}\n  - {cidr: 10.0.0.0/33, name: b}\n", 3, "not a network in CIDR notation"),
        ("networks:\n  - cidr: 10.0.0.0/8\n    name: a\n  - cidr: 300.0.0.0/8\n    name: b\n", 4, "'300.0.0.0/8' is not a network"),
        ("networks:\n  - cidr: 10.0.0.0/8\n    name: a\n  - cidr: 10.0.0.0/8\n    name: b\n", 4, "10.0.0.0/8 is named 'b' here but 'a' on line 2"),
        ("networks:\n  - {cidr: 2001:db8::/32, name: a}\n  - {cidr: '2001:db8::1/32', name: b}\n", 3, "2001:db8::/32 is named 'b' here but 'a' on line 2"),
        ("networks:\n  - {cidr: 10.0.0.0/8}\n", 2, "has no 'name'"),
        ("networks:\n  - {name: a}\n", 2, "has no 'cidr'"),
        ("networks:\n  - {cidr: 10.0.0.0/8, name: a, cdir: x}\n", 2, "unknown key 'cdir'"),
        ("networks:\n  - {cidr: 10.0.0.0/8, name: unknown}\n", 2, "the name 'unknown' is reserved"),
        ("networks:\n  - {cidr: 10.0.0.0/8, name: other}\n", 2, "the name 'other' is reserved"),
        ("networks:\n  - {cidr: 10.0.0.0/8, name: ''}\n", 2, "'name' is empty"),
        ("networks:\n  - {cidr: 10.0.0.0/8, name: [a]}\n", 2, "'name' must be text"),
        ("networks:\n  - {cidr: 10.0.0.0/8, name: a, labels: [x]}\n", 2, "'labels' must be a mapping"),
        ("networks:\n  - {cidr: 10.0.0.0/8, name: a, labels: {9site: x}}\n", 2, "'9site' is not a label name"),
        ("networks:\n  - {cidr: 10.0.0.0/8, name: a, labels: {__name__: x}}\n", 2, "is not a label name"),
        ("networks:\n  - {cidr: 10.0.0.0/8, name: a, labels: {network: x}}\n", 2, "the label 'network' is the network's name"),
        ("networks:\n  - {cidr: 10.0.0.0/8, name: a, labels: {site: {x: y}}}\n", 2, "must have a text value"),
        ("networks:\n  - {cidr: 10.0.0.0/8, name: a, labels: {site: paris}}\n  - {cidr: 11.0.0.0/8, name: a, labels: {site: lyon}}\n", 3,
         "network 'a' has site: lyon here but site: paris on line 2"),
        ("networks:\n  - {cidr: 10.0.0.0/8, name: a\n", 3, "is not valid YAML"),
        ("networks:\n  - cidr: 10.0.0.0/8\n     name: a\n", 3, "is not valid YAML"),
        ("networks:\n  - {cidr: 10.0.0.0/8, name: a, name: b}\n", 2, "a key appears twice"),
    ])
    func mistakesNameTheFileAndLine(text: String, line: Int, problem: String) {
        do {
            _ = try NetworksFile.parse(text, path: "/etc/trafficmon/networks.yaml")
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.line == line, "\(error.description)")
            #expect(error.description.hasPrefix("/etc/trafficmon/networks.yaml:\(line): "), "\(error.description)")
            #expect(error.description.contains(problem), "\(error.description)")
            #expect(!error.description.contains("\n"))
        }
    }

    @Test func unreadableFilesAreNamed() throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let missing = dir.appendingPathComponent("missing.yaml").path
        #expect(throws: NetworksFileError.self) { try NetworksFile.load(path: missing) }
        do {
            _ = try NetworksFile.load(path: missing)
        } catch {
            #expect(error.description == "\(missing) does not exist")
        }
        let binary = dir.appendingPathComponent("binary.yaml")
        try Data([0xFF, 0xFE, 0x00, 0xC3, 0x28]).write(to: binary)
        do {
            _ = try NetworksFile.load(path: binary.path)
            Issue.record("binary file accepted")
        } catch {
            #expect(error.description == "\(binary.path) is not UTF-8 text")
        }
        do {
            _ = try NetworksFile.load(path: dir.path)
            Issue.record("a directory accepted")
        } catch {
            #expect(error.description == "\(dir.path) cannot be read")
        }
    }

    /// A file of 100,000 blocks reads in reasonable time and matches by longest prefix.
    @Test func aHundredThousandBlocks() throws {
        let blocks = WhoFixtures.fillerBlocks(100_000)
        let start = Date()
        let networks = try NetworksFile.parse(WhoFixtures.networksYAML(blocks), path: "big.yaml")
        let seconds = Date().timeIntervalSince(start)
        #expect(networks.blockCount == 100_000)
        #expect(networks.name(of: addr("172.16.0.0")) == "filler-0")
        #expect(networks.name(of: addr("fc00:0:3::1")) == "filler-3")
        #expect(networks.name(of: addr("fc00:1:869f:ffff::")) == "filler-99999")
        #expect(networks.name(of: addr("172.17.134.158")) == "filler-99998")
        #expect(seconds < 60, "reading took \(seconds) s")
    }
}
