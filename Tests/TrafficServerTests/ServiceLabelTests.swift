import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import TrafficCore
import TrafficServer
import TrafficTestSupport

/// The service counters' labels go to the services with the most traffic: a port scan
/// cannot take them from real services.
@Suite struct ServiceLabelTests {
    static let second = ServerHarness.second
    static let t0: Int64 = 1_700_000_000 * second
    static let server = IPAddress("10.0.0.1")!
    static let scanner = IPAddress("198.51.100.66")!
    static let busyPorts = (0..<20).map { 6000 + $0 }

    /// Window 1: a SYN to each of 5,000 ports. Window 2: 20 busy UDP services (service k:
    /// 40 + k datagrams of 1,000 bytes). Window 3: the same 20, and another scan of 5,000
    /// new ports. 1 s windows. Returns the bytes each busy service carried.
    static func writeCapture(to url: URL) throws -> [String: UInt64] {
        var writer = PcapWriter()
        var busy: [String: UInt64] = [:]
        func scan(ports: Range<Int>, from start: Int64) {
            for (n, port) in ports.enumerated() {
                let frame = FrameBuilder.ethernet(ip: FrameBuilder.ipv4(
                    src: scanner, dst: server, proto: 6, payload: FrameBuilder.ports(40_000, UInt16(port), headerLength: 20)))
                writer.append(frame, timestamp: start + Int64(n) * 100_000)
            }
        }
        func busyWindow(from start: Int64) {
            var n: Int64 = 0
            for (k, port) in busyPorts.enumerated() {
                let client = IPAddress(ipv4: 0xC000_0200 + UInt32(k) + 1)  // 192.0.2.(k+1)
                let frame = FrameBuilder.ethernet(ip: FrameBuilder.ipv4(
                    src: client, dst: server, proto: 17, payload: FrameBuilder.ports(50_000, UInt16(port), payload: 958)))
                precondition(frame.count == 1000)
                for _ in 0..<(40 + k) {
                    writer.append(frame, timestamp: start + n * 200_000)
                    busy["UDP/\(port)", default: 0] += UInt64(frame.count)
                    n += 1
                }
            }
        }
        scan(ports: 1..<5001, from: t0)
        busyWindow(from: t0 + second)
        busyWindow(from: t0 + 2 * second)
        scan(ports: 10_001..<15_001, from: t0 + 2 * second + 300_000_000)
        try writer.write(to: url)
        return busy
    }

    @Test func aPortScanDoesNotTakeTheLabelsOfBusyServices() async throws {
        let top = 50
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("scan.pcap")
        let busy = try Self.writeCapture(to: url)
        let server = try await ServerHarness.server(source: try .file(url), windowLength: Self.second, top: top)
        try await server.application.test(.router) { client in
            try await ServerHarness.waitForReplay(server, windows: 3)
            let m = try await ServerHarness.metrics(client)
            let labels = m.labelValues("trafficmon_service_bytes_total", "service")
            // Every busy service has its own series, with its exact bytes (labelled in the
            // first window it was busy in).
            for (service, bytes) in busy {
                #expect(labels.contains(service), "\(service) has no label of its own")
                #expect(m.value("trafficmon_service_bytes_total", ["service": service, "direction": "in"])?.promExactUInt == bytes)
            }
            // Bounded: at most --top labelled services plus "other".
            #expect(labels.count <= top + 1)
            #expect(m.samples("trafficmon_service_bytes_total").count <= 2 * (top + 1))
            CardinalityTests.expectWithinFamilyBounds(m, top: top, maxPartySeries: 1000)
            // The scans' traffic is still counted: what the labels do not show is in "other".
            let scanned = m.value("trafficmon_service_bytes_total", ["service": "other", "direction": "in"])
            #expect(scanned.map { $0 > 0 } == true)
            // The second scan, after the busy services won, took no label from them.
            let secondScan = Set((10_001..<15_001).map { "TCP/\($0)" })
            #expect(labels.isDisjoint(with: secondScan))
        }
    }

    /// A service with steady traffic keeps its label through a scan of many windows; a
    /// service that becomes twice as busy as the quietest labelled one takes its label.
    @Test func steadyServicesKeepTheirLabelsThroughALongScan() throws {
        let metrics = TrafficMetrics(top: 5, version: "t")
        func window(_ i: Int64, _ services: [(String, UInt64)]) -> WindowRecord {
            var r = WindowRecord(start: Self.t0 + i * 5 * Self.second, end: Self.t0 + (i + 1) * 5 * Self.second)
            r.services = services.sorted { $0.1 > $1.1 }
                .map { ServiceCounts(service: Service(label: $0.0)!, direction: .inbound, packets: 1, bytes: $0.1) }
            r.in = Counts(packets: UInt64(services.count), bytes: services.reduce(0) { $0 + $1.1 })
            return r
        }
        let steady: [(String, UInt64)] = [("TCP/443", 50_000), ("UDP/53", 5_000), ("TCP/22", 2_000)]
        // 100 windows (over 8 minutes) of 1,000 scanned ports each, beside the steady services.
        for i in 0..<100 {
            let scan = (0..<1000).map { ("TCP/\(1024 + (i * 1000 + $0) % 64_000)", UInt64(60)) }
            metrics.record(window(Int64(i), steady + scan))
        }
        var m = try PromExposition.parse(String(decoding: metrics.exposition(format: .prometheus), as: UTF8.self))
        var labels = m.labelValues("trafficmon_service_bytes_total", "service")
        for (service, bytes) in steady {
            #expect(labels.contains(service))
            #expect(m.value("trafficmon_service_bytes_total", ["service": service, "direction": "in"]) == Double(bytes * 100))
        }
        #expect(labels.count == 6, "5 labels and other: \(labels.sorted())")
        // A new service with 200 bytes a window: more than twice a scan port's, so it takes
        // a scan port's label; the steady services keep theirs.
        metrics.record(window(100, steady + [("UDP/8080", 200)]))
        m = try PromExposition.parse(String(decoding: metrics.exposition(format: .prometheus), as: UTF8.self))
        labels = m.labelValues("trafficmon_service_bytes_total", "service")
        #expect(labels.isSuperset(of: ["TCP/443", "UDP/53", "TCP/22", "UDP/8080", "other"]))
        #expect(labels.count == 6)
    }
}
