import Foundation
import Testing
import TrafficCore
import TrafficTestSupport
@testable import TrafficFlows

/// The collector on a real UDP socket: datagrams from several exporters (loopback source
/// addresses) over IPv4 and IPv6, counted into a shard, health per exporter, the exporter
/// cap with `other`, `--flow-direction`, and garbage that is counted and dropped.
@Suite(.serialized) struct FlowCollectorTests {
    static let window: Int64 = 5_000_000_000

    static func configuration() throws -> WindowAggregator.Configuration {
        WindowAggregator.Configuration(windowLength: window, localNetworks: LocalNetworks([try NetworkPrefix(parsing: "10.0.0.0/8")]))
    }

    /// Receives until `done` holds or 5 s pass; returns the open window's start the shard counted into.
    static func receive(_ collector: FlowCollector, into shard: WindowShard, open: Int64, until done: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(5)
        while !done() && Date() < deadline {
            var ready = pollfd(fd: collector.descriptor, events: Int16(POLLIN), revents: 0)
            _ = poll(&ready, 1, 50)
            try collector.receive(into: shard) { open }
        }
        // Once more with nothing waiting: the figures are published.
        try collector.receive(into: shard) { open }
    }

    static func openWindow() -> Int64 {
        let now = Int64(Date().timeIntervalSince1970 * 1e9)
        return now / window * window
    }

    static func v5(_ client: String, packets: UInt32, bytes: UInt32, sequence: UInt32) -> [UInt8] {
        FlowDatagrams.netflowV5([.init(source: client, destination: "10.0.0.1", sourcePort: 51000, destinationPort: 443, packets: packets, bytes: bytes)],
                                sequence: sequence, uptime: 1000, unixSeconds: UInt32(Date().timeIntervalSince1970))
    }

    @Test func datagramsFromSeveralExportersOverIPv4AndIPv6AreCounted() throws {
        let collector = try FlowCollector(kind: .netflow, listen: FlowListenAddress(parsing: ":0"), direction: .both)
        #expect(collector.port > 0)
        let shard = WindowShard(configuration: try Self.configuration(), input: 0)
        let a = try UDPSender(from: "127.0.0.2"), b = try UDPSender(from: "127.0.0.3"), c = try UDPSender(from: "::1")
        for i in 0..<50 {
            #expect(a.send(Self.v5("198.51.100.7", packets: 2, bytes: 200, sequence: UInt32(i)), to: "127.0.0.1", port: collector.port))
            #expect(b.send(Self.v5("198.51.100.8", packets: 3, bytes: 300, sequence: UInt32(i)), to: "127.0.0.1", port: collector.port))
            #expect(c.send(Self.v5("198.51.100.9", packets: 1, bytes: 50, sequence: UInt32(i)), to: "::1", port: collector.port))
        }
        let open = Self.openWindow()
        try Self.receive(collector, into: shard, open: open) { collector.health.datagrams >= 150 }
        let health = collector.health
        #expect(health.datagrams == 150 && health.receiveErrors == 0)
        #expect(Set(health.exporters.map(\.exporter)) == ["127.0.0.2", "127.0.0.3", "::1"])
        #expect(health.exporters.allSatisfy { $0.records == 50 && $0.sequenceGaps == 0 })
        let tables = try #require(shard.take(before: .max).first)
        var facts = WindowFacts(start: tables.start, end: tables.start + Self.window, partial: false)
        facts.sources = ["netflow"]
        let r = ClosedWindow(facts: facts, tables: [(tables.tables, shard)], configuration: try Self.configuration()).record()
        #expect(r.in == Counts(packets: 300, bytes: 27_500))
        #expect(r.clients.map(\.ip.description) == ["198.51.100.8", "198.51.100.7", "198.51.100.9"])
    }

    @Test func theReceiveBufferIsLarge() throws {
        let collector = try FlowCollector(kind: .sflow, listen: FlowListenAddress(parsing: "127.0.0.1:0"))
        // As root SO_RCVBUFFORCE grants the 32 MiB asked; without root the kernel's cap (net.core.rmem_max) applies.
        if getuid() == 0 {
            #expect(collector.health.receiveBuffer == 32 << 20)
        } else {
            #expect(collector.health.receiveBuffer > 0)
        }
    }

