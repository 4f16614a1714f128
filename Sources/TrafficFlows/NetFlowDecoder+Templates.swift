/// NetFlow v9 and IPFIX: the datagram's sets, templates and options templates.
extension NetFlowDecoder {
    /// What a v9 or IPFIX datagram's header says that its data records need.
    struct Header {
        var version: UInt16
        /// Export time, nanoseconds since the Unix epoch.
        var exportTime: Int64
        /// v9 only: the exporter's uptime at export, milliseconds.
        var uptime: UInt32
        /// v9 source id or IPFIX observation domain.
        var domain: UInt32
        var domainState: DomainState?
    }

    /// A v9 datagram: a 20-byte header, then flowsets (0: templates, 1: options templates,
    /// 256 and up: data). v9 numbers datagrams per source id.
    func decodeV9(_ d: DatagramBytes, exporter: ExporterState, emit: (inout FlowRecord) -> Void) {
        guard d.has(0, 20) else { return exporter.count(.truncated) }
        let domain = d.u32(16)
        let header = Header(
            version: 9, exportTime: Int64(d.u32(8)) * 1_000_000_000, uptime: d.u32(4), domain: domain,
            domainState: exporter.domain(9 << 32 | UInt64(domain)))
        let records = decodeSets(d, from: 20, end: d.count, header: header, exporter: exporter, emit: emit)
        if let state = header.domainState, state.sequence.check(d.u32(12), records: records, countsRecords: false) {
            exporter.sequenceGaps &+= 1
        }
    }

    /// An IPFIX message: a 16-byte header whose length must fit the datagram, then sets (2:
    /// templates, 3: options templates, 256 and up: data). IPFIX numbers data records per
    /// observation domain.
    func decodeIPFIX(_ d: DatagramBytes, exporter: ExporterState, emit: (inout FlowRecord) -> Void) {
        guard d.has(0, 16) else { return exporter.count(.truncated) }
        let length = Int(d.u16(2))
        guard length >= 16 else { return exporter.count(.badLength) }
        guard d.has(0, length) else { return exporter.count(.truncated) }
        let domain = d.u32(12)
        let header = Header(
            version: 10, exportTime: Int64(d.u32(4)) * 1_000_000_000, uptime: 0, domain: domain,
            domainState: exporter.domain(10 << 32 | UInt64(domain)))
        let records = decodeSets(d, from: 16, end: length, header: header, exporter: exporter, emit: emit)
        if let state = header.domainState, state.sequence.check(d.u32(8), records: records, countsRecords: true) {
            exporter.sequenceGaps &+= 1
        }
    }

    /// Walks the sets between `start` and `end`. Returns the data records they held (for
    /// the sequence check), or `nil` when a data set's template was missing (its records
    /// cannot be counted) or a set was cut short.
    func decodeSets(
        _ d: DatagramBytes, from start: Int, end: Int, header: Header, exporter: ExporterState,
        emit: (inout FlowRecord) -> Void
    ) -> UInt32? {
        let ipfix = header.version == 10
        var offset = start
        var records: UInt32? = 0
        // A v9 flowset or IPFIX set header is 4 bytes; less is padding at the end.
        while offset + 4 <= end {
            let id = d.u16(offset)
            let length = Int(d.u16(offset + 2))
            guard length >= 4, offset + length <= end else {
                exporter.count(.badLength)
                return nil
            }
            let body = offset + 4
            let bodyEnd = offset + length
            switch (ipfix, id) {
            case (false, 0), (true, 2):
                decodeTemplates(d, from: body, end: bodyEnd, options: false, header: header, exporter: exporter)
            case (false, 1), (true, 3):
                decodeTemplates(d, from: body, end: bodyEnd, options: true, header: header, exporter: exporter)
            case (_, 256...):
                let key = ExporterState.templateKey(domain: header.domain, id: id)
                if let template = exporter.templates[key] {
                    let n = decodeData(d, from: body, end: bodyEnd, template: template, header: header, exporter: exporter, emit: emit)
                    records = records.map { $0 &+ n }
                } else {
                    exporter.missingTemplate &+= 1
                    records = nil
                }
            default:
                break  // reserved set ids: skipped by their length
            }
            offset = bodyEnd
        }
        return records
    }

