import Foundation
import Testing
import TrafficCore
import TrafficTestSupport

/// `trafficmon report` as a user runs it: the built binary on capture files the tests
/// write, against the oracle of how the captures were built.
@Suite struct ReportCommandTests {
    static let localNetArguments = SyntheticTraffic.localNetworks.flatMap { ["--local-net", $0] }

    static func trafficmon(_ arguments: [String], environment extra: [String: String] = [:]) throws -> TestProcess.Result {
        let binary = TestProcess.trafficmon
        try #require(FileManager.default.isExecutableFile(atPath: binary.path), "no trafficmon binary at \(binary.path)")
        return try TestProcess.run(binary, arguments, environment: TestProcess.environment(extra), timeout: 60)
    }

    /// Every stdout line must be one JSON window record; nothing else may be there.
    static func records(_ result: TestProcess.Result, sourceLocation: SourceLocation = #_sourceLocation) throws -> [WindowRecord] {
        let text = result.stdoutText
        if text.isEmpty { return [] }
        #expect(text.hasSuffix("\n"), "stdout does not end with a newline", sourceLocation: sourceLocation)
        var records: [WindowRecord] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().enumerated() {
            do {
                records.append(try JSONDecoder().decode(WindowRecord.self, from: Data(line.utf8)))
            } catch {
                Issue.record("stdout line \(i + 1) is not a window record: \(line.prefix(200)) (\(error))", sourceLocation: sourceLocation)
            }
        }
        return records
    }

    static func flows(_ records: [WindowRecord]) -> [SyntheticTraffic.FlowKey: Counts] { SyntheticTraffic.flows(in: records) }

    static func total(_ records: [WindowRecord]) -> Counts {
        records.reduce(Counts()) { $0 + Counts(packets: $1.packets, bytes: $1.bytes) }
    }

