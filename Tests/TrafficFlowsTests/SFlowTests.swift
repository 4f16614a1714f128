import Testing
import TrafficCore
import TrafficTestSupport
@testable import TrafficFlows

/// sFlow v5: flow samples and expanded flow samples whose raw packet headers go through the
/// packet decoder, sampled IPv4 records, sampling rates, skipped counter samples, datagram
/// sequence numbers per sub-agent.
@Suite struct SFlowTests {
    static let client = IPAddress("198.51.100.7")!
    static let server = IPAddress("10.0.0.1")!

    /// An Ethernet frame of a TCP segment from the client's port 51000 to the server's 443,
    /// with a SYN, cut to `cut` bytes as an exporter's header record would be.
    static func frame(cut: Int = 128, vlan: Bool = false) -> [UInt8] {
        var tcp = FrameBuilder.ports(51000, 443, headerLength: 20, payload: 1000)
        tcp[12] = 5 << 4
        tcp[13] = 0x02
        let frame = FrameBuilder.ethernet(vlans: vlan ? [100] : [], ip: FrameBuilder.ipv4(src: client, dst: server, proto: 6, payload: tcp))
        return Array(frame.prefix(cut))
    }

    @Test func aRawHeaderSampleIsDecodedLikeACapturedFrame() throws {
        var d = Decoded()
        let frame = Self.frame()
        d.sflow(FlowDatagrams.sflow(sequence: 1, samples: [
            FlowDatagrams.sflowFlowSample(rate: 512, records: [FlowDatagrams.sflowRawHeader(frame, frameLength: 1058, stripped: 4)]),
            FlowDatagrams.sflowCounterSample(),
            FlowDatagrams.sflowExpandedFlowSample(rate: 2, records: [FlowDatagrams.sflowRawHeader(Self.frame(cut: 60, vlan: true), frameLength: 1058)]),
        ]), at: 1_700_000_000_123_000_000)
        #expect(d.records.count == 2)
        let r = try #require(d.records.first)
        #expect(r.packet.kind == .ip && r.packet.source == Self.client && r.packet.destination == Self.server)
        #expect(r.packet.sourcePort == 51000 && r.packet.destinationPort == 443)
        #expect(TCPFlags(rawValue: r.packet.tcpFlags).isKnown)
        // The frame as it was on the wire, less the 4 FCS bytes the agent stripped.
        #expect(r.packets == 1 && r.bytes == 1054 && r.samplingRate == 512 && r.scaledBytes == 1054 * 512)
        #expect(r.end == 1_700_000_000_123_000_000)
        #expect(d.records[1].samplingRate == 2 && d.records[1].packet.destinationPort == 443)
        #expect(d.errors().isEmpty)
    }

    @Test func nonIPAndUnreadableHeadersStayInTheirBuckets() {
        var d = Decoded()
        d.sflow(FlowDatagrams.sflow(sequence: 1, samples: [
            FlowDatagrams.sflowFlowSample(rate: 10, records: [FlowDatagrams.sflowRawHeader(FrameBuilder.arp, frameLength: 60)]),
            FlowDatagrams.sflowFlowSample(rate: 10, records: [FlowDatagrams.sflowRawHeader(Array(Self.frame().prefix(20)), frameLength: 1058)]),
            FlowDatagrams.sflowFlowSample(rate: 10, records: [FlowDatagrams.sflowRawHeader([1, 2, 3, 4], frameLength: 100, headerProtocol: 2)]),
        ]))
        #expect(d.records.map(\.packet.kind) == [.nonIP, .malformed, .nonIP])
    }

    @Test func aSampledIPv4RecordStandsInWithoutAHeader() throws {
        var d = Decoded()
        d.sflow(FlowDatagrams.sflow(sequence: 1, samples: [
            FlowDatagrams.sflowFlowSample(rate: 100, records: [
                FlowDatagrams.sflowSampledIPv4(length: 1500, proto: 17, source: "10.0.0.1", destination: "198.51.100.7", sourcePort: 53, destinationPort: 40000),
            ]),
        ]))
        let r = try #require(d.records.first)
        #expect(r.tuple == "10.0.0.1 198.51.100.7 17 53 40000")
        #expect(r.bytes == 1500 && r.samplingRate == 100)
    }

    @Test func sequenceGapsPerSubAgent() {
        var d = Decoded()
        let sample = FlowDatagrams.sflowFlowSample(rate: 1, records: [FlowDatagrams.sflowRawHeader(Self.frame(), frameLength: 1058)])
        for sequence: UInt32 in [1, 2, 3, 6, 7] { d.sflow(FlowDatagrams.sflow(subAgent: 0, sequence: sequence, samples: [sample])) }
        for sequence: UInt32 in [50, 51] { d.sflow(FlowDatagrams.sflow(subAgent: 1, sequence: sequence, samples: [sample])) }
        #expect(d.health()?.sequenceGaps == 1)
        #expect(d.records.count == 7)
    }

    @Test func brokenDatagramsAreCountedByReason() {
        var d = Decoded()
        let sample = FlowDatagrams.sflowFlowSample(rate: 1, records: [FlowDatagrams.sflowRawHeader(Self.frame(), frameLength: 1058)])
        var badAddress = FlowDatagrams.sflow(sequence: 1, samples: [sample])
        badAddress[7] = 9
        var longSample = FlowDatagrams.sflow(sequence: 2, samples: [sample])
        longSample[28 + 7] = 0xFF  // the sample's length
        var version4 = FlowDatagrams.sflow(sequence: 3, samples: [sample])
        version4[3] = 4
        let noRecords = FlowDatagrams.sflow(sequence: 4, samples: [FlowDatagrams.sflowFlowSample(rate: 1, records: [])])
        for datagram in [badAddress, longSample, version4, noRecords, Array(FlowDatagrams.sflow(sequence: 5, samples: []).prefix(10))] {
            d.sflow(datagram)
        }
        #expect(d.records.isEmpty)
        #expect(d.errors() == ["bad_sample": 2, "bad_length": 1, "bad_version": 1, "truncated": 1])
    }
}
