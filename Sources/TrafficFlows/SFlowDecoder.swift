import TrafficCore

/// Decodes sFlow v5 datagrams: flow samples and expanded flow samples, each one sampled
/// packet standing for `sampling_rate` packets. A sample's raw packet header record is
/// decoded with the same `PacketDecoder` as captured frames (Ethernet, IPv4 or IPv6
/// headers), so attribution, TCP flags and DNS see what a capture would; its bytes are the
/// frame's (`frame_length - stripped`). Without a header record, a sampled IPv4 or IPv6
/// record gives the addresses, ports and the IP packet's length. Counter samples and other
/// records are skipped by their length. Datagram sequence numbers are checked per
/// (exporter, sub-agent).
///
/// ```swift
/// let decoder = SFlowDecoder(exporters: ExporterTable())
/// decoder.decode(datagram, from: agentAddress, at: now) { record in
///     print(record.packet.kind, record.samplingRate)
/// }
/// ```
public struct SFlowDecoder {
    public let exporters: ExporterTable
    let ethernet = PacketDecoder(linkType: .ethernet)
    let ipv4 = PacketDecoder(linkType: .ipv4)
    let ipv6 = PacketDecoder(linkType: .ipv6)

    public init(exporters: ExporterTable) {
        self.exporters = exporters
    }

    /// Decodes one datagram from `address`, received at `now` (nanoseconds since the Unix
    /// epoch: sFlow samples carry no time of their own), handing each sample to `emit`.
    public func decode(_ datagram: UnsafeRawBufferPointer, from address: IPAddress, at now: Int64, emit: (inout FlowRecord) -> Void) {
        decode(datagram, exporter: exporters.exporter(address), at: now, emit: emit)
    }

    func decode(_ datagram: UnsafeRawBufferPointer, exporter: ExporterState, at now: Int64, emit: (inout FlowRecord) -> Void) {
        exporter.datagrams &+= 1
        exporter.lastSeen = now
        guard let d = DatagramBytes(datagram), d.has(0, 8) else { return exporter.count(.truncated) }
        guard d.u32(0) == 5 else { return exporter.count(.badVersion) }
        let addressLength: Int
        switch d.u32(4) {
        case 1: addressLength = 4
        case 2: addressLength = 16
        default: return exporter.count(.badSample)
        }
        let fixed = 8 + addressLength
        guard d.has(fixed, 16) else { return exporter.count(.truncated) }
        let subAgent = d.u32(fixed)
        let sequence = d.u32(fixed + 4)
        let samples = Int(d.u32(fixed + 12))
        if let domain = exporter.domain(UInt64(subAgent)), domain.sequence.check(sequence, records: nil, countsRecords: false) {
            exporter.sequenceGaps &+= 1
        }
        var offset = fixed + 16
        var record = FlowRecord()
        record.end = now
        for _ in 0..<min(samples, d.count / 8) {
            guard d.has(offset, 8) else { return exporter.count(.truncated) }
            let format = d.u32(offset)
            let length = Int(d.u32(offset + 4))
            let body = offset + 8
            guard d.has(body, length) else { return exporter.count(.badLength) }
            switch format {
            case 1: decodeFlowSample(d, at: body, end: body + length, expanded: false, exporter: exporter, record: &record, emit: emit)
            case 3: decodeFlowSample(d, at: body, end: body + length, expanded: true, exporter: exporter, record: &record, emit: emit)
            default: break  // counter samples, enterprise formats: skipped by their length
            }
            offset = body + length
        }
    }

    /// One flow sample: its sampling rate, then flow records, of which the raw packet header
    /// (format 1) is preferred, else a sampled IPv4 (3) or IPv6 (4) record.
    func decodeFlowSample(
        _ d: DatagramBytes, at start: Int, end: Int, expanded: Bool, exporter: ExporterState, record: inout FlowRecord,
        emit: (inout FlowRecord) -> Void
    ) {
        // sequence, source id (expanded: type and index), rate, pool, drops, input, output
        // (expanded: format and value each), record count.
        let head = expanded ? 44 : 32
        guard end - start >= head else { return exporter.count(.badLength) }
        let rate = UInt64(d.u32(start + (expanded ? 12 : 8)))
        let count = Int(d.u32(start + head - 4))
        var offset = start + head
        var header: (protocol: UInt32, frameLength: UInt32, stripped: UInt32, at: Int, length: Int)?
        var sampledIP: (at: Int, v6: Bool)?
        for _ in 0..<min(count, (end - offset) / 8) {
            guard end - offset >= 8 else { break }
            let format = d.u32(offset)
            let length = Int(d.u32(offset + 4))
            let body = offset + 8
            guard length <= end - body else { return exporter.count(.badLength) }
            switch format {
            case 1 where length >= 16:
                let headerLength = Int(d.u32(body + 12))
                guard headerLength <= length - 16 else { return exporter.count(.badLength) }
                header = (d.u32(body), d.u32(body + 4), d.u32(body + 8), body + 16, headerLength)
            case 3 where length >= 32: sampledIP = (body, false)
            case 4 where length >= 56: sampledIP = (body, true)
            default: break
            }
            offset = body + length
        }
        record.samplingRate = max(1, rate)
        record.packets = 1
        record.direction = .unknown
        if let header {
            let frame = d.slice(header.at, header.length)
            switch header.protocol {
            case 1: record.packet = ethernet?.decode(frame) ?? DecodedPacket()
            case 11: record.packet = ipv4?.decode(frame) ?? DecodedPacket()
            case 12: record.packet = ipv6?.decode(frame) ?? DecodedPacket()
            default: record.packet = DecodedPacket()  // another link layer: not IP as far as trafficmon can tell
            }
            record.bytes = UInt64(header.frameLength &- min(header.stripped, header.frameLength))
        } else if let ip = sampledIP {
            let o = ip.at
            let proto = UInt8(truncatingIfNeeded: d.u32(o + 4))
            let portsAt = ip.v6 ? o + 40 : o + 16
            let source = ip.v6 ? IPAddress(ipv6High: d.u64(o + 8), low: d.u64(o + 16)) : IPAddress(ipv4: d.u32(o + 8))
            let destination = ip.v6 ? IPAddress(ipv6High: d.u64(o + 24), low: d.u64(o + 32)) : IPAddress(ipv4: d.u32(o + 12))
            let destinationPort = UInt16(truncatingIfNeeded: d.u32(portsAt + 4))
            // ICMP: sFlow carries the type in the source "port", the code in the destination's.
            record.packet = DecodedPacket(
                flowFrom: source, to: destination, ipProtocol: proto, sourcePort: UInt16(truncatingIfNeeded: d.u32(portsAt)),
                destinationPort: destinationPort, icmpType: UInt8(truncatingIfNeeded: d.u32(portsAt)))
            record.bytes = UInt64(d.u32(o))
        } else {
            return exporter.count(.badSample)
        }
        emit(&record)
    }
}
