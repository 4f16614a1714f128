import TrafficCore

/// NetFlow v9 and IPFIX data records, read through their template.
extension NetFlowDecoder {
    /// Decodes the records of one data set; returns how many it held. A record cut short
    /// (padding excepted) ends the set, counted as `badLength`.
    func decodeData(
        _ d: DatagramBytes, from start: Int, end: Int, template: FlowTemplate, header: Header, exporter: ExporterState,
        emit: (inout FlowRecord) -> Void
    ) -> UInt32 {
        var offset = start
        var count: UInt32 = 0
        var record = FlowRecord()
        while end - offset >= template.minimumRecordLength {
            guard let next = decodeRecord(d, at: offset, end: end, template: template, header: header, exporter: exporter, into: &record)
            else {
                // Bytes left that no record fits: padding when the template has no
                // variable-length field; otherwise a record claimed more than the set holds.
                if template.hasVariableLength { exporter.count(.badLength) }
                break
            }
            offset = next
            count &+= 1
            guard !template.isOptions else { continue }
            guard record.packets > 0, record.packet.kind == .ip else {
                exporter.count(.badRecord)
                continue
            }
            emit(&record)
        }
        return count
    }

    /// Reads one record at `offset` into `record` (or, for an options record, into the
    /// exporter's sampling and time state); returns where the next one starts, or `nil` when
    /// the record does not fit before `end`.
    @inline(__always)
    func decodeRecord(
        _ d: DatagramBytes, at start: Int, end: Int, template: FlowTemplate, header: Header, exporter: ExporterState,
        into record: inout FlowRecord
    ) -> Int? {
        var o = start
        var source4: UInt32?, destination4: UInt32?
        var source6: (UInt64, UInt64)?, destination6: (UInt64, UInt64)?
        var octets: UInt64?, packets: UInt64?, postOctets: UInt64?, postPackets: UInt64?
        var proto: UInt8 = 0, sourcePort: UInt16 = 0, destinationPort: UInt16 = 0
        var icmpType: UInt8?
        var endUptime: UInt32?, endTime: Int64?
        var interval: UInt64?, packetInterval: UInt64?, packetSpace: UInt64?, sampler: UInt64?
        var systemInit: Int64?
        var direction = FlowDirection.unknown
        for field in template.fields {
            var length = Int(field.length)
            if field.length == FlowTemplate.variableLength {
                guard o < end else { return nil }
                length = Int(d[o])
                o += 1
                if length == 255 {
                    guard o + 2 <= end else { return nil }
                    length = Int(d.u16(o))
                    o += 2
                }
            }
            guard length <= end - o else { return nil }
            switch field.role {
            case .skip: break
            case .octets: octets = d.unsigned(o, length: length)
            case .packets: packets = d.unsigned(o, length: length)
            case .postOctets: postOctets = d.unsigned(o, length: length)
            case .postPackets: postPackets = d.unsigned(o, length: length)
            case .protocolIdentifier: if length == 1 { proto = d[o] }
            case .sourcePort: if length == 2 { sourcePort = d.u16(o) }
            case .destinationPort: if length == 2 { destinationPort = d.u16(o) }
            case .sourceIPv4: if length == 4 { source4 = d.u32(o) }
            case .destinationIPv4: if length == 4 { destination4 = d.u32(o) }
            case .sourceIPv6: if length == 16 { source6 = (d.u64(o), d.u64(o + 8)) }
            case .destinationIPv6: if length == 16 { destination6 = (d.u64(o), d.u64(o + 8)) }
            case .icmpTypeCode, .icmpTypeCodeIPv6: if length == 2 { icmpType = d[o] }
            case .icmpType: if length == 1 { icmpType = d[o] }
            case .endSysUpTime: if length == 4 { endUptime = d.u32(o) }
            case .endSeconds: endTime = Self.nanoseconds(seconds: d.unsigned(o, length: length))
            case .endMilliseconds: endTime = Self.nanoseconds(milliseconds: d.unsigned(o, length: length))
            case .endMicroseconds, .endNanoseconds: if length == 8 { endTime = Self.nanoseconds(ntp: d.u64(o)) }
            case .systemInitMilliseconds: systemInit = Self.nanoseconds(milliseconds: d.unsigned(o, length: length))
            case .samplingInterval, .samplerRandomInterval: interval = d.unsigned(o, length: length)
            case .samplerID, .selectorID: sampler = d.unsigned(o, length: length)
            case .samplingPacketInterval: packetInterval = d.unsigned(o, length: length)
            case .samplingPacketSpace: packetSpace = d.unsigned(o, length: length)
            case .flowDirection: if length == 1 { direction = d[o] == 0 ? .ingress : .egress }
            }
            o += length
        }
        // A declared rate: an interval, or PSAMP's "interval packets taken, then space skipped".
        var rate = interval.flatMap { $0 > 0 ? $0 : nil }
        if rate == nil, let packetInterval, packetInterval > 0 {
            rate = (packetInterval &+ (packetSpace ?? 0)) / packetInterval
        }

        if template.isOptions {
            noteOptions(rate: rate, sampler: sampler, systemInit: systemInit, header: header, exporter: exporter)
            return o
        }

        if let s = source4, let t = destination4 {
            record.packet = DecodedPacket(flowFrom: IPAddress(ipv4: s), to: IPAddress(ipv4: t), ipProtocol: proto,
                                          sourcePort: sourcePort, destinationPort: destinationPort,
                                          icmpType: icmpType ?? UInt8(truncatingIfNeeded: destinationPort >> 8))
        } else if let s = source6, let t = destination6 {
            record.packet = DecodedPacket(flowFrom: IPAddress(ipv6High: s.0, low: s.1), to: IPAddress(ipv6High: t.0, low: t.1),
                                          ipProtocol: proto, sourcePort: sourcePort, destinationPort: destinationPort,
                                          icmpType: icmpType ?? UInt8(truncatingIfNeeded: destinationPort >> 8))
        } else {
            record.packet = DecodedPacket()
        }
        record.packets = packets ?? postPackets ?? 0
        record.bytes = octets ?? postOctets ?? 0
        record.direction = direction
        // The record's own rate, else its sampler's, else the domain's, else unsampled.
        if rate == nil, let sampler { rate = exporter.samplers[UInt64(header.domain) << 32 | (sampler & 0xFFFF_FFFF)] }
        record.samplingRate = rate ?? header.domainState?.samplingRate ?? 1
        if let endTime {
            record.end = endTime
        } else if let endUptime {
            if header.version == 9 {
                record.end = Self.end(exportTime: header.exportTime, uptime: header.uptime, at: endUptime)
            } else if let start = header.domainState?.systemInitMilliseconds {
                record.end = start + Int64(endUptime) * 1_000_000
            } else {
                record.end = header.exportTime
            }
        } else {
            record.end = header.exportTime
        }
        return o
    }

