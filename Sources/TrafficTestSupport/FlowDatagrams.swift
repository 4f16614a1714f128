import TrafficCore

/// Builds flow-export datagrams byte by byte for tests, from the wire formats' own
/// descriptions (RFC 3954 for NetFlow v9, RFC 7011 for IPFIX, sFlow version 5, Cisco's
/// NetFlow v5 layout), independently of trafficmon's decoders.
///
/// ```swift
/// let v5 = FlowDatagrams.netflowV5([.init(source: "198.51.100.7", destination: "10.0.0.1", sourcePort: 51000, destinationPort: 443)],
///                                   sequence: 0, unixSeconds: 1_700_000_000)
/// ```
public enum FlowDatagrams {
    /// Big-endian bytes.
    public struct Bytes {
        public var bytes: [UInt8] = []

        public init() {}

        public mutating func u8(_ v: UInt8) { bytes.append(v) }
        public mutating func u16(_ v: UInt16) { bytes += FrameBuilder.be16(v) }
        public mutating func u32(_ v: UInt32) { bytes += FrameBuilder.be32(v) }
        public mutating func u64(_ v: UInt64) {
            u32(UInt32(truncatingIfNeeded: v >> 32))
            u32(UInt32(truncatingIfNeeded: v))
        }
        public mutating func address(_ text: String) { bytes += FrameBuilder.addressBytes(IPAddress(text)!) }
        public mutating func append(_ more: [UInt8]) { bytes += more }
        public mutating func pad(to multiple: Int) {
            while bytes.count % multiple != 0 { bytes.append(0) }
        }
    }

    // MARK: NetFlow v5

    /// One v5 flow record (IPv4 only).
    public struct V5Record: Sendable {
        public var source: String
        public var destination: String
        public var sourcePort: UInt16
        public var destinationPort: UInt16
        public var proto: UInt8
        public var packets: UInt32
        public var bytes: UInt32
        /// Exporter uptime (ms) at the first and last packet.
        public var first: UInt32
        public var last: UInt32

        public init(
            source: String, destination: String, sourcePort: UInt16 = 0, destinationPort: UInt16 = 0, proto: UInt8 = 6,
            packets: UInt32 = 1, bytes: UInt32 = 100, first: UInt32 = 0, last: UInt32 = 0
        ) {
            self.source = source
            self.destination = destination
            self.sourcePort = sourcePort
            self.destinationPort = destinationPort
            self.proto = proto
            self.packets = packets
            self.bytes = bytes
            self.first = first
            self.last = last
        }
    }

    /// A v5 datagram: header (version, count, sysUptime, secs, nsecs, flow sequence, engine
    /// type and id, sampling mode and interval) and 48-byte records.
    public static func netflowV5(
        _ records: [V5Record], sequence: UInt32, uptime: UInt32 = 100_000, unixSeconds: UInt32, nanoseconds: UInt32 = 0,
        engine: UInt16 = 0, samplingInterval: UInt16 = 0, count: UInt16? = nil
    ) -> [UInt8] {
        var b = Bytes()
        b.u16(5)
        b.u16(count ?? UInt16(records.count))
        b.u32(uptime)
        b.u32(unixSeconds)
        b.u32(nanoseconds)
        b.u32(sequence)
        b.u16(engine)
        b.u16(samplingInterval == 0 ? 0 : 0x4000 | samplingInterval)
        for r in records {
            b.address(r.source)
            b.address(r.destination)
            b.u32(0)  // next hop
            b.u16(1); b.u16(2)  // input, output
            b.u32(r.packets)
            b.u32(r.bytes)
            b.u32(r.first)
            b.u32(r.last)
            b.u16(r.sourcePort)
            b.u16(r.destinationPort)
            b.u8(0); b.u8(0x18); b.u8(r.proto); b.u8(0)  // pad, TCP flags, protocol, ToS
            b.u16(0); b.u16(0)  // AS numbers
            b.u8(24); b.u8(24); b.u16(0)  // masks, pad
        }
        return b.bytes
    }

    // MARK: Templates (NetFlow v9 and IPFIX)

    /// A template field: an information element and its length (65535: IPFIX variable
    /// length); with an enterprise number, an enterprise-specific element.
    public struct Field: Sendable {
        public var element: UInt16
        public var length: UInt16
        public var enterprise: UInt32?

        public init(_ element: UInt16, _ length: UInt16, enterprise: UInt32? = nil) {
            self.element = element
            self.length = length
            self.enterprise = enterprise
        }
    }

