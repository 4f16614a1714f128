import TrafficCore

/// Traffic with TCP control segments, DNS messages and packets of every size bucket, built
/// byte by byte, in "rounds" that repeat: what the report table, the live page and the
/// dashboard show of TCP, sizes and DNS is checked against it. Local servers in
/// `localNetwork`; per round:
/// - a port scan: 203.0.113.66 sends a SYN to each of 80 ports of 10.0.0.2, which answers
///   each with RST+ACK;
/// - 5 connections of 198.51.100.7 to 10.0.0.1:443: SYN, SYN-ACK, a data segment out
///   (150, 400, 900, 1200 and 9000 bytes of payload), FIN+ACK each way;
/// - a SYN flood: 20 SYNs to 10.0.0.1:80 from 192.0.2.1-20, never answered;
/// - a segment of 198.51.100.9 to 10.0.0.1:22 cut by the capture before its flags;
/// - a 10,000-byte UDP datagram from 10.0.0.1:9 out;
/// - DNS between 198.51.100.53 and 10.0.0.5:53: queries of type A, AAAA, MX, TXT and A,
///   answered NOERROR, NOERROR, SERVFAIL, NXDOMAIN and REFUSED.
///
/// ```swift
/// try ProtocolTraffic.capture(rounds: 3, start: t0, spacing: 1_000_000_000).write(to: url)
/// #expect(record.protocols.tcpIn.syn == 3 * ProtocolTraffic.perRound.synIn)
/// ```
public enum ProtocolTraffic {
    public static let localNetwork = "10.0.0.0/24"
    public static let scanner = "203.0.113.66"
    public static let scannedPorts = 80
    public static let connections = 5
    public static let floodSources = 20

    /// What one round adds to a window.
    public static let perRound = Round()

    public struct Round: Sendable {
        public var synIn: UInt64 { UInt64(scannedPorts + connections + floodSources) }
        public var synackOut: UInt64 { UInt64(connections) }
        public var rstOut: UInt64 { UInt64(scannedPorts) }
        public var finIn: UInt64 { UInt64(connections) }
        public var finOut: UInt64 { UInt64(connections) }
        public var unknownIn: UInt64 { 1 }
        /// Query types as the record names them, and response codes.
        public var queries: [String: UInt64] { ["A": 2, "AAAA": 1, "MX": 1, "TXT": 1] }
        public var responses: [String: UInt64] { ["NOERROR": 2, "SERVFAIL": 1, "NXDOMAIN": 1, "REFUSED": 1] }
        /// IP packets per size bucket (64, 128, 256, 512, 1024, 1518, 9216 wire bytes, larger).
        public var sizesIn: [UInt64] { [111, 5, 0, 0, 0, 0, 0, 0] }
        public var sizesOut: [UInt64] { [90, 5, 1, 1, 1, 1, 1, 1] }
    }

