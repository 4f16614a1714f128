import Testing
import TrafficCore
import TrafficTestSupport
@testable import TrafficFlows

/// A flow record counts like its packets would: attributed by the same rule, N packets and
/// B bytes (scaled by the sampling rate) in the window of its end time, late in the open
/// one when that window has closed, and the window says it holds sampled figures.
@Suite struct FlowCountingTests {
    static let window: Int64 = 5_000_000_000
    static let t0: Int64 = 1_700_000_000_000_000_000

    static func configuration() throws -> WindowAggregator.Configuration {
        WindowAggregator.Configuration(
            windowLength: window, localNetworks: LocalNetworks([try NetworkPrefix(parsing: "10.0.0.0/8")]))
    }

    static func record(_ shard: WindowShard, start: Int64) throws -> WindowRecord {
        var facts = WindowFacts(start: start, end: start + window, partial: false)
        facts.sources = ["netflow"]
        let tables = try #require(shard.take(start))
        return ClosedWindow(facts: facts, tables: [(tables, shard)], configuration: try configuration()).record()
    }

    @Test func aFlowCountsAsItsPacketsWouldUnderTheSameAttribution() throws {
        let shard = WindowShard(configuration: try Self.configuration())
        // The reply half of a connection: server 10.0.0.1:443 to the remote client.
        let reply = DecodedPacket(flowFrom: addr("10.0.0.1"), to: addr("198.51.100.7"), ipProtocol: 6, sourcePort: 443, destinationPort: 51000)
        shard.countFlow(reply, packets: 12, bytes: 15_000, timestamp: Self.t0 + 1_000_000_000, sampled: false) { Self.t0 }
        let request = DecodedPacket(flowFrom: addr("198.51.100.7"), to: addr("10.0.0.1"), ipProtocol: 6, sourcePort: 51000, destinationPort: 443)
        shard.countFlow(request, packets: 10, bytes: 900, timestamp: Self.t0 + 2_000_000_000, sampled: false) { Self.t0 }
        let r = try Self.record(shard, start: Self.t0)
        #expect(r.clients.map(\.ip) == [addr("198.51.100.7")])
        #expect(r.clients.first?.in == Counts(packets: 10, bytes: 900) && r.clients.first?.out == Counts(packets: 12, bytes: 15_000))
        #expect(r.clients.first?.services.map(\.service.label) == ["TCP/443", "TCP/443"])
        #expect(r.servers.map(\.ip) == [addr("10.0.0.1")])
        #expect(r.isConserved && !r.sampled && r.latePackets == 0)
        #expect(r.capture.received == 0, "flow records are not captured frames")
        // Every packet in a size bucket: 12 of 1,250 bytes, 10 of 90.
        #expect(r.protocols.sizesOut[5] == 12 && r.protocols.sizesIn[1] == 10)
        #expect(r.sources == [SourceCounts(name: "netflow", in: Counts(packets: 10, bytes: 900), out: Counts(packets: 12, bytes: 15_000))])
    }

    @Test func aFlowThatEndedInAClosedWindowIsLateInTheOpenOne() throws {
        let shard = WindowShard(configuration: try Self.configuration())
        let flow = DecodedPacket(flowFrom: addr("198.51.100.7"), to: addr("10.0.0.1"), ipProtocol: 17, sourcePort: 40000, destinationPort: 53)
        // The coordinator's open window starts at t0 + 5 s; the flow ended at t0 + 1 s.
        shard.countFlow(flow, packets: 3, bytes: 210, timestamp: Self.t0 + 1_000_000_000, sampled: true) { Self.t0 + Self.window }
        #expect(shard.take(Self.t0) == nil)
        let r = try Self.record(shard, start: Self.t0 + Self.window)
        #expect(r.latePackets == 3 && r.in == Counts(packets: 3, bytes: 210))
        #expect(r.sampled)
        let json = r.jsonString
        #expect(json.contains("\"sampled\":true,\"sources\":[{\"name\":\"netflow\",\"in\":{\"packets\":3,\"bytes\":210}"))
    }

    @Test func aSampledFrameCountsInItsBucketTimesTheRate() throws {
        let shard = WindowShard(configuration: try Self.configuration())
        let decoder = try #require(PacketDecoder(linkType: .ethernet))
        let arp = FrameBuilder.arp.withUnsafeBytes { decoder.decode($0) }
        shard.countFlow(arp, packets: 100, bytes: 6000, timestamp: Self.t0, sampled: true) { Self.t0 }
        shard.countFlow(DecodedPacket(), packets: 0, bytes: 0, timestamp: Self.t0, sampled: true) { Self.t0 }
        let r = try Self.record(shard, start: Self.t0)
        #expect(r.nonIP == Counts(packets: 100, bytes: 6000))
        #expect(r.packets == 100 && r.isConserved)
    }
}