    static func expectOneErrorLine(_ result: TestProcess.Result, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(result.status != 0, sourceLocation: sourceLocation)
        let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 2 && lines[1].isEmpty, "stderr must be exactly one line: \(result.stderr.debugDescription)", sourceLocation: sourceLocation)
        #expect(result.stderr.hasPrefix("trafficmon: "), "stderr: \(result.stderr.debugDescription)", sourceLocation: sourceLocation)
        #expect(!result.stderr.contains("Fatal error"), sourceLocation: sourceLocation)
    }

    static func expectMatches(_ records: [WindowRecord], _ truth: SyntheticTraffic.Truth, sourceLocation: SourceLocation = #_sourceLocation) {
        let flows = Self.flows(records)
        let mismatches = Set(flows.keys).union(truth.flows.keys).filter { flows[$0] != truth.flows[$0] }
        #expect(mismatches.isEmpty, "\(mismatches.count) flows differ, first: \(mismatches.prefix(3).map { "\($0): \(String(describing: flows[$0])) vs \(String(describing: truth.flows[$0]))" })", sourceLocation: sourceLocation)
        #expect(total(records) == truth.total, sourceLocation: sourceLocation)
        #expect(records.reduce(Counts()) { $0 + $1.nonIP } == truth.nonIP, sourceLocation: sourceLocation)
        #expect(records.reduce(Counts()) { $0 + Counts(packets: $1.malformed.packets, bytes: $1.malformed.bytes) } == truth.malformed, sourceLocation: sourceLocation)
        #expect(records.reduce(UInt64(0)) { $0 + $1.latePackets } == truth.latePackets, sourceLocation: sourceLocation)
        for r in records { #expect(r.isConserved, "window \(r.start) not conserved", sourceLocation: sourceLocation) }
    }

    // MARK: Output against the oracle

    @Test(arguments: [(262_144, PcapWriter.Format.pcapMicro), (64, PcapWriter.Format.pcapng), (96, PcapWriter.Format.pcapNano)])
    func ndjsonMatchesTheOracle(snapLength: Int, format: PcapWriter.Format) throws {
        let traffic = SyntheticTraffic(packets: 12_000, clients: 400, seconds: 30, seed: 21)
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("t.pcap")
        try traffic.pcap(snapLength: snapLength, format: format).write(to: url)

        let result = try Self.trafficmon(["report", url.path] + Self.localNetArguments)
        #expect(result.status == 0)
        #expect(result.stderr.isEmpty, "stderr: \(result.stderr)")
        let records = try Self.records(result)
        let truth = traffic.truth(snapLength: snapLength)
        Self.expectMatches(records, truth)
        #expect(Set(records.map(\.start)) == truth.windowStarts)
        for r in records {
            #expect(r.start % 5_000_000_000 == 0)
            #expect(r.end - r.start == 5_000_000_000)
        }
        #expect(records.last?.partial == true)
        #expect(records.dropLast().allSatisfy { !$0.partial })
    }

    /// Without reordering, every frame's window is its own timestamp's: the oracle holds per window.
    @Test func perWindowFlowsMatchTheOracle() throws {
        let traffic = SyntheticTraffic(packets: 6_000, clients: 150, seconds: 25, seed: 8, reorder: false)
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("t.pcap")
        try traffic.pcap().write(to: url)
        let result = try Self.trafficmon(["report", "--window", "2s", url.path] + Self.localNetArguments)
        #expect(result.status == 0)
        let records = try Self.records(result)
        var expected: [Int64: [SyntheticTraffic.FlowKey: Counts]] = [:]
        for f in traffic.frames {
            guard let flow = f.flow else { continue }
            expected[Timestamp.floorDiv(f.timestamp, 2_000_000_000) * 2_000_000_000, default: [:]][flow, default: .zero]
                .add(bytes: UInt64(f.wireLength))
        }
        #expect(Set(records.map(\.start)) == Set(expected.keys))
        for r in records {
            #expect(Self.flows([r]) == expected[r.start] ?? [:], "window \(Timestamp.rfc3339(r.start))")
        }
    }

    @Test(arguments: [("500ms", Int64(500_000_000)), ("3s", 3_000_000_000), ("1m", 60_000_000_000), ("1d", 86_400_000_000_000), ("250", 250_000_000_000)])
    func windowsAreEpochAligned(window: String, nanos: Int64) throws {
        let traffic = SyntheticTraffic(packets: 3_000, clients: 80, seconds: 20, seed: 14, start: 1_700_000_000_123_456_789, reorder: false)
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("t.pcapng")
        try traffic.pcap(format: .pcapng).write(to: url)
        let result = try Self.trafficmon(["report", "--window", window, url.path] + Self.localNetArguments)
        #expect(result.status == 0, "\(result.stderr)")
        let records = try Self.records(result)
        let expected = Set(traffic.frames.map { Timestamp.floorDiv($0.timestamp, nanos) * nanos })
        #expect(Set(records.map(\.start)) == expected)
        for r in records {
            #expect(r.start % nanos == 0)
            #expect(r.end - r.start == nanos)
        }
        Self.expectMatches(records, traffic.truth)
    }

    @Test func tableFormatPrintsReadableLines() throws {
        let traffic = SyntheticTraffic(packets: 3_000, clients: 50, seconds: 20, seed: 3)
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("t.pcap")
        try traffic.pcap().write(to: url)
        let result = try Self.trafficmon(["report", "--format", "table", url.path] + Self.localNetArguments)
        #expect(result.status == 0)
        #expect(result.stderr.isEmpty)
        let text = result.stdoutText
        let lines = text.split(separator: "\n")
        #expect(!lines.isEmpty)
        #expect(!lines.contains { $0.hasPrefix("{") }, "table output holds JSON")
        // One title line per window: "2023-11-14T22:13:20Z .. 2023-11-14T22:13:25Z".
        let titles = lines.filter { $0.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \.\. \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"#, options: .regularExpression) != nil }
        #expect(titles.count == traffic.truth.windowStarts.count)
        let firstWindow = try #require(traffic.truth.windowStarts.min())
        #expect(titles.first?.hasPrefix(Timestamp.rfc3339(firstWindow)) == true)
        #expect(titles.last?.hasSuffix("(partial)") == true)
        // The busiest client overall appears in the table.
        var perClient: [String: UInt64] = [:]
        for (flow, counts) in traffic.truth.flows { perClient[flow.client, default: 0] += counts.bytes }
        let busiest = try #require(perClient.max { $0.value < $1.value }?.key)
        #expect(text.contains(busiest))
        #expect(text.contains("packets"))
        #expect(lines.allSatisfy { !$0.contains("\u{1B}") }, "no terminal escapes in a table")
    }

    /// The table's TCP, SYN client, size and DNS blocks of each window hold exactly the
    /// figures of that window's JSON record, and those add up to what the capture holds.
    @Test func tableShowsTCPSizesAndDNSAsTheRecordHasThem() throws {
        let dir = try TestProcess.temporaryDirectory("report-protocols")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("protocols.pcap")
        let rounds = 12
        try ProtocolTraffic.capture(rounds: rounds, start: ReportTestFrames.start, spacing: 400_000_000).write(to: url)
        let arguments = ["report", url.path, "--window", "1s", "--local-net", ProtocolTraffic.localNetwork]
        let json = try Self.trafficmon(arguments)
        #expect(json.status == 0, "\(json.stderr)")
        let records = try Self.records(json)
        #expect(records.count == 5)

        // The records against the capture.
        let round = ProtocolTraffic.perRound, n = UInt64(rounds)
        let p = records.map(\.protocols)
        func sum(_ value: (ProtocolCounts) -> UInt64) -> UInt64 { p.reduce(0) { $0 + value($1) } }
        #expect(sum { $0.tcpIn.syn } == round.synIn * n && sum { $0.tcpOut.syn } == 0)
        #expect(sum { $0.tcpOut.synack } == round.synackOut * n && sum { $0.tcpOut.rst } == round.rstOut * n)
        #expect(sum { $0.tcpIn.fin } == round.finIn * n && sum { $0.tcpOut.fin } == round.finOut * n)
        #expect(sum { $0.tcpIn.unknown } == round.unknownIn * n)
        for (i, name) in DNSFacts.queryTypes.enumerated() { #expect(sum { $0.dnsQueries[i] } == (round.queries[name] ?? 0) * n, "\(name)") }
        for (i, name) in DNSFacts.responseCodes.enumerated() { #expect(sum { $0.dnsResponses[i] } == (round.responses[name] ?? 0) * n, "\(name)") }
        for b in 0..<8 {
            #expect(sum { $0.sizesIn[b] } == round.sizesIn[b] * n && sum { $0.sizesOut[b] } == round.sizesOut[b] * n, "size bucket \(b)")
        }
        #expect(records.allSatisfy { $0.protocols.synClients.first.map { $0.ip.description == ProtocolTraffic.scanner && $0.synServices == UInt64(ProtocolTraffic.scannedPorts) } == true })

        // The table of the same run, window by window.
        let table = try Self.trafficmon(arguments + ["--format", "table"])
        #expect(table.status == 0, "\(table.stderr)")
        let blocks = Self.tableBlocks(table.stdoutText)
        #expect(blocks.count == records.count)
        for (block, record) in zip(blocks, records) {
            let r = record.protocols
            #expect(block.first?.hasPrefix(Timestamp.rfc3339(record.start)) == true)
            #expect(Self.row("tcp", in: block) == TCPFlags.Kind.allCases.map(\.label))
            #expect(Self.numbers("in", after: "tcp", in: block) == TCPFlags.Kind.allCases.map { r.tcpIn[$0] })
            #expect(Self.numbers("out", after: "tcp", in: block) == TCPFlags.Kind.allCases.map { r.tcpOut[$0] })
            #expect(Self.row("size (bytes)", in: block) == ["<=64", "<=128", "<=256", "<=512", "<=1024", "<=1518", "<=9216", ">9216"])
            #expect(Self.numbers("in", after: "size (bytes)", in: block) == r.sizesIn)
            #expect(Self.numbers("out", after: "size (bytes)", in: block) == r.sizesOut)
            // The SYN clients, in the record's order: address, services, SYNs.
            let header = try #require(block.firstIndex { $0.hasPrefix("  syn client ") })
            let synRows = block[(header + 1)...].prefix { $0.hasPrefix("    ") }.map { $0.split(separator: " ").map(String.init) }
            #expect(synRows == r.synClients.map { [$0.ip.description, "\($0.synServices)", "\($0.syn)"] })
            // DNS: the non-zero kinds with their counts, then malformed and cut.
            let queries = Self.pairs(after: "dns queries", in: block)
            let responses = Self.pairs(after: "dns responses", in: block)
            #expect(queries == zip(DNSFacts.queryTypes, r.dnsQueries).filter { $0.1 > 0 }.map { "\($0.0) \($0.1)" })
            #expect(responses == zip(DNSFacts.responseCodes, r.dnsResponses).filter { $0.1 > 0 }.map { "\($0.0) \($0.1)" }
                + ["(malformed \(r.dnsMalformed), cut \(r.dnsCut))"])
        }

        // A window without TCP control segments, SYNs or DNS shows only its sizes.
        var quiet = PcapWriter(linkType: 1)
        for i in 0..<4 {
            let ip = FrameBuilder.ipv4(src: IPAddress("198.51.100.7")!, dst: IPAddress("10.0.0.1")!, proto: 1, payload: FrameBuilder.icmpEcho(payload: 100 * i))
            quiet.append(FrameBuilder.ethernet(ip: ip), timestamp: ReportTestFrames.start + Int64(i) * 1_000_000)
        }
        let quietURL = dir.appendingPathComponent("icmp.pcap")
        try quiet.write(to: quietURL)
        let quietTable = try Self.trafficmon(["report", quietURL.path, "--format", "table"])
        let lines = quietTable.stdoutText.split(separator: "\n").map(String.init)
        #expect(quietTable.status == 0)
        #expect(Self.numbers("in", after: "size (bytes)", in: lines) == [1, 0, 2, 1, 0, 0, 0, 0])
        #expect(!lines.contains { $0.hasPrefix("  tcp ") || $0.hasPrefix("  syn client") || $0.hasPrefix("  dns ") }, "\(lines)")
    }

    /// A table's window blocks: the lines from one title to the blank line after it.
    static func tableBlocks(_ text: String) -> [[String]] {
        text.components(separatedBy: "\n\n").filter { !$0.isEmpty }.map { $0.split(separator: "\n").map(String.init) }
    }

    /// The words after a block's header label (`  tcp   syn  synack ...`).
    static func row(_ label: String, in block: [String]) -> [String]? {
        block.first { $0.hasPrefix("  " + label + " ") }.map { $0.dropFirst(2 + label.count).split(separator: " ").map(String.init) }
    }

    /// The numbers of the row `label` (`    in   12   0 ...`) under the header `header`.
    static func numbers(_ label: String, after header: String, in block: [String]) -> [UInt64]? {
        guard let start = block.firstIndex(where: { $0.hasPrefix("  " + header + " ") }) else { return nil }
        let line = block[(start + 1)...].prefix { $0.hasPrefix("    ") }.first { $0.hasPrefix("    " + label + " ") }
        return line.map { $0.split(separator: " ").dropFirst().compactMap { UInt64($0) } }
    }

    /// The two-space separated entries after a one-line label (`  dns queries   A 2  MX 1`).
    static func pairs(after label: String, in block: [String]) -> [String]? {
        block.first { $0.hasPrefix("  " + label + " ") }.map {
            $0.dropFirst(2 + label.count).trimmingCharacters(in: .whitespaces).components(separatedBy: "  ")
        }
    }

    /// An office uplink: the office machines are the clients (marked local), the services
    /// what they use, the remote servers listed apart, in NDJSON and in the table.
    @Test func uplinkListsTheOfficeMachinesAsClients() throws {
        let traffic = SyntheticTraffic(packets: 6_000, clients: 60, seconds: 20, seed: 31, layout: .uplink)
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("uplink.pcap")
        try traffic.pcap().write(to: url)
        let local = SyntheticTraffic.uplinkLocalNetworks.flatMap { ["--local-net", $0] }

        let result = try Self.trafficmon(["report", url.path] + local)
        #expect(result.status == 0)
        let records = try Self.records(result)
        Self.expectMatches(records, traffic.truth)
        #expect(SyntheticTraffic.serverFlows(in: records) == traffic.truth.serverFlows)
        let busiest = try #require(records.max { $0.bytes < $1.bytes })
        #expect(busiest.clients.first.map { $0.local && $0.ip.description.hasPrefix("192.168.1.") || $0.ip.description.hasPrefix("2001:db8:1:") } == true)
        #expect(busiest.servers.first?.local == false)

        let table = try Self.trafficmon(["report", "--format", "table", url.path] + local)
        #expect(table.status == 0)
        let lines = table.stdoutText.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.trimmingCharacters(in: .whitespaces).hasPrefix("client ") })
        #expect(lines.contains { $0.trimmingCharacters(in: .whitespaces).hasPrefix("server ") })
        // Local parties are starred; the busiest window's top client and server are there.
        #expect(lines.contains { $0.contains("* \(busiest.clients[0].ip)") })
        #expect(lines.contains { $0.contains("  \(busiest.servers[0].ip)") && !$0.contains("* \(busiest.servers[0].ip)") })
    }

    /// `--service-port UDP/50000`: a service on a high port whose clients use lower ones.
    /// Without the flag the lower (client) port is taken for the server side.
    @Test func servicePortMakesAHighPortTheServer() throws {
        let server = IPAddress("10.0.0.1")!
        var writer = PcapWriter(linkType: 1)
        var expected = Counts()
        for i in 0..<40 {
            let client = IPAddress(ipv4: 0xC633_6400 | UInt32(1 + i % 8))
            let clientPort = UInt16(33_000 + i % 8)
            let query = i % 2 == 0
            let l4 = query ? FrameBuilder.ports(clientPort, 50_000, payload: 40 + i) : FrameBuilder.ports(50_000, clientPort, payload: 200 + i)
            let frame = FrameBuilder.ethernet(ip: query
                ? FrameBuilder.ipv4(src: client, dst: server, proto: 17, payload: l4)
                : FrameBuilder.ipv4(src: server, dst: client, proto: 17, payload: l4))
            writer.append(frame, timestamp: 1_700_000_000 * 1_000_000_000 + Int64(i) * 10_000_000)
            expected.add(bytes: UInt64(frame.count))
        }
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("udp50000.pcap")
        try writer.write(to: url)

        for arguments in [["--service-port", "UDP/50000"], []] {
            let result = try Self.trafficmon(["report", url.path, "--local-net", "10.0.0.0/29"] + arguments)
            #expect(result.status == 0)
            let records = try Self.records(result)
            let r = try #require(records.first)
            #expect(records.count == 1 && r.ipTotal == expected)
            if arguments.isEmpty {
                // The clients' ports (33000-33007) are lower: the server's side is taken for the client's.
                #expect(Set(r.services.map(\.service.label)) == Set((0..<8).map { "UDP/\(33_000 + $0)" }))
                #expect(r.clients.map(\.ip) == [server])
            } else {
                #expect(r.services.map(\.service.label) == ["UDP/50000", "UDP/50000"])
                #expect(r.servers.map(\.ip) == [server] && r.servers[0].local)
                #expect(r.clients.count == 8 && r.clients.allSatisfy { !$0.local })
                #expect(r.clients.allSatisfy { $0.services.allSatisfy { $0.service.label == "UDP/50000" } })
            }
        }
        // The environment sets it too, and a bad value is one line, status 64.
        let viaEnvironment = try Self.trafficmon(
            ["report", url.path, "--local-net", "10.0.0.0/29"], environment: ["TRAFFICMON_SERVICE_PORT": "UDP/50000,TCP/8443"])
        #expect(try Self.records(viaEnvironment).first?.servers.map(\.ip) == [server])
        let bad = try Self.trafficmon(["report", url.path, "--service-port", "UDP/70000"])
        Self.expectOneErrorLine(bad)
        #expect(bad.status == 64)
        #expect(bad.stderr.contains("--service-port"))
    }

    @Test func topLimitsClientsAndKeepsConservation() throws {
        // No reordering: the per-window client totals follow from the frames.
        let traffic = SyntheticTraffic(packets: 5_000, clients: 200, seconds: 30, seed: 9, reorder: false)
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("t.pcap")
        try traffic.pcap().write(to: url)
        let result = try Self.trafficmon(["report", "--top", "3", url.path] + Self.localNetArguments)
        #expect(result.status == 0)
        let records = try Self.records(result)
        var perWindow: [Int64: [String: Counts]] = [:]
        for f in traffic.frames {
            guard let flow = f.flow else { continue }
            perWindow[Timestamp.floorDiv(f.timestamp, 5_000_000_000) * 5_000_000_000, default: [:]][flow.client, default: .zero]
                .add(bytes: UInt64(f.wireLength))
        }
        #expect(records.count == perWindow.count)
        #expect(Self.total(records) == traffic.truth.total)
        for r in records {
            #expect(r.clients.count <= 3)
            #expect(r.isConserved, "window \(r.start) not conserved with --top 3")
            let expected = try #require(perWindow[r.start])
            #expect(r.clients.count == min(3, expected.count))
            // The listed clients are the three with the most bytes, in that order.
            let topBytes = expected.values.map(\.bytes).sorted(by: >).prefix(3)
            #expect(r.clients.map(\.total.bytes) == Array(topBytes))
            for c in r.clients { #expect(expected[c.ip.description] == c.total, "\(c.ip)") }
            #expect(r.other.clients == UInt64(expected.count - r.clients.count))
            let otherExpected = expected.values.map(\.bytes).sorted(by: >).dropFirst(3).reduce(0, +)
            #expect(r.other.bytes == otherExpected)
            for c in r.clients { #expect(c.services.count <= 5, "at most 3 services plus an \"other\" entry per direction") }
        }
    }

    @Test func maxClientsFoldsLaterClientsIntoOther() throws {
        let traffic = SyntheticTraffic(packets: 4_000, clients: 300, seconds: 20, seed: 12, reorder: false)
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("t.pcap")
        try traffic.pcap().write(to: url)
        let result = try Self.trafficmon(["report", "--max-clients", "10", url.path] + Self.localNetArguments)
        #expect(result.status == 0)
        let records = try Self.records(result)
        // Per window: the first 10 distinct clients to arrive are tracked, the rest go to other.
        var arrival: [Int64: [String]] = [:]
        var perClient: [Int64: [String: Counts]] = [:]
        for f in traffic.frames {
            guard let flow = f.flow else { continue }
            let w = Timestamp.floorDiv(f.timestamp, 5_000_000_000) * 5_000_000_000
            if perClient[w]?[flow.client] == nil { arrival[w, default: []].append(flow.client) }
            perClient[w, default: [:]][flow.client, default: .zero].add(bytes: UInt64(f.wireLength))
        }
        #expect(records.count == arrival.count)
        #expect(Self.total(records) == traffic.truth.total)
        for r in records {
            #expect(r.isConserved)
            let order = try #require(arrival[r.start])
            let tracked = Set(order.prefix(10))
            #expect(Set(r.clients.map(\.ip.description)) == tracked)
            for c in r.clients { #expect(perClient[r.start]?[c.ip.description] == c.total) }
            let rest = order.dropFirst(10).reduce(Counts()) { $0 + (perClient[r.start]?[$1] ?? .zero) }
            #expect(Counts(packets: r.other.packets, bytes: r.other.bytes) == rest)
            // Clients past --max-clients are counted with a HyperLogLog sketch (about 1.6%
            // standard error, DistinctCounter.swift): allow three standard errors.
            let distinct = Double(order.count - tracked.count)
            #expect(abs(Double(r.other.clients) - distinct) <= max(1, 0.05 * distinct),
                    "distinct clients in other: \(r.other.clients), expected about \(Int(distinct))")
        }
    }

    @Test func twoFilesInOneRun() throws {
        let first = SyntheticTraffic(packets: 4_000, clients: 120, seconds: 20, seed: 31)
        let second = SyntheticTraffic(packets: 3_000, clients: 90, seconds: 15, seed: 32, start: (1_700_000_000 + 60) * 1_000_000_000)
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let a = dir.appendingPathComponent("a.pcap"), b = dir.appendingPathComponent("b.pcapng")
        try first.pcap().write(to: a)
        try second.pcap(format: .pcapng).write(to: b)

        var truth = first.truth
        let t2 = second.truth
        for (flow, counts) in t2.flows { truth.flows[flow, default: .zero] += counts }
        truth.total += t2.total
        truth.nonIP += t2.nonIP
        truth.malformed += t2.malformed
        truth.latePackets += t2.latePackets
        truth.windowStarts.formUnion(t2.windowStarts)

        let result = try Self.trafficmon(["report", a.path, b.path] + Self.localNetArguments)
        #expect(result.status == 0)
        let records = try Self.records(result)
        Self.expectMatches(records, truth)
        #expect(Set(records.map(\.start)) == truth.windowStarts)
        #expect(records.filter(\.partial).count == 1, "only the very last window is partial")

        // In the other order the older file's packets arrive after a later window opened:
        // all of them are late, the totals still add up.
        let reversed = try Self.trafficmon(["report", b.path, a.path] + Self.localNetArguments)
        #expect(reversed.status == 0)
        let reversedRecords = try Self.records(reversed)
        #expect(Self.total(reversedRecords) == truth.total)
        #expect(Self.flows(reversedRecords) == truth.flows)
        #expect(reversedRecords.reduce(UInt64(0)) { $0 + $1.latePackets } == t2.latePackets + UInt64(first.frames.count))
    }

    @Test func filesOfDifferentLinkTypesInOneRun() throws {
        let frames = ReportTestFrames()
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let ether = dir.appendingPathComponent("ether.pcap"), raw = dir.appendingPathComponent("raw.pcap")
        try frames.writer().write(to: ether)
        // The same IP packets without their Ethernet header, as LINKTYPE_RAW, 60 s later.
        var w = PcapWriter(linkType: 101, format: .pcapNano)
        var rawTotal = Counts()
        for f in frames.frames where f.kind != "arp" {
            w.append(Array(f.bytes.dropFirst(14)), timestamp: f.timestamp + 60_000_000_000)
            rawTotal.add(bytes: UInt64(f.bytes.count - 14))
        }
        try w.write(to: raw)
        let result = try Self.trafficmon(["report", ether.path, raw.path, "--local-net", "10.0.0.0/24", "--local-net", "2001:db8::/64"])
        #expect(result.status == 0)
        let records = try Self.records(result)
        let all: Set<String> = ["tcp", "udp4", "udp6", "icmp", "arp"]
        #expect(Self.total(records) == frames.counts(of: all) + rawTotal)
        #expect(records.reduce(Counts()) { $0 + $1.nonIP } == frames.counts(of: ["arp"]))
        #expect(records.reduce(UInt64(0)) { $0 + $1.malformed.packets } == 0)
    }

    @Test(arguments: [
        ("udp", Set(["udp4", "udp6"])),
        ("tcp port 443", Set(["tcp"])),
        ("ip6", Set(["udp6"])),
        ("arp", Set(["arp"])),
    ])
    func filterSelectsPackets(filter: String, kinds: Set<String>) throws {
        let frames = ReportTestFrames()
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("f.pcap")
        try frames.writer().write(to: url)
        let result = try Self.trafficmon(["report", "--filter", filter, url.path, "--local-net", "10.0.0.0/24", "--local-net", "2001:db8::/64"])
        #expect(result.status == 0)
        let records = try Self.records(result)
        #expect(Self.total(records) == frames.counts(of: kinds))
        #expect(Self.flows(records) == frames.flows(of: kinds))
    }

    // MARK: Environment variables

    @Test func environmentSetsTheWindowAndTheCommandLineWins() throws {
        let traffic = SyntheticTraffic(packets: 3_000, clients: 60, seconds: 40, seed: 4)
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("t.pcap")
        try traffic.pcap().write(to: url)

        let fromEnv = try Self.records(try Self.trafficmon(["report", url.path], environment: ["TRAFFICMON_WINDOW": "10s"]))
        #expect(!fromEnv.isEmpty)
        #expect(fromEnv.allSatisfy { $0.end - $0.start == 10_000_000_000 && $0.start % 10_000_000_000 == 0 })
        #expect(Self.total(fromEnv) == traffic.truth.total)

        let flagWins = try Self.records(try Self.trafficmon(["report", "--window", "2s", url.path], environment: ["TRAFFICMON_WINDOW": "10s"]))
        #expect(!flagWins.isEmpty)
        #expect(flagWins.allSatisfy { $0.end - $0.start == 2_000_000_000 && $0.start % 2_000_000_000 == 0 })

        let equalsForm = try Self.records(try Self.trafficmon(["report", "--window=2s", url.path], environment: ["TRAFFICMON_WINDOW": "10s"]))
        #expect(equalsForm.allSatisfy { $0.end - $0.start == 2_000_000_000 })
    }

    @Test func environmentSetsLocalNetsFormatAndFilter() throws {
        let traffic = SyntheticTraffic(packets: 3_000, clients: 60, seconds: 20, seed: 5)
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("t.pcap")
        try traffic.pcap().write(to: url)

        let local = try Self.trafficmon(["report", url.path], environment: ["TRAFFICMON_LOCAL_NET": SyntheticTraffic.localNetworks.joined(separator: ",")])
        #expect(local.status == 0)
        Self.expectMatches(try Self.records(local), traffic.truth)

        let table = try Self.trafficmon(["report", url.path], environment: ["TRAFFICMON_FORMAT": "table"])
        #expect(table.status == 0)
        #expect(!table.stdoutText.isEmpty && !table.stdoutText.contains("{\""))

        let frames = ReportTestFrames()
        let f = dir.appendingPathComponent("f.pcap")
        try frames.writer().write(to: f)
        let filtered = try Self.trafficmon(["report", f.path], environment: ["TRAFFICMON_FILTER": "tcp port 443"])
        #expect(filtered.status == 0)
        #expect(Self.total(try Self.records(filtered)) == frames.counts(of: ["tcp"]))
    }

    @Test func badEnvironmentValueIsOneLine() throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("f.pcap")
        try ReportTestFrames().writer().write(to: url)
        let result = try Self.trafficmon(["report", url.path], environment: ["TRAFFICMON_WINDOW": "soon"])
        Self.expectOneErrorLine(result)
        #expect(result.stderr.contains("soon"))
        #expect(result.stdout.isEmpty)
    }

    // MARK: Bad input

    static func smallCapture(in dir: URL) throws -> URL {
        let url = dir.appendingPathComponent("ok.pcap")
        try ReportTestFrames().writer().write(to: url)
        return url
    }

    @Test(arguments: [
        (["--bogus"], Int32(64), "--bogus"),
        (["--window", "5parsecs"], Int32(64), "5parsecs"),
        (["--window", "0s"], Int32(64), "0s"),
        (["--window", "1500us"], Int32(64), "1500us"),
        (["--local-net", "10.0.0.0/33"], Int32(64), "10.0.0.0/33"),
        (["--local-net", "banana"], Int32(64), "banana"),
        (["--top", "0"], Int32(64), "0"),
        (["--format", "xml"], Int32(64), "xml"),
    ])
    func usageErrorsAreOneLine(extra: [String], status: Int32, mentions: String) throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = try Self.smallCapture(in: dir)
        let result = try Self.trafficmon(["report", url.path] + extra)
        Self.expectOneErrorLine(result)
        #expect(result.status == status)
        #expect(result.stderr.contains(mentions))
        #expect(result.stdout.isEmpty)
    }

    @Test func missingFileIsStatus2() throws {
        let path = "/nonexistent-\(UUID().uuidString).pcap"
        let result = try Self.trafficmon(["report", path])
        Self.expectOneErrorLine(result)
        #expect(result.status == 2)
        #expect(result.stderr.contains(path))
        #expect(result.stdout.isEmpty)
    }

    @Test func aBadFileAmongGoodOnesIsRefusedBeforeAnythingIsPrinted() throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = try Self.smallCapture(in: dir)
        let result = try Self.trafficmon(["report", good.path, dir.appendingPathComponent("missing.pcap").path])
        Self.expectOneErrorLine(result)
        #expect(result.status == 2)
        #expect(result.stdout.isEmpty)
    }

    /// Names as `tcpdump -r` prints them; libpcap has none for 147 (USER0): the number must do.
    @Test(arguments: [(UInt32(127), "IEEE802_11_RADIO"), (UInt32(105), "IEEE802_11"), (UInt32(147), "147")])
    func unsupportedLinkTypeIsStatus2AndNamed(linkType: UInt32, name: String) throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("radio.pcap")
        var w = PcapWriter(linkType: linkType)
        for i in 0..<3 { w.append([UInt8](repeating: 0x42, count: 80), timestamp: ReportTestFrames.start + Int64(i) * 1_000_000) }
        try w.write(to: url)
        let result = try Self.trafficmon(["report", url.path])
        Self.expectOneErrorLine(result)
        #expect(result.status == 2)
        #expect(result.stderr.contains(name), "stderr: \(result.stderr)")
        #expect(result.stdout.isEmpty)
    }

    @Test(arguments: [PcapWriter.Format.pcapMicro, .pcapng])
    func truncatedFileIsStatus2AndKeepsTheWindowsBeforeTheCut(format: PcapWriter.Format) throws {
        let traffic = SyntheticTraffic(packets: 2_000, clients: 40, seconds: 30, seed: 6, reorder: false, malformed: false)
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // Cut in the middle of record 1501.
        let keep = 1_500
        var head = PcapWriter(linkType: 1, format: format)
        for f in traffic.frames.prefix(keep) { head.append(f.bytes, timestamp: f.timestamp, wireLength: f.wireLength) }
        let before = head.data.count
        let record = traffic.frames[keep]
        head.append(record.bytes, timestamp: record.timestamp, wireLength: record.wireLength)
        let after = head.data.count
        let url = dir.appendingPathComponent("cut.pcap")
        try Data(traffic.pcap(format: format).data.prefix((before + after) / 2)).write(to: url)

        let result = try Self.trafficmon(["report", url.path] + Self.localNetArguments)
        Self.expectOneErrorLine(result)
        #expect(result.status == 2)
        #expect(result.stderr.contains(url.path))
        let records = try Self.records(result)
        let expected = traffic.frames.prefix(keep).reduce(Counts()) { $0 + Counts(packets: 1, bytes: UInt64($1.wireLength)) }
        #expect(Self.total(records) == expected)
        let windows = Set(traffic.frames.prefix(keep).map { Timestamp.floorDiv($0.timestamp, 5_000_000_000) * 5_000_000_000 })
        #expect(Set(records.map(\.start)) == windows)
        for r in records { #expect(r.isConserved) }
    }

    @Test(arguments: ["udp port", "tcp port 99999", "(((", "ether host zz:zz"])
    func badFilterIsStatus2(filter: String) throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = try Self.smallCapture(in: dir)
        let result = try Self.trafficmon(["report", "--filter", filter, url.path])
        Self.expectOneErrorLine(result)
        #expect(result.status == 2)
        #expect(result.stderr.contains(filter))
        #expect(result.stdout.isEmpty)
    }

    @Test(arguments: ["text", "empty", "directory"])
    func unreadableInputIsStatus2(kind: String) throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent(kind)
        switch kind {
        case "text": try Data("hello, not a capture\n".utf8).write(to: url)
        case "empty": try Data().write(to: url)
        default: try FileManager.default.createDirectory(at: url, withIntermediateDirectories: false)
        }
        let result = try Self.trafficmon(["report", url.path])
        Self.expectOneErrorLine(result)
        #expect(result.status == 2)
        #expect(result.stdout.isEmpty)
    }

    // MARK: Other commands

    @Test func interfacesListsLoopback() throws {
        let result = try Self.trafficmon(["interfaces"])
        #expect(result.status == 0)
        let names = result.stdoutText.split(separator: "\n").map { $0.split(separator: "\t").first.map(String.init) ?? "" }
        #expect(names.contains("lo"), "stdout: \(result.stdoutText)")
    }

    @Test(arguments: [[], ["report"], ["interfaces"], ["serve"]])
    func helpWorksForEverySubcommand(subcommand: [String]) throws {
        for form in [subcommand + ["--help"], subcommand + ["-h"]] {
            let result = try Self.trafficmon(form)
            #expect(result.status == 0, "\(form)")
            #expect(result.stdoutText.contains("USAGE:"), "\(form): \(result.stdoutText.prefix(200))")
            #expect(result.stdoutText.contains("trafficmon \(subcommand.first ?? "")".trimmingCharacters(in: .whitespaces)))
            #expect(result.stderr.isEmpty, "\(form): \(result.stderr)")
        }
        if let name = subcommand.first {
            let viaHelp = try Self.trafficmon(["help", name])
            #expect(viaHelp.status == 0)
            #expect(viaHelp.stdoutText.contains("USAGE: trafficmon \(name)"))
        }
    }

    @Test func reportHelpDocumentsItsFlags() throws {
        let help = try Self.trafficmon(["report", "--help"]).stdoutText
        for flag in ["--window", "--local-net", "--service-port", "--filter", "--format", "--top"] {
            #expect(help.contains(flag), "report --help does not mention \(flag)")
        }
    }
}