    /// One round of frames, all stamped `time` (nanoseconds) plus a nanosecond each, and the
    /// wire length of the one the capture cut.
    public static func round(at time: Int64) -> [(frame: [UInt8], timestamp: Int64, wireLength: Int?)] {
        var out: [(frame: [UInt8], timestamp: Int64, wireLength: Int?)] = []
        func add(_ frame: [UInt8], wireLength: Int? = nil) {
            out.append((frame, time + Int64(out.count), wireLength))
        }
        let server = ip("10.0.0.1"), scanned = ip("10.0.0.2"), resolver = ip("10.0.0.5")
        let scanner = ip(Self.scanner), client = ip("198.51.100.7")
        for port in 0..<scannedPorts {
            let sport: UInt16 = 50_000, dport = UInt16(1_000 + port)
            add(tcp(scanner, sport, scanned, dport, flags: syn))
            add(tcp(scanned, dport, scanner, sport, flags: rst | ack))
        }
        for (i, payload) in [150, 400, 900, 1_200, 9_000].enumerated() {
            let sport = UInt16(40_000 + i)
            add(tcp(client, sport, server, 443, flags: syn))
            add(tcp(server, 443, client, sport, flags: syn | ack))
            add(tcp(server, 443, client, sport, flags: ack | psh, payload: payload))
            add(tcp(client, sport, server, 443, flags: fin | ack))
            add(tcp(server, 443, client, sport, flags: fin | ack))
        }
        for source in 1...floodSources {
            add(tcp(ip("192.0.2.\(source)"), UInt16(30_000 + source), server, 80, flags: syn))
        }
        let whole = tcp(ip("198.51.100.9"), 41_022, server, 22, flags: ack)
        add(Array(whole.prefix(14 + 20 + 13)), wireLength: whole.count)
        add(udp(server, 9, client, 40_009, payload: [UInt8](repeating: 0, count: 10_000)))
        let asked: [(qtype: UInt16, rcode: UInt8)] = [(1, 0), (28, 0), (15, 2), (16, 3), (1, 5)]
        for (i, message) in asked.enumerated() {
            let sport = UInt16(5_300 + i), id = UInt16(0x1000 + i)
            add(udp(ip("198.51.100.53"), sport, resolver, 53, payload: dns(id: id, response: false, rcode: 0, qtype: message.qtype)))
            add(udp(resolver, 53, ip("198.51.100.53"), sport, payload: dns(id: id, response: true, rcode: message.rcode, qtype: message.qtype)))
        }
        return out
    }

    /// A capture of `rounds` rounds, `spacing` nanoseconds apart from `start`.
    public static func capture(rounds: Int, start: Int64, spacing: Int64) -> PcapWriter {
        var writer = PcapWriter(linkType: 1)
        for r in 0..<rounds {
            for f in round(at: start + Int64(r) * spacing) { writer.append(f.frame, timestamp: f.timestamp, wireLength: f.wireLength) }
        }
        return writer
    }

    // MARK: Frames

    private static let fin: UInt8 = 0x01, syn: UInt8 = 0x02, rst: UInt8 = 0x04, psh: UInt8 = 0x08, ack: UInt8 = 0x10

    private static func ip(_ text: String) -> IPAddress {
        guard let address = IPAddress(text) else { preconditionFailure("not an address: \(text)") }
        return address
    }

    /// An Ethernet frame holding an IPv4 TCP segment with `flags`, acknowledging 1 when
    /// they hold ACK, then `payload` zero bytes.
    private static func tcp(_ src: IPAddress, _ sport: UInt16, _ dst: IPAddress, _ dport: UInt16, flags: UInt8, payload: Int = 0) -> [UInt8] {
        let segment = FrameBuilder.tcp(sport, dport, flags: flags, ack: flags & ack != 0 ? 1 : 0, payload: [UInt8](repeating: 0, count: payload))
        return FrameBuilder.ethernet(ip: FrameBuilder.ipv4(src: src, dst: dst, proto: 6, payload: segment))
    }

    private static func udp(_ src: IPAddress, _ sport: UInt16, _ dst: IPAddress, _ dport: UInt16, payload: [UInt8]) -> [UInt8] {
        FrameBuilder.ethernet(ip: FrameBuilder.ipv4(src: src, dst: dst, proto: 17, payload: FrameBuilder.udp(sport, dport, payload: payload)))
    }

    /// A DNS message with one question (example.com, class IN) and no records.
    private static func dns(id: UInt16, response: Bool, rcode: UInt8, qtype: UInt16) -> [UInt8] {
        var m = FrameBuilder.dnsHeader(id: id, flags: response ? 0x8180 | UInt16(rcode) : 0x0100, qd: 1)
        for label in ["example", "com"] { m += [UInt8(label.utf8.count)] + Array(label.utf8) }
        m += [0] + FrameBuilder.be16(qtype) + FrameBuilder.be16(1)
        return m
    }
}
