import Testing
import TrafficCore
import TrafficTestSupport
@testable import TrafficFlows

/// NetFlow v5: a fixed header and 48-byte IPv4 records, timed by the exporter's uptime.
@Suite struct NetFlowV5Tests {
    typealias R = FlowDatagrams.V5Record

    @Test func recordsCarryAddressesPortsCountsAndEndTime() throws {
        var d = Decoded()
        d.netflow(FlowDatagrams.netflowV5([
            R(source: "198.51.100.7", destination: "10.0.0.1", sourcePort: 51000, destinationPort: 443, proto: 6,
              packets: 10, bytes: 5000, first: 90_000, last: 95_000),
            // An ICMP echo reply (type 0 in the destination port's high byte) from the server.
            R(source: "10.0.0.1", destination: "198.51.100.7", sourcePort: 0, destinationPort: 0x0000, proto: 1,
              packets: 2, bytes: 168, first: 99_000, last: 99_500),
        ], sequence: 0, uptime: 100_000, unixSeconds: 1_700_000_000, nanoseconds: 250_000_000))
        #expect(d.records.count == 2)
        let tcp = try #require(d.records.first)
        #expect(tcp.tuple == "198.51.100.7 10.0.0.1 6 51000 443")
        #expect(tcp.packets == 10 && tcp.bytes == 5000 && tcp.samplingRate == 1)
        // Exported at 1,700,000,000.25 s, uptime 100 s; the last packet at uptime 95 s.
        #expect(tcp.end == 1_699_999_995_250_000_000)
        #expect(tcp.packet.hasPorts && tcp.direction == .unknown)
        let icmp = d.records[1]
        #expect(icmp.packet.ipProtocol == 1 && !icmp.packet.hasPorts && icmp.packet.isReply)
        #expect(d.health()?.datagrams == 1 && d.errors().isEmpty)
    }

    @Test func theHeaderSamplingIntervalScalesCounts() {
        var d = Decoded()
        d.netflow(FlowDatagrams.netflowV5(
            [R(source: "198.51.100.7", destination: "10.0.0.1", sourcePort: 51000, destinationPort: 443, packets: 3, bytes: 1200)],
            sequence: 0, unixSeconds: 1_700_000_000, samplingInterval: 100))
        #expect(d.records.first?.samplingRate == 100)
        #expect(d.records.first?.scaledPackets == 300 && d.records.first?.scaledBytes == 120_000)
    }

    @Test func sequenceGapsAreFlowsTheExporterNumberedButNeverSent() {
        var d = Decoded()
        let two = [R(source: "198.51.100.7", destination: "10.0.0.1"), R(source: "198.51.100.8", destination: "10.0.0.1")]
        d.netflow(FlowDatagrams.netflowV5(two, sequence: 100, unixSeconds: 1_700_000_000))
        d.netflow(FlowDatagrams.netflowV5(two, sequence: 102, unixSeconds: 1_700_000_000))  // follows on
        #expect(d.health()?.sequenceGaps == 0)
        d.netflow(FlowDatagrams.netflowV5(two, sequence: 110, unixSeconds: 1_700_000_000))  // 104...109 lost
        #expect(d.health()?.sequenceGaps == 1)
        d.netflow(FlowDatagrams.netflowV5(two, sequence: 0, unixSeconds: 1_700_000_000))    // a restart: no gap
        d.netflow(FlowDatagrams.netflowV5(two, sequence: 2, unixSeconds: 1_700_000_000))
        #expect(d.health()?.sequenceGaps == 1)
        #expect(d.records.count == 10)
    }

    @Test func aCountPastTheDatagramIsTruncatedAndNothingIsCounted() {
        var d = Decoded()
        d.netflow(FlowDatagrams.netflowV5([R(source: "198.51.100.7", destination: "10.0.0.1")], sequence: 0, unixSeconds: 1, count: 5))
        d.netflow(Array(FlowDatagrams.netflowV5([], sequence: 0, unixSeconds: 1).prefix(20)))
        #expect(d.records.isEmpty)
        #expect(d.errors() == ["truncated": 2])
    }

    @Test func aRecordWithNoPacketsIsABadRecord() {
        var d = Decoded()
        d.netflow(FlowDatagrams.netflowV5([
            R(source: "198.51.100.7", destination: "10.0.0.1", packets: 0, bytes: 0),
            R(source: "198.51.100.8", destination: "10.0.0.1", packets: 1, bytes: 40),
        ], sequence: 0, unixSeconds: 1))
        #expect(d.records.map(\.packet.source) == [addr("198.51.100.8")])
        #expect(d.errors() == ["bad_record": 1])
    }

    @Test func otherVersionsAreRefused() {
        var d = Decoded()
        var datagram = FlowDatagrams.netflowV5([R(source: "198.51.100.7", destination: "10.0.0.1")], sequence: 0, unixSeconds: 1)
        datagram[1] = 7
        d.netflow(datagram)
        d.netflow([])
        d.netflow([0])
        #expect(d.records.isEmpty)
        #expect(d.errors() == ["bad_version": 1, "truncated": 2])
        #expect(d.health()?.datagrams == 3)
    }
}
