import Testing
import TrafficCore
import TrafficTestSupport
@testable import TrafficFlows

/// IPFIX (RFC 7011): templates per (exporter, observation domain), refresh and withdrawal,
/// options templates declaring sampling, variable-length and enterprise fields, and data
/// that comes before its template.
@Suite struct IPFIXTests {
    typealias F = FlowDatagrams.Field
    typealias E = FlowDatagrams.Element
    static let t0: UInt32 = 1_700_000_000

    /// Source and destination IPv4, ports, protocol, octets, packets, flowEndMilliseconds.
    static let v4Fields = [
        F(E.sourceIPv4, 4), F(E.destinationIPv4, 4), F(E.sourcePort, 2), F(E.destinationPort, 2), F(E.proto, 1),
        F(E.octets, 8), F(E.packets, 4), F(E.flowEndMilliseconds, 8),
    ]

    static func v4Record(_ source: String, _ destination: String, ports: (UInt16, UInt16), proto: UInt8 = 6,
                         bytes: UInt64, packets: UInt32, endMilliseconds: UInt64) -> [UInt8] {
        var b = FlowDatagrams.Bytes()
        b.address(source); b.address(destination)
        b.u16(ports.0); b.u16(ports.1); b.u8(proto)
        b.u64(bytes); b.u32(packets); b.u64(endMilliseconds)
        return b.bytes
    }

    static func message(_ sets: [[UInt8]], sequence: UInt32 = 0, domain: UInt32 = 1) -> [UInt8] {
        FlowDatagrams.ipfix(exportTime: t0, sequence: sequence, domain: domain, sets: sets)
    }

    static let record = v4Record("198.51.100.7", "10.0.0.1", ports: (51000, 443), bytes: 9000, packets: 12, endMilliseconds: 1_700_000_003_500)

    @Test func aTemplateThenItsData() throws {
        var d = Decoded()
        d.netflow(Self.message([
            FlowDatagrams.ipfixTemplates([(256, Self.v4Fields)]),
            FlowDatagrams.set(id: 256, Self.record + Self.v4Record("2.2.2.2", "10.0.0.2", ports: (53, 40000), proto: 17, bytes: 80, packets: 1, endMilliseconds: 1_700_000_004_000)),
        ]))
        #expect(d.records.count == 2)
        let r = try #require(d.records.first)
        #expect(r.tuple == "198.51.100.7 10.0.0.1 6 51000 443")
        #expect(r.packets == 12 && r.bytes == 9000 && r.samplingRate == 1)
        #expect(r.end == 1_700_000_003_500_000_000)
        #expect(d.records[1].tuple == "2.2.2.2 10.0.0.2 17 53 40000")
        #expect(d.health()?.templates == 1 && d.errors().isEmpty)
    }

    @Test func dataBeforeItsTemplateIsCountedAsWaitingNotGuessed() {
        var d = Decoded()
        d.netflow(Self.message([FlowDatagrams.set(id: 256, Self.record)], sequence: 0))
        #expect(d.records.isEmpty)
        #expect(d.health()?.missingTemplate == 1)
        d.netflow(Self.message([FlowDatagrams.ipfixTemplates([(256, Self.v4Fields)])], sequence: 1))
        d.netflow(Self.message([FlowDatagrams.set(id: 256, Self.record)], sequence: 1))
        #expect(d.records.count == 1)
        #expect(d.health()?.missingTemplate == 1 && d.health()?.sequenceGaps == 0)
    }

    @Test func templatesBelongToTheirExporterAndDomain() {
        var d = Decoded()
        d.netflow(Self.message([FlowDatagrams.ipfixTemplates([(256, Self.v4Fields)])], domain: 1))
        // The same template id in another domain of the same exporter, and from another exporter: unknown.
        d.netflow(Self.message([FlowDatagrams.set(id: 256, Self.record)], domain: 2))
        d.netflow(Self.message([FlowDatagrams.set(id: 256, Self.record)], domain: 1), from: "192.0.2.99")
        #expect(d.records.isEmpty)
        #expect(d.health()?.missingTemplate == 1 && d.health("192.0.2.99")?.missingTemplate == 1)
        d.netflow(Self.message([FlowDatagrams.set(id: 256, Self.record)], domain: 1))
        #expect(d.records.count == 1)
    }

