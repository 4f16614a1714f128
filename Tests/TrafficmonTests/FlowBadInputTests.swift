import Foundation
import Testing
import TrafficCore
import TrafficFlows
import TrafficTestSupport

/// Hostile and broken exporters against `trafficmon serve` over real UDP sockets: random
/// datagrams, truncated headers, a template with a zero-length field, a message whose
/// length runs past the datagram, and 65,535 templates from one exporter. Each is counted
/// as a decode error of its exporter and dropped; the process keeps running, its memory
/// stays bounded, and well-behaved exporters on the same sockets count exactly.
@Suite(.serialized) struct FlowBadInputTests {
    typealias F = FlowDatagrams.Field
    typealias E = FlowDatagrams.Element

    static let v4Fields = [
        F(E.sourceIPv4, 4), F(E.destinationIPv4, 4), F(E.sourcePort, 2), F(E.destinationPort, 2), F(E.proto, 1),
        F(E.octets, 8), F(E.packets, 4), F(E.flowEndMilliseconds, 8),
    ]

    static func record(endMilliseconds: UInt64) -> [UInt8] {
        var b = FlowDatagrams.Bytes()
        b.address("198.51.100.7"); b.address("10.0.0.1")
        b.u16(51000); b.u16(443); b.u8(6)
        b.u64(1500); b.u32(3); b.u64(endMilliseconds)
        return b.bytes
    }

    static func ipfix(_ sets: [[UInt8]], sequence: UInt32) -> [UInt8] {
        FlowDatagrams.ipfix(exportTime: UInt32(Date().timeIntervalSince1970), sequence: sequence, domain: 1, sets: sets)
    }

    struct Capture: Decodable {
        var flows: [FlowCollectorHealth]
    }

    static func health(_ server: ServerProcess) async throws -> [FlowCollectorHealth] {
        try JSONDecoder().decode(Capture.self, from: try await server.get("/stats/capture").body).flows
    }

    static func resident(_ server: ServerProcess) async throws -> Double {
        let metrics = try PromExposition.parse(try await server.get("/metrics").text)
        return try #require(metrics.value("process_resident_memory_bytes", [:]))
    }

