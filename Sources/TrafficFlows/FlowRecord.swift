import TrafficCore

/// One thing a flow exporter reports, decoded: a flow record (packets and bytes between
/// two addresses over a span of time) or one sampled packet (an sFlow sample), with what
/// counting it needs and nothing else.
///
/// ```swift
/// decoder.decode(datagram, from: exporter, at: now) { record in
///     shard.countFlow(record.packet, packets: record.scaledPackets, bytes: record.scaledBytes, ...)
/// }
/// ```
public struct FlowRecord: Sendable {
    /// The addresses, protocol and ports (an IP flow), or a sampled frame as the packet
    /// decoder read it (IP, non-IP or malformed).
    public var packet = DecodedPacket()
    /// As the exporter counted them: before sampling is undone.
    public var packets: UInt64 = 0
    /// Layer-3 bytes for NetFlow and IPFIX (their octet counters), layer-2 frame bytes for
    /// an sFlow packet sample (`frame_length - stripped`).
    public var bytes: UInt64 = 0
    /// One packet in `samplingRate` was seen by the exporter (1: every packet).
    public var samplingRate: UInt64 = 1
    /// When the flow ended (or the sample was received), nanoseconds since the Unix epoch.
    public var end: Int64 = 0
    /// Which way the exporter saw it, where the record says.
    public var direction = FlowDirection.unknown

    public init() {}

    /// Packets with sampling undone (saturating: a hostile rate cannot wrap a counter).
    public var scaledPackets: UInt64 { Self.scale(packets, by: samplingRate) }
    /// Bytes with sampling undone.
    public var scaledBytes: UInt64 { Self.scale(bytes, by: samplingRate) }

    @inline(__always)
    static func scale(_ value: UInt64, by rate: UInt64) -> UInt64 {
        let (product, overflow) = value.multipliedReportingOverflow(by: max(1, rate))
        return overflow ? .max : product
    }
}

/// The direction a flow record was observed in, where the exporter says (NetFlow v9 and
/// IPFIX `flowDirection`, information element 61).
public enum FlowDirection: UInt8, Sendable {
    case unknown, ingress, egress
}

/// Which records `--flow-direction` counts: those observed in that direction and those that
/// do not say (a router exporting both directions of an interface would otherwise count a
/// flow twice).
///
/// ```swift
/// FlowDirectionFilter.ingress.counts(.egress)   // false
/// ```
public enum FlowDirectionFilter: String, Sendable, CaseIterable {
    case ingress, egress, both

    @inline(__always)
    public func counts(_ direction: FlowDirection) -> Bool {
        switch (self, direction) {
        case (.both, _), (_, .unknown), (.ingress, .ingress), (.egress, .egress): true
        default: false
        }
    }
}