    @Test func aRefreshReplacesTheTemplateAndAWithdrawalRemovesIt() {
        var d = Decoded()
        d.netflow(Self.message([FlowDatagrams.ipfixTemplates([(256, Self.v4Fields)])]))
        // Refreshed with the counters first.
        let reordered = [F(E.packets, 4), F(E.octets, 8)] + Self.v4Fields.filter { $0.element != E.packets && $0.element != E.octets }
        var b = FlowDatagrams.Bytes()
        b.u32(3); b.u64(300)
        b.address("198.51.100.9"); b.address("10.0.0.3"); b.u16(40000); b.u16(80); b.u8(6); b.u64(1_700_000_001_000)
        d.netflow(Self.message([FlowDatagrams.ipfixTemplates([(256, reordered)]), FlowDatagrams.set(id: 256, b.bytes)]))
        #expect(d.records.map(\.tuple) == ["198.51.100.9 10.0.0.3 6 40000 80"])
        #expect(d.records.first?.packets == 3 && d.records.first?.bytes == 300)
        #expect(d.health()?.templates == 1)
        d.netflow(Self.message([FlowDatagrams.ipfixWithdrawal(id: 256), FlowDatagrams.set(id: 256, b.bytes)]))
        #expect(d.records.count == 1 && d.health()?.templates == 0 && d.health()?.missingTemplate == 1)
        // Withdrawing every template of the domain at once (the set's own id).
        d.netflow(Self.message([FlowDatagrams.ipfixTemplates([(256, Self.v4Fields), (257, Self.v4Fields)])]))
        #expect(d.health()?.templates == 2)
        d.netflow(Self.message([FlowDatagrams.ipfixWithdrawal(id: 2)]))
        #expect(d.health()?.templates == 0 && d.errors().isEmpty)
    }

    @Test func variableLengthAndEnterpriseFieldsAreSkippedByTheirLength() throws {
        var d = Decoded()
        let fields = [F(E.interfaceName, 0xFFFF), F(E.sourceIPv4, 4), F(1234, 6, enterprise: 29305), F(E.destinationIPv4, 4),
                      F(E.packets, 4), F(E.octets, 4), F(E.interfaceName, 0xFFFF)]
        var b = FlowDatagrams.Bytes()
        b.u8(4); b.append(Array("eth0".utf8))                    // short form
        b.address("198.51.100.7")
        b.append([1, 2, 3, 4, 5, 6])                             // enterprise 29305, element 1234
        b.address("10.0.0.1")
        b.u32(5); b.u32(700)
        b.u8(255); b.u16(300); b.append([UInt8](repeating: 0x41, count: 300))  // long form
        d.netflow(Self.message([FlowDatagrams.ipfixTemplates([(300, fields)]), FlowDatagrams.set(id: 300, b.bytes + b.bytes)]))
        #expect(d.records.count == 2)
        let r = try #require(d.records.first)
        #expect(r.packet.source == addr("198.51.100.7") && r.packet.destination == addr("10.0.0.1"))
        #expect(r.packets == 5 && r.bytes == 700)
        // No time field: the export time.
        #expect(r.end == Int64(Self.t0) * 1_000_000_000)
        #expect(d.errors().isEmpty)
    }

    @Test func optionsDeclareTheDomainsSamplingAndStartTime() throws {
        var d = Decoded()
        let options = FlowDatagrams.ipfixOptionsTemplate(
            id: 400, scope: [F(149, 4)],  // observationDomainId
            fields: [F(E.systemInitMilliseconds, 8), F(E.samplingPacketInterval, 4), F(E.samplingPacketSpace, 4)])
        var o = FlowDatagrams.Bytes()
        o.u32(1); o.u64(1_699_999_000_000); o.u32(1); o.u32(9)  // 1 packet taken, 9 skipped: 1 in 10
        let fields = [F(E.sourceIPv4, 4), F(E.destinationIPv4, 4), F(E.packets, 4), F(E.octets, 4), F(E.lastSwitched, 4)]
        var b = FlowDatagrams.Bytes()
        b.address("198.51.100.7"); b.address("10.0.0.1"); b.u32(2); b.u32(120); b.u32(60_000)
        d.netflow(Self.message([options, FlowDatagrams.set(id: 400, o.bytes), FlowDatagrams.ipfixTemplates([(256, fields)]),
                                FlowDatagrams.set(id: 256, b.bytes)]))
        let r = try #require(d.records.first)
        #expect(r.samplingRate == 10 && r.scaledPackets == 20 && r.scaledBytes == 1200)
        // flowEndSysUpTime 60 s after the exporter started.
        #expect(r.end == 1_699_999_060_000_000_000)
        #expect(d.health()?.templates == 2)
    }

