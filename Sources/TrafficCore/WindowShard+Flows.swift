/// Counting what a flow exporter reports: a flow record (N packets and B bytes between two
/// addresses) or a sampled packet scaled up by its sampling rate, attributed by the same
/// rules as a captured packet and placed like one: in the window of its time (a flow's
/// end), or, once that window has closed, late in the open one.
///
/// ```swift
/// var packet = DecodedPacket(flowFrom: source, to: destination, ipProtocol: 6, sourcePort: 51234, destinationPort: 443)
/// shard.countFlow(packet, packets: 12, bytes: 9_000, timestamp: end, sampled: false) { coordinatorOpenWindow() }
/// ```
extension WindowShard {
    /// Counts `packets` packets of `bytes` bytes in all that `packet` describes (an IP flow's
    /// addresses, protocol and ports, or a sampled frame as the decoder read it: IP, non-IP
    /// or malformed). `sampled` marks the window as holding figures scaled up from samples.
    /// Not a captured frame: `capture.received` does not count it. A record of no packets
    /// counts nothing.
    public func countFlow(
        _ packet: DecodedPacket, packets: UInt64, bytes: UInt64, timestamp: Int64, sampled: Bool, openWindow: () -> Int64
    ) {
        guard packets > 0 else { return }
        var p = PreparedPacket()
        prepare(packet, timestamp: timestamp, wireLength: 0, into: &p)
        p.bytes = bytes
        p.captured = false
        placeLive(&p, open: openWindow())
        if sampled { current.sampled = true }
        count(p, hashes: p.kind == .ip ? Self.hashes(p.key) : FlowHashes(client: 0, server: 0), packets: packets)
    }
}

extension DecodedPacket {
    /// An IP packet as a flow record describes it: its addresses, protocol and ports (for
    /// TCP, UDP and SCTP), and for ICMP and ICMPv6 its type, which decides whether the
    /// source is the server (a reply or an error).
    ///
    /// ```swift
    /// let packet = DecodedPacket(flowFrom: a, to: b, ipProtocol: 1, icmpType: 0)   // an echo reply: a is the server
    /// ```
    public init(
        flowFrom source: IPAddress, to destination: IPAddress, ipProtocol: UInt8, sourcePort: UInt16 = 0,
        destinationPort: UInt16 = 0, icmpType: UInt8? = nil
    ) {
        self.init()
        kind = .ip
        self.source = source
        self.destination = destination
        self.ipProtocol = ipProtocol
        if Service.hasPorts(ipProtocol) {
            self.sourcePort = sourcePort
            self.destinationPort = destinationPort
            hasPorts = true
        } else if let icmpType {
            if ipProtocol == IPProtocol.icmp { isReply = PacketDecoder.isICMPReply(icmpType) }
            if ipProtocol == IPProtocol.icmpv6 { isReply = PacketDecoder.isICMPv6Reply(icmpType) }
        }
    }
}