    /// Common elements.
    public enum Element {
        public static let octets: UInt16 = 1, packets: UInt16 = 2, proto: UInt16 = 4, sourcePort: UInt16 = 7
        public static let sourceIPv4: UInt16 = 8, destinationPort: UInt16 = 11, destinationIPv4: UInt16 = 12
        public static let lastSwitched: UInt16 = 21, firstSwitched: UInt16 = 22, sourceIPv6: UInt16 = 27, destinationIPv6: UInt16 = 28
        public static let icmpTypeCode: UInt16 = 32, samplingInterval: UInt16 = 34, samplingAlgorithm: UInt16 = 35
        public static let samplerID: UInt16 = 48, flowDirection: UInt16 = 61, flowEndSeconds: UInt16 = 151
        public static let flowEndMilliseconds: UInt16 = 153, systemInitMilliseconds: UInt16 = 160
        public static let samplingPacketInterval: UInt16 = 305, samplingPacketSpace: UInt16 = 306
        public static let interfaceName: UInt16 = 82
    }

    /// A set (IPFIX) or flowset (v9): id, length, body padded to 4 bytes.
    public static func set(id: UInt16, _ body: [UInt8], pad: Bool = true) -> [UInt8] {
        var inner = Bytes()
        inner.append(body)
        if pad { inner.pad(to: 4) }
        var b = Bytes()
        b.u16(id)
        b.u16(UInt16(4 + inner.bytes.count))
        b.append(inner.bytes)
        return b.bytes
    }

    /// IPFIX template records (set id 2): id, field count, fields.
    public static func ipfixTemplates(_ templates: [(id: UInt16, fields: [Field])]) -> [UInt8] {
        var b = Bytes()
        for t in templates {
            b.u16(t.id)
            b.u16(UInt16(t.fields.count))
            ipfixFields(t.fields, into: &b)
        }
        return set(id: 2, b.bytes)
    }

    /// An IPFIX options template (set id 3): id, field count, scope field count, fields.
    public static func ipfixOptionsTemplate(id: UInt16, scope: [Field], fields: [Field]) -> [UInt8] {
        var b = Bytes()
        b.u16(id)
        b.u16(UInt16(scope.count + fields.count))
        b.u16(UInt16(scope.count))
        ipfixFields(scope + fields, into: &b)
        return set(id: 3, b.bytes)
    }

    /// An IPFIX template withdrawal: the id with no fields (`id` 2 or 3: every template of the kind).
    public static func ipfixWithdrawal(id: UInt16, options: Bool = false) -> [UInt8] {
        var b = Bytes()
        b.u16(id)
        b.u16(0)
        return set(id: options ? 3 : 2, b.bytes)
    }

    static func ipfixFields(_ fields: [Field], into b: inout Bytes) {
        for f in fields {
            b.u16(f.enterprise == nil ? f.element : f.element | 0x8000)
            b.u16(f.length)
            if let e = f.enterprise { b.u32(e) }
        }
    }

    /// An IPFIX message: version 10, length, export time, sequence, domain, then `sets`.
    public static func ipfix(exportTime: UInt32, sequence: UInt32, domain: UInt32 = 0, sets: [[UInt8]]) -> [UInt8] {
        let body = sets.flatMap { $0 }
        var b = Bytes()
        b.u16(10)
        b.u16(UInt16(truncatingIfNeeded: 16 + body.count))
        b.u32(exportTime)
        b.u32(sequence)
        b.u32(domain)
        b.append(body)
        return b.bytes
    }

    /// v9 template records (flowset id 0): id, field count, (type, length) per field.
    public static func v9Templates(_ templates: [(id: UInt16, fields: [Field])]) -> [UInt8] {
        var b = Bytes()
        for t in templates {
            b.u16(t.id)
            b.u16(UInt16(t.fields.count))
            for f in t.fields {
                b.u16(f.element)
                b.u16(f.length)
            }
        }
        return set(id: 0, b.bytes)
    }

    /// A v9 options template (flowset id 1): id, scope length and options length in bytes,
    /// then the scope fields (type 1: system, 2: interface, ...) and the option fields.
    public static func v9OptionsTemplate(id: UInt16, scope: [Field], fields: [Field]) -> [UInt8] {
        var b = Bytes()
        b.u16(id)
        b.u16(UInt16(scope.count * 4))
        b.u16(UInt16(fields.count * 4))
        for f in scope + fields {
            b.u16(f.element)
            b.u16(f.length)
        }
        return set(id: 1, b.bytes)
    }