    @Test func aRecordsOwnSelectorPicksItsSamplerRate() throws {
        var d = Decoded()
        let options = FlowDatagrams.ipfixOptionsTemplate(id: 400, scope: [F(302, 4)], fields: [F(E.samplingPacketInterval, 4), F(E.samplingPacketSpace, 4)])
        var o = FlowDatagrams.Bytes()
        o.u32(7); o.u32(1); o.u32(99)
        let fields = [F(E.sourceIPv4, 4), F(E.destinationIPv4, 4), F(E.packets, 4), F(E.octets, 4), F(302, 4)]
        var b = FlowDatagrams.Bytes()
        b.address("198.51.100.7"); b.address("10.0.0.1"); b.u32(1); b.u32(60); b.u32(7)
        var unknownSelector = FlowDatagrams.Bytes()
        unknownSelector.address("198.51.100.7"); unknownSelector.address("10.0.0.1"); unknownSelector.u32(1); unknownSelector.u32(60); unknownSelector.u32(8)
        d.netflow(Self.message([options, FlowDatagrams.set(id: 400, o.bytes), FlowDatagrams.ipfixTemplates([(256, fields)]),
                                FlowDatagrams.set(id: 256, b.bytes + unknownSelector.bytes)]))
        #expect(d.records.map(\.samplingRate) == [100, 1])
    }

    @Test func badTemplatesAndRecordsAreCountedAndTheRestOfTheDatagramStillCounts() {
        var d = Decoded()
        // A zero-length field: refused; the good template after it in another set still loads.
        d.netflow(Self.message([
            FlowDatagrams.ipfixTemplates([(256, [F(E.sourceIPv4, 4), F(E.destinationIPv4, 0)])]),
            FlowDatagrams.ipfixTemplates([(257, Self.v4Fields)]),
            FlowDatagrams.set(id: 257, Self.record),
        ]))
        #expect(d.records.count == 1)
        #expect(d.errors() == ["bad_template": 1])
        // A set whose length runs past the message.
        var long = Self.message([FlowDatagrams.set(id: 257, Self.record)])
        long[16 + 3] = 200
        d.netflow(long)
        // A message length past the datagram.
        var cut = Self.message([FlowDatagrams.set(id: 257, Self.record)])
        cut.removeLast(4)
        d.netflow(cut)
        // A variable-length field whose length runs past the set.
        d.netflow(Self.message([FlowDatagrams.ipfixTemplates([(258, [F(E.sourceIPv4, 4), F(E.interfaceName, 0xFFFF)])]),
                                FlowDatagrams.set(id: 258, [10, 0, 0, 1, 200, 1, 2], pad: false)]))
        #expect(d.records.count == 1)
        #expect(d.errors() == ["bad_template": 1, "bad_length": 2, "truncated": 1])
    }

    @Test func templatesPerExporterAreCappedAndOtherExportersAreUnaffected() {
        var d = Decoded()
        // 65,535 template ids from one exporter, 64 per message (a hostile or broken exporter).
        var id: UInt16 = 256
        var messages = 0
        while id < 65535 {
            var templates: [(id: UInt16, fields: [FlowDatagrams.Field])] = []
            while templates.count < 64 && id < 65535 {
                templates.append((id, Self.v4Fields))
                id += 1
            }
            d.netflow(Self.message([FlowDatagrams.ipfixTemplates(templates)]), from: "192.0.2.66")
            messages += 1
        }
        #expect(d.health("192.0.2.66")?.templates == ExporterTable.templatesPerExporter)
        #expect((d.health("192.0.2.66")?.errors["template_limit"] ?? 0) == UInt64(65535 - 256 - ExporterTable.templatesPerExporter))
        // A well-behaved exporter still gets its template and data through.
        d.netflow(Self.message([FlowDatagrams.ipfixTemplates([(256, Self.v4Fields)]), FlowDatagrams.set(id: 256, Self.record)]))
        #expect(d.records.count == 1 && d.errors().isEmpty)
        #expect(d.table.templateCount == ExporterTable.templatesPerExporter + 1)
    }

    @Test func sequenceNumbersCountDataRecords() {
        var d = Decoded()
        let template = FlowDatagrams.ipfixTemplates([(256, Self.v4Fields)])
        d.netflow(Self.message([template, FlowDatagrams.set(id: 256, Self.record + Self.record)], sequence: 10))
        d.netflow(Self.message([FlowDatagrams.set(id: 256, Self.record)], sequence: 12))   // RFC 7011: 10 + 2
        d.netflow(Self.message([FlowDatagrams.set(id: 256, Self.record)], sequence: 14))   // 13 was lost
        #expect(d.health()?.sequenceGaps == 1)
        // softflowd numbers a message with its own records included: 14 + 3.
        d.netflow(Self.message([FlowDatagrams.set(id: 256, Self.record + Self.record + Self.record)], sequence: 17))
        #expect(d.health()?.sequenceGaps == 1)
        #expect(d.records.count == 7)
    }
}
