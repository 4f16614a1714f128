// libFuzzer harness for the packet path: decoder, attribution, windows and the record
// builder, compiled together with TrafficCore's sources (see scripts/fuzz-decoder).
//
// Input: byte 0 picks the link type, bytes 1-2 the wire-length slack, the rest is the
// captured frame. Every input must decode without crashing or reading out of bounds
// (AddressSanitizer checks the reads), land in exactly one bucket, carry TCP flags and
// DNS facts only where they can be, and keep every window record conserved.

nonisolated(unsafe) var closedRecords = 0
nonisolated(unsafe) let aggregator = WindowAggregator(
    configuration: .init(
        windowLength: 1_000_000_000,
        localNetworks: LocalNetworks([NetworkPrefix(address: IPAddress(ipv4: 0x0A00_0000), length: 8)]),
        maxClients: 64, maxFlows: 128, top: 8)
) { (record: WindowRecord) in
    precondition(record.isConserved, "a window record does not conserve packets and bytes")
    closedRecords += 1
}
nonisolated(unsafe) var clock: Int64 = 1_700_000_000_000_000_000

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 3 else { return 0 }
    let links = LinkType.supported
    let link = links[Int(data[0]) % links.count]
    guard let decoder = PacketDecoder(linkType: link) else { return 0 }
    let slack = Int(data[1]) << 8 | Int(data[2])
    // An exactly-sized copy, so reading one byte past the frame is caught.
    let frame = UnsafeMutableRawBufferPointer.allocate(byteCount: size - 3, alignment: 1)
    defer { frame.deallocate() }
    if size > 3 { frame.copyMemory(from: UnsafeRawBufferPointer(start: data + 3, count: size - 3)) }
    let packet = decoder.decode(UnsafeRawBufferPointer(frame))
    if packet.kind == .ip && packet.hasPorts {
        precondition(Service.hasPorts(packet.ipProtocol) && !packet.isLaterFragment)
    }
    // Flags only in a TCP segment with ports, DNS only on port 53, and each within its
    // layout (a known flags byte, or `unknown` alone; a type or code index in range).
    if packet.tcpFlags != 0 {
        precondition(packet.hasPorts && packet.ipProtocol == IPProtocol.tcp)
        precondition(packet.tcpFlags & 0x80 != 0 ? packet.tcpFlags & 0x68 == 0 : packet.tcpFlags == TCPFlags.unknown.rawValue)
    }
    if packet.dns != 0 {
        precondition(packet.hasPorts && (packet.sourcePort == 53 || packet.destinationPort == 53))
        switch DNSFacts(rawValue: packet.dns).kind {
        case .query(let i): precondition(i < DNSFacts.queryTypes.count)
        case .response(let i): precondition(i < DNSFacts.responseCodes.count)
        case .malformed, .cut: break
        case .none: preconditionFailure("a DNS byte that reads as none")
        }
    }
    // Time moves forward with small jumps back (late packets) driven by the input.
    clock += Int64(data[1] & 0x7F) * 10_000_000 - (data[2] & 0x80 != 0 ? 300_000_000 : 0)
    aggregator.add(frame: UnsafeRawBufferPointer(frame), decoder: decoder, timestamp: clock, wireLength: frame.count + slack)
    if data[0] & 0x80 != 0, let snapshot = aggregator.snapshot() {
        precondition(snapshot.isConserved, "the open window does not conserve packets and bytes")
    }
    return 0
}