    /// A v9 datagram: version 9, record count, sysUptime, secs, sequence, source id, flowsets.
    public static func v9(uptime: UInt32, unixSeconds: UInt32, sequence: UInt32, sourceID: UInt32 = 0, count: UInt16 = 0, flowsets: [[UInt8]]) -> [UInt8] {
        var b = Bytes()
        b.u16(9)
        b.u16(count)
        b.u32(uptime)
        b.u32(unixSeconds)
        b.u32(sequence)
        b.u32(sourceID)
        b.append(flowsets.flatMap { $0 })
        return b.bytes
    }

    // MARK: sFlow v5

    /// An sFlow v5 datagram: version, agent address, sub-agent, sequence, uptime, samples.
    public static func sflow(agent: String = "192.0.2.1", subAgent: UInt32 = 0, sequence: UInt32, uptime: UInt32 = 1000, samples: [[UInt8]]) -> [UInt8] {
        var b = Bytes()
        b.u32(5)
        let address = IPAddress(agent)!
        b.u32(address.isIPv6 ? 2 : 1)
        b.address(agent)
        b.u32(subAgent)
        b.u32(sequence)
        b.u32(uptime)
        b.u32(UInt32(samples.count))
        for s in samples { b.append(s) }
        return b.bytes
    }

    /// A flow sample (format 1) holding `records` (each already with its format and length).
    public static func sflowFlowSample(sequence: UInt32 = 1, sourceID: UInt32 = 1, rate: UInt32, pool: UInt32 = 0, records: [[UInt8]]) -> [UInt8] {
        var b = Bytes()
        b.u32(sequence)
        b.u32(sourceID)
        b.u32(rate)
        b.u32(pool)
        b.u32(0)  // drops
        b.u32(1)  // input
        b.u32(2)  // output
        b.u32(UInt32(records.count))
        for r in records { b.append(r) }
        return sflowElement(format: 1, b.bytes)
    }

    /// An expanded flow sample (format 3).
    public static func sflowExpandedFlowSample(sequence: UInt32 = 1, rate: UInt32, records: [[UInt8]]) -> [UInt8] {
        var b = Bytes()
        b.u32(sequence)
        b.u32(0); b.u32(1)  // source id type, index
        b.u32(rate)
        b.u32(0)  // pool
        b.u32(0)  // drops
        b.u32(0); b.u32(1)  // input format, value
        b.u32(0); b.u32(2)  // output format, value
        b.u32(UInt32(records.count))
        for r in records { b.append(r) }
        return sflowElement(format: 3, b.bytes)
    }

    /// A counter sample (format 2) with one generic interface counters record: skipped by collectors of flows.
    public static func sflowCounterSample() -> [UInt8] {
        var record = Bytes()
        for _ in 0..<22 { record.u32(7) }
        var b = Bytes()
        b.u32(1)  // sequence
        b.u32(1)  // source id
        b.u32(1)  // record count
        b.append(sflowElement(format: 1, record.bytes))
        return sflowElement(format: 2, b.bytes)
    }

    /// A raw packet header record (format 1): protocol (1 Ethernet, 11 IPv4, 12 IPv6), frame
    /// length, bytes stripped, the header bytes (padded to 4).
    public static func sflowRawHeader(_ header: [UInt8], frameLength: UInt32, stripped: UInt32 = 0, headerProtocol: UInt32 = 1) -> [UInt8] {
        var b = Bytes()
        b.u32(headerProtocol)
        b.u32(frameLength)
        b.u32(stripped)
        b.u32(UInt32(header.count))
        b.append(header)
        b.pad(to: 4)
        return sflowElement(format: 1, b.bytes)
    }

    /// A sampled IPv4 record (format 3).
    public static func sflowSampledIPv4(length: UInt32, proto: UInt32, source: String, destination: String, sourcePort: UInt32, destinationPort: UInt32) -> [UInt8] {
        var b = Bytes()
        b.u32(length)
        b.u32(proto)
        b.address(source)
        b.address(destination)
        b.u32(sourcePort)
        b.u32(destinationPort)
        b.u32(0)  // TCP flags
        b.u32(0)  // ToS
        return sflowElement(format: 3, b.bytes)
    }

    /// A sample or record: data format, length, body.
    public static func sflowElement(format: UInt32, _ body: [UInt8]) -> [UInt8] {
        var b = Bytes()
        b.u32(format)
        b.u32(UInt32(body.count))
        b.append(body)
        return b.bytes
    }
}
