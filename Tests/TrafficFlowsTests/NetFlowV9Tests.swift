import Testing
import TrafficCore
import TrafficTestSupport
@testable import TrafficFlows

/// NetFlow v9 (RFC 3954): flowsets, templates per (exporter, source id), options templates
/// declaring the sampling interval, uptime-based times, datagram sequence numbers.
@Suite struct NetFlowV9Tests {
    typealias F = FlowDatagrams.Field
    typealias E = FlowDatagrams.Element

    static let fields = [
        F(E.sourceIPv6, 16), F(E.destinationIPv6, 16), F(E.sourcePort, 2), F(E.destinationPort, 2), F(E.proto, 1),
        F(E.octets, 4), F(E.packets, 4), F(E.firstSwitched, 4), F(E.lastSwitched, 4), F(E.flowDirection, 1),
    ]

    static func record(_ source: String, _ destination: String, ports: (UInt16, UInt16), proto: UInt8 = 6, bytes: UInt32,
                       packets: UInt32, last: UInt32, direction: UInt8 = 0) -> [UInt8] {
        var b = FlowDatagrams.Bytes()
        b.address(source); b.address(destination)
        b.u16(ports.0); b.u16(ports.1); b.u8(proto)
        b.u32(bytes); b.u32(packets); b.u32(last - 1000); b.u32(last); b.u8(direction)
        return b.bytes
    }

    static func datagram(_ flowsets: [[UInt8]], sequence: UInt32, sourceID: UInt32 = 0) -> [UInt8] {
        FlowDatagrams.v9(uptime: 3_600_000, unixSeconds: 1_700_000_000, sequence: sequence, sourceID: sourceID, flowsets: flowsets)
    }

    @Test func templateAndDataWithUptimeTimesAndDirection() throws {
        var d = Decoded()
        d.netflow(Self.datagram([
            FlowDatagrams.v9Templates([(260, Self.fields)]),
            FlowDatagrams.set(id: 260, Self.record("2001:db8:1000::7", "2001:db8::1", ports: (51000, 443), bytes: 4000, packets: 4, last: 3_590_000)
                + Self.record("2001:db8::1", "2001:db8:1000::7", ports: (443, 51000), bytes: 9000, packets: 6, last: 3_599_000, direction: 1)),
        ], sequence: 1))
        #expect(d.records.count == 2)
        let r = try #require(d.records.first)
        #expect(r.tuple == "2001:db8:1000::7 2001:db8::1 6 51000 443")
        #expect(r.packets == 4 && r.bytes == 4000 && r.direction == .ingress)
        // Exported at 1,700,000,000 s with uptime 3,600 s; the last packet at uptime 3,590 s.
        #expect(r.end == 1_699_999_990_000_000_000)
        #expect(d.records[1].direction == .egress)
        #expect(d.errors().isEmpty)
    }

    @Test func optionsDeclareASamplingIntervalForTheSourceID() throws {
        var d = Decoded()
        let options = FlowDatagrams.v9OptionsTemplate(id: 300, scope: [F(1, 4)], fields: [F(E.samplingInterval, 4), F(E.samplingAlgorithm, 1)])
        var o = FlowDatagrams.Bytes()
        o.u32(0); o.u32(64); o.u8(1)
        d.netflow(Self.datagram([options, FlowDatagrams.set(id: 300, o.bytes), FlowDatagrams.v9Templates([(260, Self.fields)])], sequence: 1, sourceID: 7))
        d.netflow(Self.datagram([FlowDatagrams.set(id: 260, Self.record("2001:db8:1000::7", "2001:db8::1", ports: (51000, 443), bytes: 1500, packets: 1, last: 3_599_000))],
                                sequence: 2, sourceID: 7))
        let r = try #require(d.records.first)
        #expect(r.samplingRate == 64 && r.scaledPackets == 64 && r.scaledBytes == 96_000)
        // Another source id of the same exporter has neither the template nor the rate.
        d.netflow(Self.datagram([FlowDatagrams.set(id: 260, [UInt8](repeating: 1, count: 54))], sequence: 1, sourceID: 8))
        #expect(d.records.count == 1 && d.health()?.missingTemplate == 1)
    }

    @Test func aSamplerIDPicksTheRateItsOptionsDeclared() {
        var d = Decoded()
        let options = FlowDatagrams.v9OptionsTemplate(id: 300, scope: [F(1, 4)], fields: [F(E.samplerID, 1), F(50, 4)])
        var o = FlowDatagrams.Bytes()
        o.u32(0); o.u8(3); o.u32(1000)
        let fields = [F(E.sourceIPv4, 4), F(E.destinationIPv4, 4), F(E.packets, 4), F(E.octets, 4), F(E.samplerID, 1)]
        var b = FlowDatagrams.Bytes()
        b.address("198.51.100.7"); b.address("10.0.0.1"); b.u32(1); b.u32(100); b.u8(3)
        d.netflow(Self.datagram([options, FlowDatagrams.set(id: 300, o.bytes), FlowDatagrams.v9Templates([(261, fields)]),
                                 FlowDatagrams.set(id: 261, b.bytes)], sequence: 1))
        #expect(d.records.map(\.samplingRate) == [1000])
    }

    @Test func sequenceNumbersCountDatagrams() {
        var d = Decoded()
        let template = FlowDatagrams.v9Templates([(260, Self.fields)])
        for sequence: UInt32 in [5, 6, 7, 9, 10] { d.netflow(Self.datagram([template], sequence: sequence)) }
        #expect(d.health()?.sequenceGaps == 1)
        // Source ids are numbered apart.
        d.netflow(Self.datagram([template], sequence: 100, sourceID: 2))
        d.netflow(Self.datagram([template], sequence: 101, sourceID: 2))
        #expect(d.health()?.sequenceGaps == 1)
    }

    @Test func badTemplatesAreRefused() {
        var d = Decoded()
        // A template id below 256, a field count of 0, and an options template whose scope is not whole fields.
        var low = FlowDatagrams.Bytes()
        low.u16(10); low.u16(1); low.u16(8); low.u16(4)
        var empty = FlowDatagrams.Bytes()
        empty.u16(300); empty.u16(0)
        var options = FlowDatagrams.Bytes()
        options.u16(301); options.u16(3); options.u16(4); options.u16(1); options.u16(4)
        d.netflow(Self.datagram([FlowDatagrams.set(id: 0, low.bytes), FlowDatagrams.set(id: 0, empty.bytes), FlowDatagrams.set(id: 1, options.bytes)], sequence: 1))
        #expect(d.errors() == ["bad_template": 3])
        #expect(d.health()?.templates == 0)
    }
}