    @Test func exportersPastTheLimitCountAsOther() throws {
        let collector = try FlowCollector(kind: .netflow, listen: FlowListenAddress(parsing: "127.0.0.1:0"), direction: .both, maxExporters: 2)
        let shard = WindowShard(configuration: try Self.configuration())
        let senders = try (2...5).map { try UDPSender(from: "127.0.0.\($0)") }
        for (i, sender) in senders.enumerated() {
            sender.send(Self.v5("198.51.100.\(i + 1)", packets: 1, bytes: 100, sequence: 0), to: "127.0.0.1", port: collector.port)
            // One at a time, so the first two seen are the first two sent.
            try Self.receive(collector, into: shard, open: Self.openWindow()) { collector.health.datagrams >= UInt64(i + 1) }
        }
        let exporters = collector.health.exporters
        #expect(exporters.map(\.exporter) == ["127.0.0.2", "127.0.0.3", "other"])
        #expect(exporters.map(\.records) == [1, 1, 2])
    }

    @Test func garbageIsCountedAndDroppedAndTheNextDatagramCounts() throws {
        let collector = try FlowCollector(kind: .netflow, listen: FlowListenAddress(parsing: "127.0.0.1:0"), direction: .both)
        let shard = WindowShard(configuration: try Self.configuration())
        let sender = try UDPSender(from: "127.0.0.2")
        var generator = SystemRandomNumberGenerator()
        for length in [0, 1, 3, 24, 200, 1400] {
            sender.send((0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }, to: "127.0.0.1", port: collector.port)
        }
        sender.send(Self.v5("198.51.100.7", packets: 4, bytes: 400, sequence: 0), to: "127.0.0.1", port: collector.port)
        try Self.receive(collector, into: shard, open: Self.openWindow()) { collector.health.datagrams >= 7 }
        let exporter = try #require(collector.health.exporters.first)
        #expect(exporter.datagrams == 7 && exporter.records >= 1)
        #expect(exporter.errors.values.reduce(0, +) >= 1)
    }

    @Test func flowDirectionLeavesOutTheOtherDirection() throws {
        typealias F = FlowDatagrams.Field
        let fields = [F(8, 4), F(12, 4), F(2, 4), F(1, 4), F(61, 1)]
        func record(_ direction: UInt8) -> [UInt8] {
            var b = FlowDatagrams.Bytes()
            b.address("198.51.100.7"); b.address("10.0.0.1"); b.u32(1); b.u32(100); b.u8(direction)
            return b.bytes
        }
        let message = FlowDatagrams.ipfix(exportTime: UInt32(Date().timeIntervalSince1970), sequence: 0, sets: [
            FlowDatagrams.ipfixTemplates([(256, fields)]), FlowDatagrams.set(id: 256, record(0) + record(1) + record(0)),
        ])
        for (filter, counted) in [(FlowDirectionFilter.ingress, 2), (.egress, 1), (.both, 3)] {
            let collector = try FlowCollector(kind: .netflow, listen: FlowListenAddress(parsing: "127.0.0.1:0"), direction: filter)
            let shard = WindowShard(configuration: try Self.configuration())
            try UDPSender(from: "127.0.0.2").send(message, to: "127.0.0.1", port: collector.port)
            try Self.receive(collector, into: shard, open: Self.openWindow()) { collector.health.datagrams >= 1 }
            let exporter = try #require(collector.health.exporters.first)
            #expect(exporter.records == UInt64(counted) && exporter.filtered == UInt64(3 - counted), "\(filter)")
        }
    }

    @Test func aPortInUseIsAClearError() throws {
        let first = try FlowCollector(kind: .netflow, listen: FlowListenAddress(parsing: "127.0.0.1:0"))
        #expect(throws: InputFailure.self) {
            _ = try FlowCollector(kind: .netflow, listen: FlowListenAddress(parsing: "127.0.0.1:\(first.port)"))
        }
        for bad in ["2055", "[::1]", "host:port", "1.2.3.4:70000", "::1:2055"] {
            #expect(throws: InputFailure.self) { _ = try FlowListenAddress(parsing: bad) }
        }
    }
}