    /// An options record: the sampling rate it declares (for its sampler, or for the whole
    /// domain) and the exporter's start time.
    func noteOptions(rate: UInt64?, sampler: UInt64?, systemInit: Int64?, header: Header, exporter: ExporterState) {
        if let rate {
            if let sampler {
                let key = UInt64(header.domain) << 32 | (sampler & 0xFFFF_FFFF)
                if exporter.samplers[key] != nil || exporter.samplers.count < ExporterTable.samplersPerExporter {
                    exporter.samplers[key] = rate
                }
            } else {
                header.domainState?.samplingRate = rate
            }
        }
        if let systemInit { header.domainState?.systemInitMilliseconds = systemInit }
    }

    @inline(__always)
    static func nanoseconds(seconds: UInt64) -> Int64 {
        Int64(min(seconds, 9_000_000_000)) * 1_000_000_000
    }

    @inline(__always)
    static func nanoseconds(milliseconds: UInt64) -> Int64 {
        Int64(min(milliseconds, 9_000_000_000_000)) * 1_000_000
    }

    /// An NTP timestamp (seconds since 1900 in the upper half, a binary fraction below).
    @inline(__always)
    static func nanoseconds(ntp: UInt64) -> Int64 {
        let seconds = Int64(ntp >> 32) - 2_208_988_800
        let fraction = Int64((ntp & 0xFFFF_FFFF) * 1_000_000_000 >> 32)
        return seconds * 1_000_000_000 + fraction
    }
}
