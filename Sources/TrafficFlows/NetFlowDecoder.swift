import TrafficCore

/// Decodes NetFlow v5, NetFlow v9 and IPFIX datagrams (told apart by their version field)
/// into flow records, keeping each exporter's templates, sequence numbers and sampling in
/// an `ExporterTable`. A datagram that cannot be decoded, or the part of it from a faulty
/// set on, is counted by reason for its exporter and dropped; nothing in it can make the
/// decoder read outside it, allocate without bound or stop.
///
/// ```swift
/// let decoder = NetFlowDecoder(exporters: ExporterTable())
/// decoder.decode(datagram, from: exporterAddress, at: now) { record in
///     print(record.packet.source, record.scaledBytes)
/// }
/// ```
public struct NetFlowDecoder {
    public let exporters: ExporterTable

    public init(exporters: ExporterTable) {
        self.exporters = exporters
    }

    /// Decodes one datagram from `address`, received at `now` (nanoseconds since the Unix
    /// epoch), handing each flow record to `emit`.
    public func decode(_ datagram: UnsafeRawBufferPointer, from address: IPAddress, at now: Int64, emit: (inout FlowRecord) -> Void) {
        decode(datagram, exporter: exporters.exporter(address), at: now, emit: emit)
    }

    func decode(_ datagram: UnsafeRawBufferPointer, exporter: ExporterState, at now: Int64, emit: (inout FlowRecord) -> Void) {
        exporter.datagrams &+= 1
        exporter.lastSeen = now
        guard let d = DatagramBytes(datagram), d.has(0, 2) else { return exporter.count(.truncated) }
        switch d.u16(0) {
        case 5: decodeV5(d, exporter: exporter, emit: emit)
        case 9: decodeV9(d, exporter: exporter, emit: emit)
        case 10: decodeIPFIX(d, exporter: exporter, emit: emit)
        default: exporter.count(.badVersion)
        }
    }

    // MARK: NetFlow v5

    /// A v5 datagram: a 24-byte header (with the sampling interval) and `count` 48-byte
    /// IPv4 flow records timed by the exporter's uptime.
    func decodeV5(_ d: DatagramBytes, exporter: ExporterState, emit: (inout FlowRecord) -> Void) {
        guard d.has(0, 24) else { return exporter.count(.truncated) }
        let count = Int(d.u16(2))
        guard d.has(24, count * 48) else { return exporter.count(.truncated) }
        let uptime = d.u32(4)
        let exportTime = Int64(d.u32(8)) * 1_000_000_000 + Int64(min(d.u32(12), 999_999_999))
        let sequence = d.u32(16)
        let engine = UInt64(d.u16(20))
        // The top two bits say the sampling mode, the other 14 the interval.
        let interval = UInt64(d.u16(22) & 0x3FFF)
        if let domain = exporter.domain(5 << 32 | engine),
           domain.sequence.check(sequence, records: UInt32(count), countsRecords: true) {
            exporter.sequenceGaps &+= 1
        }
        var record = FlowRecord()
        record.samplingRate = max(1, interval)
        for i in 0..<count {
            let o = 24 + i * 48
            let proto = d[o + 38]
            let destinationPort = d.u16(o + 34)
            record.packet = DecodedPacket(
                flowFrom: IPAddress(ipv4: d.u32(o)), to: IPAddress(ipv4: d.u32(o + 4)), ipProtocol: proto,
                sourcePort: d.u16(o + 32), destinationPort: destinationPort,
                icmpType: UInt8(truncatingIfNeeded: destinationPort >> 8))
            record.packets = UInt64(d.u32(o + 16))
            record.bytes = UInt64(d.u32(o + 20))
            record.end = Self.end(exportTime: exportTime, uptime: uptime, at: d.u32(o + 28))
            record.direction = .unknown
            guard record.packets > 0 else {
                exporter.count(.badRecord)
                continue
            }
            emit(&record)
        }
    }

    /// The time of uptime `at` (milliseconds), given that the export happened at `exportTime`
    /// and uptime `uptime`. An `at` later than the export (a clock the exporter got wrong,
    /// or a wrapped uptime) is the export time.
    @inline(__always)
    static func end(exportTime: Int64, uptime: UInt32, at: UInt32) -> Int64 {
        exportTime - max(0, Int64(Int32(bitPattern: uptime &- at))) * 1_000_000
    }
}
