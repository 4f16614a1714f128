import Foundation
import Testing
import TrafficCore
import TrafficFlows
import TrafficTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Real exporters into `trafficmon serve` over real UDP sockets: Debian's softflowd reads a
/// generated capture (`-r`) and sends NetFlow v5, v9 and IPFIX to `--netflow`; pmacct's
/// pmacctd reads the same kind of capture with its `sfprobe` plugin and sends sFlow to
/// `--sflow`. Unsampled, the sums over all windows per (client, direction, service) equal
/// `trafficmon report` on the same capture exactly, comparing like with like (NetFlow bytes
/// are layer 3: softflowd counts the frame less its 14-byte Ethernet header, padding
/// included; sFlow's are the frame's); sampled 1 in 10, the totals are within 5 %. The
/// exporters send in unpaced bursts: the collector loses nothing (no kernel receive
/// errors, no sequence gaps).
@Suite(.serialized) struct FlowExporterTests {
    static let second: Int64 = 1_000_000_000
    static var localNets: [String] { FlowCapture.localNetworks.flatMap { ["--local-net", $0] } }

    struct Key: Hashable, CustomStringConvertible {
        var client: String
        var direction: String
        var service: String
        var description: String { "\(client) \(direction) \(service)" }
    }

    /// An exporter the test drives, found on PATH (`scripts/install-deps --test` installs them).
    static func tool(_ name: String) throws -> String {
        try #require(TestProcess.which(name), "\(name) is not installed: run scripts/install-deps --test (Debian: softflowd, pmacct)")
    }

    /// Per (client, direction, service): packets and bytes, over `records`.
    static func tally(_ records: [WindowRecord]) -> [Key: Counts] {
        var out: [Key: Counts] = [:]
        for r in records {
            for c in r.clients {
                for s in c.services {
                    out[Key(client: c.ip.description, direction: s.direction.label, service: s.service.label), default: .zero]
                        += Counts(packets: s.packets, bytes: s.bytes)
                }
            }
        }
        return out
    }

    /// `trafficmon report` on the capture, tallied.
    /// (On a Dispatch thread, as is all blocking work here: a test holding a thread of the
    /// cooperative pool, two on 2 cores, stalls the other suites' servers and clients.)
    static func report(_ capture: URL) async throws -> [Key: Counts] {
        try await TestProcess.offload {
            let result = try TestProcess.run(TestProcess.trafficmon, ["report", capture.path, "--window", "1s"] + localNets)
            guard result.status == 0 else { throw TestProcess.Failure("report failed: \(result.stderr)") }
            return tally(try TestProcess.lines(result.stdoutText).map { try JSONDecoder().decode(WindowRecord.self, from: Data($0.utf8)) })
        }
    }