    @Test func hostileExportersAreCountedAndDroppedAndOthersCountExactly() async throws {
        let dir = try TestProcess.temporaryDirectory("flows-hostile")
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try ServerProcess.serve(
            ["--netflow", "127.0.0.1:0", "--sflow", "127.0.0.1:0", "--no-db", "--window", "1s", "--local-net", "10.0.0.0/29",
             "--flow-direction", "both"], in: dir)
        defer { server.stop() }
        // On a thread of its own: other suites may hold the cooperative pool for a while.
        _ = try await TestProcess.offload { try server.waitUntilServing("/readyz", timeout: 90) }
        var ports: [String: UInt16] = [:]
        try await server.waitUntil("both collectors' ports in the log") {
            for match in server.stderr.matches(of: /collecting (\w+) on \S+ \(port (\d+)\)/) { ports[String(match.1)] = UInt16(match.2) }
            return ports.count == 2
        }
        let netflow = try #require(ports["netflow"]), sflow = try #require(ports["sflow"])
        let hostile = try UDPSender(from: "127.0.0.2")
        let good = try UDPSender(from: "127.0.0.3")
        let now = UInt64(Date().timeIntervalSince1970 * 1000)

        // The good exporter's template first, then a baseline of the server's memory.
        #expect(good.send(Self.ipfix([FlowDatagrams.ipfixTemplates([(256, Self.v4Fields)])], sequence: 0), to: "127.0.0.1", port: netflow))
        try await server.waitUntil("the good exporter's template") {
            try await Self.health(server).first { $0.source == "netflow" }?.exporters.first?.templates == 1
        }
        let before = try await Self.resident(server)

        // Built and sent on a Dispatch thread: tens of thousands of datagrams are seconds of
        // work in a debug build, which must not hold a thread of the cooperative pool.
        let (hostileNetflow, hostileSFlow, goodRecords, unsent) = try await TestProcess.offload {
            var generator = SystemRandomNumberGenerator()
            var hostileNetflow = 0, hostileSFlow = 0, goodRecords = 0, unsent = 0
            func sendHostile(_ bytes: [UInt8], to port: UInt16) {
                _ = hostile.send(bytes, to: "127.0.0.1", port: port)
                if port == netflow { hostileNetflow += 1 } else { hostileSFlow += 1 }
            }
            // Random datagrams, to both sockets.
            for _ in 0..<2000 {
                let length = Int.random(in: 0...1500, using: &generator)
                let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
                sendHostile(bytes, to: netflow)
                sendHostile(bytes, to: sflow)
            }
            // Truncated headers of every version.
            let v5 = FlowDatagrams.netflowV5([.init(source: "198.51.100.7", destination: "10.0.0.1", packets: 1, bytes: 100)], sequence: 0, unixSeconds: UInt32(now / 1000))
            let v9 = FlowDatagrams.v9(uptime: 1000, unixSeconds: UInt32(now / 1000), sequence: 0, flowsets: [FlowDatagrams.v9Templates([(256, Self.v4Fields)])])
            let message = Self.ipfix([FlowDatagrams.ipfixTemplates([(300, Self.v4Fields)])], sequence: 0)
            let sample = FlowDatagrams.sflow(sequence: 1, samples: [FlowDatagrams.sflowCounterSample()])
            for cut in [2, 10, 16, 19] {
                sendHostile(Array(v5.prefix(cut)), to: netflow)
                sendHostile(Array(v9.prefix(cut)), to: netflow)
                sendHostile(Array(message.prefix(min(cut, 15))), to: netflow)
                sendHostile(Array(sample.prefix(cut)), to: sflow)
            }
            // A template with a zero-length field.
            sendHostile(Self.ipfix([FlowDatagrams.ipfixTemplates([(301, [F(E.sourceIPv4, 4), F(E.destinationIPv4, 0)])])], sequence: 1), to: netflow)
            // A message whose length says more than the datagram holds, and a set past its message.
            var long = Self.ipfix([FlowDatagrams.set(id: 256, Self.record(endMilliseconds: now))], sequence: 2)
            long[2] = 0x20
            sendHostile(long, to: netflow)
            var longSet = Self.ipfix([FlowDatagrams.set(id: 256, Self.record(endMilliseconds: now))], sequence: 3)
            longSet[16 + 3] = 200
            sendHostile(longSet, to: netflow)
            // 65,535 template ids (all that IPFIX numbers from 256 up) from one exporter, 64 per message,
            // with the good exporter's data in between.
            var id = 256, sequence: UInt32 = 1
            while id <= 65535 {
                let templates = (id..<min(id + 64, 65536)).map { (UInt16($0), Self.v4Fields) }
                sendHostile(Self.ipfix([FlowDatagrams.ipfixTemplates(templates)], sequence: 4), to: netflow)
                id += 64
                if id % (64 * 64) == 0 {
                    if !good.send(Self.ipfix([FlowDatagrams.set(id: 256, Self.record(endMilliseconds: now))], sequence: sequence), to: "127.0.0.1", port: netflow) { unsent += 1 }
                    sequence += 1
                    goodRecords += 1
                }
                // Paced a little, so the test shows decoding, not the kernel's buffer.
                if id % 4096 == 256 { usleep(5000) }
            }
            return (hostileNetflow, hostileSFlow, goodRecords, unsent)
        }
        #expect(unsent == 0, "the good exporter's datagrams were not all sent")
        let totalTemplates = 65535 - 256 + 1

        try await server.waitUntil("every datagram to be read", timeout: 60) {
            let flows = try await Self.health(server)
            return flows.first { $0.source == "netflow" }?.datagrams == UInt64(hostileNetflow + goodRecords + 1)
                && flows.first { $0.source == "sflow" }?.datagrams == UInt64(hostileSFlow)
        }
        let flows = try await Self.health(server)
        let netflowHealth = try #require(flows.first { $0.source == "netflow" })
        let sflowHealth = try #require(flows.first { $0.source == "sflow" })
        #expect(netflowHealth.receiveErrors == 0 && sflowHealth.receiveErrors == 0)

        // The hostile exporter: every broken datagram counted by reason, templates capped.
        let bad = try #require(netflowHealth.exporters.first { $0.exporter == "127.0.0.2" })
        #expect(bad.templates == ExporterTable.templatesPerExporter)
        #expect(bad.errors["template_limit"] == UInt64(totalTemplates - ExporterTable.templatesPerExporter))
        #expect((bad.errors["bad_template"] ?? 0) >= 1)
        #expect((bad.errors["truncated"] ?? 0) + (bad.errors["bad_length"] ?? 0) >= 14)
        let badErrors = bad.errors.filter { $0.key != "template_limit" }.values.reduce(0, +)
        #expect(badErrors >= 1990, "errors by reason: \(bad.errors)")
        let badSFlow = try #require(sflowHealth.exporters.first { $0.exporter == "127.0.0.2" })
        #expect(badSFlow.datagrams == UInt64(hostileSFlow) && badSFlow.errors.values.reduce(0, +) >= 1990, "\(badSFlow.errors)")

        // The good exporter on the same socket: every record, no error, no gap.
        let fine = try #require(netflowHealth.exporters.first { $0.exporter == "127.0.0.3" })
        #expect(fine.records == UInt64(goodRecords) && fine.sequenceGaps == 0 && fine.missingTemplate == 0)
        #expect(fine.errors.values.allSatisfy { $0 == 0 }, "\(fine.errors)")
        #expect(fine.templates == 1)

        // Memory: the template cap holds it, whatever was sent.
        let after = try await Self.resident(server)
        #expect(after - before < 64 * 1024 * 1024, "resident memory grew from \(before) to \(after) bytes")
        let metrics = try PromExposition.parse(try await server.get("/metrics").text)
        #expect(metrics.value("trafficmon_flow_decode_errors_total", ["source": "netflow", "exporter": "127.0.0.2", "reason": "template_limit"])
            == Double(totalTemplates - ExporterTable.templatesPerExporter))
        #expect(metrics.value("trafficmon_flow_records_total", ["source": "netflow", "exporter": "127.0.0.3"]) == Double(goodRecords))
        #expect(try await server.get("/healthz").status == 200)
    }

    /// A bad flow flag ends in one sentence naming it and status 64 (a port in use: status 1),
    /// before any capture starts.
    @Test(arguments: [
        (["--netflow", "2055"], "--netflow"),
        (["--sflow", "::1:6343"], "--sflow"),
        (["--netflow", "127.0.0.1:70000"], "--netflow"),
        (["--netflow", "127.0.0.1:2055", "--sflow", "127.0.0.1:2055"], "given twice"),
        (["--netflow", ":2055", "--flow-direction", "sideways"], "--flow-direction"),
        (["--netflow", ":2055", "--read", "x.pcap"], "--read"),
        (["--netflow", ":2055", "--flow-buffer-size", "0"], "--flow-buffer-size"),
    ])
    func badFlowFlagsAreOneSentence(arguments: [String], names: String) async throws {
        let result = try await TestProcess.offload {
            try TestProcess.run(TestProcess.trafficmon, ["serve", "--no-db"] + arguments, environment: TestProcess.environment())
        }
        ReportCommandTests.expectOneErrorLine(result)
        #expect(result.status == 64)
        #expect(result.stderr.contains(names), "\(result.stderr)")
    }

    @Test func aFlowPortInUseIsOneSentence() async throws {
        let taken = try FlowCollector(kind: .netflow, listen: FlowListenAddress(parsing: "127.0.0.1:0"))
        let port = taken.port
        let result = try await TestProcess.offload {
            try TestProcess.run(
                TestProcess.trafficmon, ["serve", "--no-db", "--listen", "127.0.0.1:0", "--netflow", "127.0.0.1:\(port)"],
                environment: TestProcess.environment())
        }
        ReportCommandTests.expectOneErrorLine(result)
        #expect(result.stderr.contains("--netflow 127.0.0.1:\(taken.port)"), "\(result.stderr)")
    }
}