    /// The template records of one set: v9 (`id`, field count, then type and length per
    /// field; options: `id`, scope length, options length in bytes) or IPFIX (`id`, field
    /// count, for options the scope field count, then per field its element id (the top bit
    /// set: an enterprise number follows) and length). An IPFIX template with no fields
    /// withdraws its id (or, with the set's own id, every template of that kind).
    func decodeTemplates(_ d: DatagramBytes, from start: Int, end: Int, options: Bool, header: Header, exporter: ExporterState) {
        let ipfix = header.version == 10
        var offset = start
        while offset + 4 <= end {
            let id = d.u16(offset)
            let second = Int(d.u16(offset + 2))
            // Zero bytes at the end of a set are padding.
            if id == 0 && second == 0 { return }
            var fields: [FlowTemplate.Field] = []
            let headerLength = options ? 6 : 4
            if ipfix {
                // A withdrawal is 4 bytes long, options or not.
                if second == 0 {
                    if id == (options ? 3 : 2) {
                        exporters.withdraw(domain: header.domain, id: nil, options: options, for: exporter)
                    } else if id >= 256 {
                        exporters.withdraw(domain: header.domain, id: id, options: options, for: exporter)
                    } else {
                        return exporter.count(.badTemplate)
                    }
                    offset += 4
                    continue
                }
                guard offset + headerLength <= end else { return exporter.count(.badLength) }
                let scopeCount = options ? Int(d.u16(offset + 4)) : 0
                guard id >= 256, !options || (1...second).contains(scopeCount), second <= FlowTemplate.maximumFields else {
                    return exporter.count(.badTemplate)
                }
                offset += headerLength
                for k in 0..<second {
                    guard offset + 4 <= end else { return exporter.count(.badLength) }
                    let element = d.u16(offset)
                    let length = d.u16(offset + 2)
                    let enterprise = element & 0x8000 != 0
                    offset += enterprise ? 8 : 4
                    guard offset <= end else { return exporter.count(.badLength) }
                    // Scope fields are read only for what they say about sampling (a selector id).
                    let role = FieldRole(elementID: element & 0x7FFF, enterprise: enterprise)
                    fields.append(FlowTemplate.Field(role: k < scopeCount && role != .selectorID && role != .samplerID ? .skip : role, length: length))
                }
            } else {
                guard id >= 256 else { return exporter.count(.badTemplate) }
                guard offset + headerLength <= end else { return exporter.count(.badLength) }
                var count = second
                var scopeBytes = 0
                if options {
                    scopeBytes = second
                    let optionBytes = Int(d.u16(offset + 4))
                    guard scopeBytes % 4 == 0, optionBytes % 4 == 0, scopeBytes + optionBytes > 0 else { return exporter.count(.badTemplate) }
                    count = (scopeBytes + optionBytes) / 4
                }
                guard count > 0, count <= FlowTemplate.maximumFields else { return exporter.count(.badTemplate) }
                offset += headerLength
                guard offset + count * 4 <= end else { return exporter.count(.badLength) }
                for k in 0..<count {
                    let element = d.u16(offset + k * 4)
                    let length = d.u16(offset + k * 4 + 2)
                    // v9 scope fields have their own numbering (1 system, 2 interface, ...).
                    let role = k < scopeBytes / 4 ? FieldRole.skip : FieldRole(elementID: element, enterprise: false)
                    // v9 has no variable-length fields: 65535 is just a (bad) length.
                    fields.append(FlowTemplate.Field(role: role, length: length == FlowTemplate.variableLength ? 0 : length))
                }
                offset += count * 4
            }
            guard let template = FlowTemplate(fields: fields, isOptions: options) else { return exporter.count(.badTemplate) }
            _ = exporters.store(template, key: ExporterState.templateKey(domain: header.domain, id: id), for: exporter)
        }
    }
}