    /// `trafficmon serve` collecting on a port the kernel picks; returns it and the port.
    static func serve(_ flag: String, _ extra: [String] = [], in dir: URL) async throws -> (ServerProcess, UInt16) {
        let server = try ServerProcess.serve(
            [flag, "127.0.0.1:0", "--no-db", "--window", "1s", "--top", "10000"] + localNets + extra, in: dir)
        _ = try await TestProcess.offload { try server.waitUntilServing("/readyz", timeout: 90) }
        var port: UInt16?
        try await server.waitUntil("the collector's port in the log") {
            port = server.stderr.firstMatch(of: /\(port (\d+)\)/).flatMap { UInt16($0.1) }
            return port != nil
        }
        return (server, try #require(port))
    }

    struct Capture: Decodable {
        var flows: [FlowCollectorHealth]
    }

    static func flows(_ server: ServerProcess) async throws -> FlowCollectorHealth {
        let reply = try await server.get("/stats/capture")
        return try #require(try JSONDecoder().decode(Capture.self, from: reply.body).flows.first)
    }

    /// Waits until the collector has counted nothing new for `quiet` seconds and every
    /// window holding its records has closed; returns the closed windows.
    static func settle(_ server: ServerProcess, quiet: TimeInterval = 2) async throws -> [WindowRecord] {
        var last: UInt64 = 0
        var since = Date()
        try await server.waitUntil("the flow records to stop coming", timeout: 120) {
            let records = try await flows(server).exporters.reduce(0) { $0 + $1.records }
            if records != last || records == 0 {
                last = records
                since = Date()
            }
            return records > 0 && Date().timeIntervalSince(since) >= quiet
        }
        // The records are large (--top 10000): decoded on a Dispatch thread, and the open
        // window only for its packet count.
        struct Packets: Decodable { var packets: UInt64 }
        struct History: Decodable { var windows: [WindowRecord] }
        try await server.waitUntil("the windows to close", timeout: 30) {
            let body = try await server.get("/stats/current").body
            return try await TestProcess.offload { try JSONDecoder().decode(Packets.self, from: body) }.packets == 0
        }
        let body = try await server.get("/stats/history?limit=10000").body
        return try await TestProcess.offload { try JSONDecoder().decode(History.self, from: body).windows }
    }

    /// The capture: frames timed in the recent past, so every flow has ended by the time it
    /// is exported (records count late in the open window, as a router's would after an
    /// outage; the sums over windows do not depend on which window).
    static func writeCapture(packets: Int, in dir: URL) throws -> URL {
        let url = dir.appendingPathComponent("flows.pcap")
        let now = Int64(Date().timeIntervalSince1970) * second
        try FlowCapture.write(to: url, packets: packets, clients: 2000, start: now - 60 * second, seconds: 30)
        return url
    }

    /// Compares NetFlow/IPFIX sums with the report of the capture: packets equal, bytes the
    /// frames' less 14 bytes each (layer 3).
    static func layer3Mismatches(expected: [Key: Counts], got: [Key: Counts]) -> [String] {
        var mismatches: [String] = []
        for (key, counts) in expected {
            let want = Counts(packets: counts.packets, bytes: counts.bytes - 14 * counts.packets)
            if got[key] != want { mismatches.append("\(key): want \(want), got \(String(describing: got[key]))") }
        }
        for key in got.keys where expected[key] == nil { mismatches.append("\(key): not in the capture") }
        return mismatches
    }

    @Test(arguments: [5, 9, 10])
    func softflowdMatchesReportExactly(version: Int) async throws {
        let softflowd = try Self.tool("softflowd")
        let dir = try TestProcess.temporaryDirectory("flows-softflowd")
        defer { try? FileManager.default.removeItem(at: dir) }
        let capture = try await TestProcess.offload { try Self.writeCapture(packets: 100_000, in: dir) }
        let expected = try await Self.report(capture)
        // softflowd marks the reverse half of each conversation as egress: count both.
        let (server, port) = try await Self.serve("--netflow", ["--flow-direction", "both"], in: dir)
        defer { server.stop() }
        let run = try await TestProcess.run(program: softflowd, [
            "-r", capture.path, "-n", "127.0.0.1:\(port)", "-v", String(version), "-6", "-d",
            "-t", "maxlife=5", "-t", "tcp=10", "-t", "udp=10", "-t", "icmp=10", "-t", "general=10",
        ], timeout: 120)
        #expect(run.status == 0, "softflowd: \(run.stderr)")
        let windows = try await Self.settle(server)
        let got = try await TestProcess.offload { Self.tally(windows) }

        // NetFlow v5 carries IPv4 only.
        let compared = version == 5 ? expected.filter { !$0.key.client.contains(":") } : expected
        #expect(!compared.isEmpty)
        let mismatches = Self.layer3Mismatches(expected: compared, got: got)
        #expect(mismatches.isEmpty, "\(mismatches.count) keys differ, e.g. \(mismatches.prefix(5))")

        let health = try await Self.flows(server)
        #expect(health.receiveErrors == 0)
        let exporter = try #require(health.exporters.first)
        #expect(exporter.sequenceGaps == 0 && exporter.missingTemplate == 0)
        #expect(exporter.errors.values.allSatisfy { $0 == 0 }, "\(exporter.errors)")
        #expect(exporter.samplingRate == 1 && windows.allSatisfy { !$0.sampled })
        // The traffic counters carry the source, and add up to the windows.
        let metrics = try PromExposition.parse(try await server.get("/metrics").text)
        let total = windows.reduce(Counts()) { $0 + $1.in + $1.out }
        #expect(metrics.sum("trafficmon_packets_total", ["source": "netflow"]) == Double(total.packets))
        #expect(metrics.sum("trafficmon_bytes_total", ["source": "netflow"]) == Double(total.bytes))
        #expect(metrics.value("trafficmon_flow_records_total", ["source": "netflow", "exporter": "127.0.0.1"]) == Double(exporter.records))
    }

    /// pmacctd's core hands packets to its plugin through a ring it drops from when full, and
    /// a savefile is read as fast as the core can: the configurations give the ring room for
    /// the whole capture (256 MiB), so a busy machine loses nothing there.
    ///
    /// pmacctd reads the capture through a FIFO; a second after the capture, two more
    /// frames (from 192.0.2.250, left out of the comparison) make its sFlow agent tick and
    /// send the datagram it was filling, which it would otherwise drop when it exits.
    static func runPmacctd(_ pmacctd: String, capture: URL, rate: Int, port: UInt16, server: ServerProcess, in dir: URL) async throws {
        var tail = PcapWriter(linkType: 1)
        let marker = FrameBuilder.ethernet(ip: FrameBuilder.ipv4(
            src: IPAddress("192.0.2.250")!, dst: IPAddress("10.0.0.1")!, proto: 17, payload: FrameBuilder.ports(40000, 9, payload: 20)))
        let now = Int64(Date().timeIntervalSince1970) * second
        tail.append(marker, timestamp: now)
        tail.append(marker, timestamp: now)
        let body = Array(try Data(contentsOf: capture))
        let fifo = dir.appendingPathComponent("pmacctd.fifo")
        let feeder = try FIFOFeeder(at: fifo, bytes: body + Array(tail.data.dropFirst(24)), firstPart: body.count)
        let config = dir.appendingPathComponent("pmacctd.conf")
        try """
            daemonize: false
            pcap_savefile: \(fifo.path)
            plugins: sfprobe
            plugin_pipe_size: 268435456
            plugin_buffer_size: 65536
            sfprobe_receiver: 127.0.0.1:\(port)
            sfprobe_agentip: 127.0.0.1
            sampling_rate: \(rate)
            pidfile: \(dir.appendingPathComponent("pmacctd.pid").path)
            """.write(to: config, atomically: true, encoding: .utf8)
        let run = Task { try await TestProcess.offload { try TestProcess.run(URL(fileURLWithPath: pmacctd), ["-f", config.path], timeout: 300) } }
        // Once the samples stop coming (the capture is read), the tail.
        var last: UInt64 = 0
        var since = Date()
        try await server.waitUntil("pmacctd to read the capture", timeout: 240) {
            let datagrams = try await flows(server).datagrams
            if datagrams != last || datagrams == 0 {
                last = datagrams
                since = Date()
            }
            return datagrams > 0 && Date().timeIntervalSince(since) >= 1.5
        }
        feeder.release()
        let result = try await run.value
        // At the end of a savefile pmacctd 1.7.7 stops its plugin and exits 0, or 1 when its
        // core sees the plugin gone first ("no more plugins active"): both are a full read.
        let ended = result.status == 0 || (result.status == 1 && result.stderr.contains("no more plugins active"))
        #expect(ended, "pmacctd: \(result.stderr)")
    }

    @Test func pmacctdSFlowUnsampledMatchesReportExactly() async throws {
        let pmacctd = try Self.tool("pmacctd")
        let dir = try TestProcess.temporaryDirectory("flows-sflow")
        defer { try? FileManager.default.removeItem(at: dir) }
        let capture = try await TestProcess.offload { try Self.writeCapture(packets: 100_000, in: dir) }
        let expected = try await Self.report(capture)
        let (server, port) = try await Self.serve("--sflow", in: dir)
        defer { server.stop() }
        try await Self.runPmacctd(pmacctd, capture: capture, rate: 1, port: port, server: server, in: dir)
        let windows = try await Self.settle(server)
        var got = try await TestProcess.offload { Self.tally(windows) }
        got = got.filter { $0.key.client != "192.0.2.250" }
        var mismatches: [String] = []
        for key in Set(expected.keys).union(got.keys) where got[key] != expected[key] {
            mismatches.append("\(key): want \(String(describing: expected[key])), got \(String(describing: got[key]))")
        }
        #expect(!expected.isEmpty)
        #expect(mismatches.isEmpty, "\(mismatches.count) keys differ, e.g. \(mismatches.prefix(5))")
        let health = try await Self.flows(server)
        #expect(health.receiveErrors == 0)
        let exporter = try #require(health.exporters.first)
        #expect(exporter.sequenceGaps == 0 && exporter.errors.values.allSatisfy { $0 == 0 }, "\(exporter)")
        #expect(windows.allSatisfy { !$0.sampled })
    }

    @Test func pmacctdSFlowSampledOneInTenIsWithinFivePercentOnAMillionPackets() async throws {
        let pmacctd = try Self.tool("pmacctd")
        let dir = try TestProcess.temporaryDirectory("flows-sflow-10")
        defer { try? FileManager.default.removeItem(at: dir) }
        let capture = try await TestProcess.offload { try Self.writeCapture(packets: 1_000_000, in: dir) }
        let expected = try await Self.report(capture).values.reduce(Counts()) { $0 + $1 }
        let (server, port) = try await Self.serve("--sflow", in: dir)
        defer { server.stop() }
        try await Self.runPmacctd(pmacctd, capture: capture, rate: 10, port: port, server: server, in: dir)
        let windows = try await Self.settle(server)
        let got = Self.tally(windows).filter { $0.key.client != "192.0.2.250" }.values.reduce(Counts()) { $0 + $1 }
        #expect(expected.packets == 1_000_000)
        let packetError = abs(Double(got.packets) - Double(expected.packets)) / Double(expected.packets)
        let byteError = abs(Double(got.bytes) - Double(expected.bytes)) / Double(expected.bytes)
        #expect(packetError < 0.05 && byteError < 0.05, "packets \(got.packets) of \(expected.packets), bytes \(got.bytes) of \(expected.bytes)")
        #expect(windows.contains { $0.sampled })
        let health = try await Self.flows(server)
        let exporter = try #require(health.exporters.first)
        #expect(exporter.samplingRate == 10 && exporter.sequenceGaps == 0 && health.receiveErrors == 0)
        // About one packet in ten became a sample.
        #expect((80_000...120_000).contains(exporter.records))
        let metrics = try PromExposition.parse(try await server.get("/metrics").text)
        #expect(metrics.value("trafficmon_flow_sampling_rate", ["source": "sflow", "exporter": "127.0.0.1"]) == 10)
    }
}