/// A few hand-built frames whose classification is obvious: the oracle is how they were built.
struct ReportTestFrames {
    static let start: Int64 = 1_700_000_000 * 1_000_000_000

    struct Frame {
        var bytes: [UInt8]
        var timestamp: Int64
        var kind: String
        var flow: SyntheticTraffic.FlowKey?
    }

    var frames: [Frame] = []

    /// 12 TCP/443 (6 in, 6 out), 8 UDP/53 over IPv4, 4 UDP/123 over IPv6, 3 ARP, 5 ICMP, over 9 s.
    init() {
        let server = IPAddress("10.0.0.5")!, client = IPAddress("203.0.113.9")!
        let server6 = IPAddress("2001:db8::5")!, client6 = IPAddress("2001:db8:ffff::9")!
        var t = Self.start
        func next() -> Int64 { t += 277_000_000; return t }
        for i in 0..<12 {
            let inbound = i % 2 == 0
            let l4 = inbound ? FrameBuilder.ports(41_000, 443, headerLength: 20, payload: 50 * i)
                : FrameBuilder.ports(443, 41_000, headerLength: 20, payload: 50 * i)
            let ip = inbound ? FrameBuilder.ipv4(src: client, dst: server, proto: 6, payload: l4)
                : FrameBuilder.ipv4(src: server, dst: client, proto: 6, payload: l4)
            frames.append(Frame(bytes: FrameBuilder.ethernet(ip: ip), timestamp: next(), kind: "tcp",
                                flow: .init(client: client.description, direction: inbound ? "in" : "out", service: "TCP/443")))
        }
        for i in 0..<8 {
            let ip = FrameBuilder.ipv4(src: client, dst: server, proto: 17, payload: FrameBuilder.ports(5353 + UInt16(i), 53, payload: 20 + i))
            frames.append(Frame(bytes: FrameBuilder.ethernet(ip: ip), timestamp: next(), kind: "udp4",
                                flow: .init(client: client.description, direction: "in", service: "UDP/53")))
        }
        for i in 0..<4 {
            let ip = FrameBuilder.ipv6(src: server6, dst: client6, proto: 17, payload: FrameBuilder.ports(123, 40_123, payload: 48 + i))
            frames.append(Frame(bytes: FrameBuilder.ethernet(ip: ip), timestamp: next(), kind: "udp6",
                                flow: .init(client: client6.description, direction: "out", service: "UDP/123")))
        }
        for _ in 0..<3 {
            frames.append(Frame(bytes: FrameBuilder.arp, timestamp: next(), kind: "arp", flow: nil))
        }
        for i in 0..<5 {
            let ip = FrameBuilder.ipv4(src: client, dst: server, proto: 1, payload: FrameBuilder.icmpEcho(payload: 16 * i))
            frames.append(Frame(bytes: FrameBuilder.ethernet(ip: ip), timestamp: next(), kind: "icmp",
                                flow: .init(client: client.description, direction: "in", service: "ICMP")))
        }
    }

    func counts(of kinds: Set<String>) -> Counts {
        frames.filter { kinds.contains($0.kind) }.reduce(Counts()) { $0 + Counts(packets: 1, bytes: UInt64($1.bytes.count)) }
    }

    func flows(of kinds: Set<String>) -> [SyntheticTraffic.FlowKey: Counts] {
        var result: [SyntheticTraffic.FlowKey: Counts] = [:]
        for f in frames where kinds.contains(f.kind) {
            if let flow = f.flow { result[flow, default: .zero].add(bytes: UInt64(f.bytes.count)) }
        }
        return result
    }

    func writer(_ format: PcapWriter.Format = .pcapMicro) -> PcapWriter {
        var w = PcapWriter(linkType: 1, format: format)
        for f in frames { w.append(f.bytes, timestamp: f.timestamp) }
        return w
    }
}
