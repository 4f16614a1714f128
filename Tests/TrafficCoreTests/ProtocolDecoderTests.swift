import Testing
@testable import TrafficCore
import TrafficTestSupport

/// What the decoder reads past the ports: a TCP segment's control flags and a DNS
/// message's kind on port 53 (DESIGN.md, "What: TCP handshakes, sizes, DNS"), on frames
/// built byte by byte and read from exactly-sized buffers.
@Suite("PacketDecoder: TCP flags and DNS")
struct ProtocolDecoderTests {
    static let client4 = addr("198.51.100.7"), server4 = addr("10.0.0.1")
    static let client6 = addr("2001:db8:2::7"), server6 = addr("2001:db8:1::1")

    // MARK: Building frames

    /// A TCP header (`options` padded by the caller to 4 bytes) and its payload.
    static func tcp(_ sport: UInt16 = 40000, _ dport: UInt16 = 443, flags: UInt8, options: [UInt8] = [], payload: [UInt8] = []) -> [UInt8] {
        FrameBuilder.tcp(sport, dport, flags: flags, options: options, payload: payload)
    }

    static func udp(_ sport: UInt16 = 40000, _ dport: UInt16 = 53, payload: [UInt8], length: Int? = nil) -> [UInt8] {
        FrameBuilder.udp(sport, dport, payload: payload, length: length.map { UInt16($0) })
    }

    /// An Ethernet frame with IPv4 or IPv6 around `transport`, and where the transport starts.
    static func frame(_ proto: UInt8, _ transport: [UInt8], v6: Bool = false) -> (bytes: [UInt8], transport: Int) {
        let ip = v6
            ? FrameBuilder.ipv6(src: client6, dst: server6, proto: proto, payload: transport)
            : FrameBuilder.ipv4(src: client4, dst: server4, proto: proto, payload: transport)
        let bytes = FrameBuilder.ethernet(ip: ip)
        return (bytes, bytes.count - transport.count)
    }

    static func decode(_ bytes: some Collection<UInt8>) -> DecodedPacket { decodeExact(bytes, link: .ethernet) }

    /// The kinds a decoded segment counts under, by label.
    static func kinds(_ p: DecodedPacket) -> [String] {
        var out: [String] = []
        TCPFlags(rawValue: p.tcpFlags).forEachKind { out.append($0.label) }
        return out
    }

    static func dns(_ p: DecodedPacket) -> DNSFacts.Kind { DNSFacts(rawValue: p.dns).kind }

    static func query(_ label: String) -> DNSFacts.Kind {
        .query(DNSFacts.queryTypes.firstIndex(of: label) ?? -1)
    }

    static func response(_ label: String) -> DNSFacts.Kind {
        .response(DNSFacts.responseCodes.firstIndex(of: label) ?? -1)
    }

    static func header(id: UInt16 = 0x1234, flags: UInt16 = 0x0100, qd: UInt16 = 1, an: UInt16 = 0) -> [UInt8] {
        FrameBuilder.dnsHeader(id: id, flags: flags, qd: qd, an: an)
    }

    /// `www.example.com` in labels.
    static let name: [UInt8] = [3, 0x77, 0x77, 0x77, 7, 0x65, 0x78, 0x61, 0x6D, 0x70, 0x6C, 0x65, 3, 0x63, 0x6F, 0x6D, 0]

    static func queryMessage(_ qtype: UInt16, name: [UInt8] = name) -> [UInt8] {
        header() + name + FrameBuilder.be16(qtype) + FrameBuilder.be16(1)
    }

    // MARK: TCP flags

    /// (flags byte, the kinds it counts under): SYN without ACK, SYN-ACK, RST, FIN, each
    /// that applies; PSH, URG, ECE and CWR change nothing.
    static let flagCases: [(UInt8, [String])] = [
        (0x02, ["syn"]), (0x12, ["synack"]), (0x10, []), (0x18, []), (0x04, ["rst"]), (0x14, ["rst"]),
        (0x11, ["fin"]), (0x01, ["fin"]), (0x05, ["rst", "fin"]), (0x15, ["rst", "fin"]), (0x03, ["syn", "fin"]),
        (0x06, ["syn", "rst"]), (0x17, ["synack", "rst", "fin"]), (0x3F, ["synack", "rst", "fin"]), (0x00, []),
        (0x29, ["fin"]), (0xC2, ["syn"]), (0xD2, ["synack"]), (0xFF, ["synack", "rst", "fin"]), (0xE8, []),
    ]

    @Test(arguments: flagCases)
    func flagsCountUnderEachKindThatApplies(flags: UInt8, expected: [String]) {
        for v6 in [false, true] {
            let (bytes, _) = Self.frame(IPProtocol.tcp, Self.tcp(flags: flags, payload: [1, 2, 3]), v6: v6)
            let p = Self.decode(bytes)
            #expect(TCPFlags(rawValue: p.tcpFlags).isKnown)
            #expect(Self.kinds(p) == expected, "flags 0x\(String(flags, radix: 16)) over \(v6 ? "IPv6" : "IPv4")")
            #expect(p.dns == 0)
        }
    }

    /// The ports need 4 captured bytes of the header, the flags the 14th: cut in between,
    /// the segment counts under `unknown` alone (and its ports as usual).
    @Test(arguments: [false, true])
    func aSegmentCutBeforeItsFlagsIsUnknown(v6: Bool) {
        let (bytes, t) = Self.frame(IPProtocol.tcp, Self.tcp(flags: 0x02, payload: [UInt8](repeating: 7, count: 30)), v6: v6)
        for kept in 0...(t + 20) {
            let p = Self.decode(bytes.prefix(kept))
            if kept < t + 4 {
                #expect(p.kind == .malformed, "\(kept) bytes")
            } else if kept < t + 14 {
                #expect(p.kind == .ip && p.hasPorts && p.destinationPort == 443, "\(kept) bytes")
                #expect(p.tcpFlags == TCPFlags.unknown.rawValue, "\(kept) bytes")
                #expect(Self.kinds(p) == ["unknown"])
            } else {
                #expect(Self.kinds(p) == ["syn"], "\(kept) bytes")
            }
        }
    }

    /// The IP packet ends before the flags byte (a 10-byte "TCP header"), and the Ethernet
    /// padding after it is not read as flags.
    @Test func aSegmentShorterThanItsFlagsIsUnknownWhateverThePadding() {
        let ip = FrameBuilder.ipv4(src: Self.client4, dst: Self.server4, proto: IPProtocol.tcp, payload: Array(Self.tcp(flags: 0x02).prefix(10)))
        let bytes = FrameBuilder.ethernet(ip: ip) + [UInt8](repeating: 0x02, count: 12)
        let p = Self.decode(bytes)
        #expect(p.kind == .ip && p.hasPorts)
        #expect(Self.kinds(p) == ["unknown"])
    }

    /// A segmentation-offload frame (IPv4 total length 0) keeps its flags; no DNS is judged
    /// in it, as its length is not said.
    @Test func segmentationOffloadFramesKeepTheirFlags() {
        let segment = Self.tcp(40000, 53, flags: 0x18, payload: FrameBuilder.be16(UInt16(Self.queryMessage(1).count)) + Self.queryMessage(1))
        let ip = FrameBuilder.ipv4(src: Self.client4, dst: Self.server4, proto: IPProtocol.tcp, payload: segment, totalLength: 0)
        let p = Self.decode(FrameBuilder.ethernet(ip: ip))
        #expect(p.kind == .ip && p.hasPorts)
        #expect(Self.kinds(p) == [])
        #expect(TCPFlags(rawValue: p.tcpFlags).isKnown)
        #expect(Self.dns(p) == .none)
    }

    /// Not TCP, no flags: UDP, ICMP and a later fragment carry 0.
    @Test func onlyTCPCarriesFlags() {
        #expect(Self.decode(Self.frame(IPProtocol.udp, Self.udp(40000, 443, payload: [0x12, 0x12])).bytes).tcpFlags == 0)
        #expect(Self.decode(Self.frame(IPProtocol.icmp, FrameBuilder.icmpEcho()).bytes).tcpFlags == 0)
        let later = FrameBuilder.ipv4(src: Self.client4, dst: Self.server4, proto: IPProtocol.tcp, payload: Self.tcp(flags: 0x02),
                                      fragmentOffset: 185)
        let p = Self.decode(FrameBuilder.ethernet(ip: later))
        #expect(p.isLaterFragment && p.tcpFlags == 0)
    }

    // MARK: DNS queries and responses

    static let allQueryTypes: [(UInt16, String)] = [
        (1, "A"), (28, "AAAA"), (5, "CNAME"), (15, "MX"), (2, "NS"), (12, "PTR"), (6, "SOA"), (33, "SRV"), (16, "TXT"),
        (65, "HTTPS"), (255, "ANY"), (0, "other"), (43, "other"), (48, "other"), (64, "other"), (257, "other"), (65535, "other"),
    ]

    @Test(arguments: allQueryTypes)
    func queriesCountByTheirFirstQuestionsType(qtype: UInt16, label: String) {
        for v6 in [false, true] {
            let p = Self.decode(Self.frame(IPProtocol.udp, Self.udp(payload: Self.queryMessage(qtype)), v6: v6).bytes)
            #expect(Self.dns(p) == Self.query(label), "type \(qtype) over \(v6 ? "IPv6" : "IPv4")")
        }
        // A second question of another type changes nothing.
        var two = Self.queryMessage(qtype) + [0] + FrameBuilder.be16(28) + FrameBuilder.be16(1)
        two[5] = 2
        #expect(Self.dns(Self.decode(Self.frame(IPProtocol.udp, Self.udp(payload: two)).bytes)) == Self.query(label))
    }

    @Test(arguments: 0...15)
    func responsesCountByTheirCode(rcode: Int) {
        let labels = ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"]
        let label = rcode < labels.count ? labels[rcode] : "other"
        // With a question and an answer compressed against it, and with no question at all.
        let answered = Self.header(flags: 0x8180 | UInt16(rcode), an: 1) + Self.name + [0, 1, 0, 1]
            + [0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, 1]
        let bare = Self.header(flags: 0x8000 | UInt16(rcode), qd: 0)
        for message in [answered, bare] {
            let p = Self.decode(Self.frame(IPProtocol.udp, Self.udp(53, 40000, payload: message)).bytes)
            #expect(Self.dns(p) == Self.response(label), "rcode \(rcode)")
        }
    }

    /// The first question's name may end in a compression pointer, or be one: the type
    /// follows the pointer's two bytes, and the pointer is not followed.
    @Test func aCompressionPointerInTheFirstQuestionEndsItsName() {
        let pointerOnly = Self.header() + [0xC0, 0x0C] + FrameBuilder.be16(15) + FrameBuilder.be16(1)
        let labelThenPointer = Self.header() + [3, 0x77, 0x77, 0x77, 0xC0, 0x16] + FrameBuilder.be16(33) + FrameBuilder.be16(1) + Self.name
        // A pointer to itself, or past the message, is not read: the type after it still is.
        let loop = Self.header() + [0xC0, 0x0C] + FrameBuilder.be16(16) + FrameBuilder.be16(1)
        let far = Self.header() + [0xFF, 0xFF] + FrameBuilder.be16(65) + FrameBuilder.be16(1)
        for (message, label) in [(pointerOnly, "MX"), (labelThenPointer, "SRV"), (loop, "TXT"), (far, "HTTPS")] {
            #expect(Self.dns(Self.decode(Self.frame(IPProtocol.udp, Self.udp(payload: message)).bytes)) == Self.query(label))
        }
    }

    /// Names of up to 255 bytes (length bytes and the final zero included) are read; a byte
    /// more makes the message malformed: 127 labels of one letter, or four of 63 letters and
    /// 61 more, are the most; 128, or 62 more, are past it. Before a compression pointer, at
    /// most 254 bytes.
    @Test func namesOverTwoHundredFiftyFiveBytesAreMalformed() {
        func name(_ lengths: [Int], end: [UInt8] = [0]) -> [UInt8] {
            lengths.flatMap { [UInt8(truncatingIfNeeded: $0)] + [UInt8](repeating: 0x61, count: $0) } + end
        }
        func read(_ name: [UInt8]) -> DNSFacts.Kind {
            Self.dns(Self.decode(Self.frame(IPProtocol.udp, Self.udp(payload: Self.queryMessage(28, name: name))).bytes))
        }
        let ones = [Int](repeating: 1, count: 127)
        #expect(name(ones).count == 255)
        #expect(read(name(ones)) == Self.query("AAAA"))
        #expect(read(name(ones + [1])) == .malformed)
        #expect(name([63, 63, 63, 61]).count == 255)
        #expect(read(name([63, 63, 63, 61])) == Self.query("AAAA"))
        #expect(read(name([63, 63, 63, 62])) == .malformed)
        #expect(read(name([63, 63, 63, 63])) == .malformed)
        #expect(read(name([63, 63, 63, 61], end: [0xC0, 0x0C])) == Self.query("AAAA"))
        #expect(read(name([63, 63, 63, 62], end: [0xC0, 0x0C])) == .malformed)
    }

    /// Only port 53 (either side) is read as DNS.
    @Test func otherPortsAreNotDNS() {
        for (sport, dport) in [(40000, 5353), (5353, 5353), (53, 40000), (40000, 53), (53, 53)] as [(UInt16, UInt16)] {
            let p = Self.decode(Self.frame(IPProtocol.udp, Self.udp(sport, dport, payload: Self.queryMessage(1))).bytes)
            #expect(Self.dns(p) == (sport == 53 || dport == 53 ? Self.query("A") : .none), "\(sport) -> \(dport)")
        }
    }

    // MARK: Malformed messages

    static var malformedMessages: [(String, [UInt8])] {
        var cases: [(String, [UInt8])] = (0..<12).map { ("\($0) bytes", [UInt8](repeating: 0x81, count: $0)) }
        cases += [
            ("a query without a question", Self.header(qd: 0) + Self.name + [0, 1, 0, 1]),
            ("a label past the end", Self.header() + [40, 0x61, 0x62, 0x63]),
            ("a 0x40 label type", Self.header() + [0x41, 0x61] + Self.name + [0, 1, 0, 1]),
            ("a 0x80 label type after a label", Self.header() + [3, 0x77, 0x77, 0x77, 0x85] + Self.name + [0, 1, 0, 1]),
            ("no terminating zero", Self.header() + Self.name.dropLast()),
            ("a name and no type", Self.header() + Self.name),
            ("a name and one byte of type", Self.header() + Self.name + [0]),
            ("a pointer and no type", Self.header() + [0xC0, 0x0C, 0]),
        ]
        return cases
    }

    @Test(arguments: malformedMessages)
    func messagesWithoutAReadableHeaderOrQuestionAreMalformed(what: String, message: [UInt8]) {
        for v6 in [false, true] {
            let p = Self.decode(Self.frame(IPProtocol.udp, Self.udp(payload: message), v6: v6).bytes)
            #expect(p.kind == .ip && p.hasPorts, "\(what): the packet itself counts")
            #expect(Self.dns(p) == .malformed, "\(what) over \(v6 ? "IPv6" : "IPv4")")
        }
    }

    /// A UDP length under its own 8 bytes, or beyond the IP packet, leaves no message to read.
    @Test(arguments: [0, 4, 7, 200])
    func aUDPLengthThatDoesNotFitIsMalformed(length: Int) {
        let p = Self.decode(Self.frame(IPProtocol.udp, Self.udp(payload: Self.queryMessage(1), length: length)).bytes)
        #expect(p.kind == .ip)
        #expect(Self.dns(p) == .malformed)
    }

    // MARK: Cut by the capture

    /// Cut before the UDP length, the 12-byte header, the end of the name or the type:
    /// `cut`; a response needs its header only; a message shorter than its header is
    /// malformed wherever the capture ends.
    @Test(arguments: [false, true])
    func messagesCutBeforeWhatTellsThemAreCut(v6: Bool) {
        let query = Self.queryMessage(6)
        let (bytes, t) = Self.frame(IPProtocol.udp, Self.udp(payload: query), v6: v6)
        let typeEnd = t + 8 + query.count - 2
        for kept in (t + 4)...bytes.count {
            #expect(Self.dns(Self.decode(bytes.prefix(kept))) == (kept < typeEnd ? .cut : Self.query("SOA")), "\(kept) of \(bytes.count) bytes")
        }
        let response = Self.header(flags: 0x8183) + Self.name + [0, 1, 0, 1]
        let (r, rt) = Self.frame(IPProtocol.udp, Self.udp(53, 40000, payload: response), v6: v6)
        for kept in (rt + 4)...r.count {
            #expect(Self.dns(Self.decode(r.prefix(kept))) == (kept < rt + 8 + 12 ? .cut : Self.response("NXDOMAIN")), "\(kept) bytes")
        }
        let (short, st) = Self.frame(IPProtocol.udp, Self.udp(payload: [1, 2, 3, 4, 5]), v6: v6)
        for kept in (st + 4)...short.count {
            #expect(Self.dns(Self.decode(short.prefix(kept))) == (kept < st + 6 ? .cut : .malformed), "\(kept) bytes")
        }
    }

    // MARK: DNS over TCP

    /// A segment that starts with a 2-byte length equal to the rest of it holds a message;
    /// any other segment on port 53 (a handshake, two messages, half of one) is not DNS.
    @Test(arguments: [false, true])
    func dnsOverTCPNeedsALengthEqualToTheSegment(v6: Bool) {
        let query = Self.queryMessage(12)
        let framed = FrameBuilder.be16(UInt16(query.count)) + query
        let options: [UInt8] = [1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 7]
        for opts in [[], options] {
            func read(_ payload: [UInt8], flags: UInt8 = 0x18, sport: UInt16 = 40000, dport: UInt16 = 53) -> DNSFacts.Kind {
                Self.dns(Self.decode(Self.frame(IPProtocol.tcp, Self.tcp(sport, dport, flags: flags, options: opts, payload: payload), v6: v6).bytes))
            }
            #expect(read(framed) == Self.query("PTR"))
            #expect(read(FrameBuilder.be16(30) + Self.header(flags: 0x8182, qd: 0) + [UInt8](repeating: 0, count: 18), sport: 53, dport: 40000)
                == Self.response("SERVFAIL"))
            #expect(read([], flags: 0x02) == .none, "a SYN")
            #expect(read([0x00], flags: 0x10) == .none, "one byte")
            #expect(read(query) == .none, "no length")
            #expect(read(framed + framed) == .none, "two messages")
            #expect(read(Array(framed.prefix(12))) == .none, "the first half")
            #expect(read(Array(framed.dropFirst(12))) == .none, "the second half")
            #expect(read(FrameBuilder.be16(5) + [1, 2, 3, 4, 5]) == .malformed, "a 5-byte message")
            #expect(read(framed, dport: 443) == .none, "not port 53")
        }
    }

    /// Cut before the data offset byte or the 2-byte length, a segment on port 53 is cut;
    /// after them, the message is judged like one over UDP.
    @Test func dnsOverTCPCutByTheCapture() {
        let query = Self.queryMessage(16)
        let (bytes, t) = Self.frame(IPProtocol.tcp, Self.tcp(40000, 53, flags: 0x18, payload: FrameBuilder.be16(UInt16(query.count)) + query))
        let payload = t + 20
        for kept in (t + 4)...bytes.count {
            let expected: DNSFacts.Kind = kept < payload + 2 + query.count - 2 ? .cut : Self.query("TXT")
            #expect(Self.dns(Self.decode(bytes.prefix(kept))) == expected, "\(kept) of \(bytes.count) bytes")
        }
        // A SYN cut before its data offset byte is cut too: whether it has a payload is unknown.
        let (syn, st) = Self.frame(IPProtocol.tcp, Self.tcp(40000, 53, flags: 0x02))
        #expect(Self.dns(Self.decode(syn.prefix(st + 12))) == .cut)
        #expect(Self.dns(Self.decode(syn.prefix(st + 13))) == .none)
    }

    // MARK: Fragments

    /// A response too large for one packet: its first fragment holds the UDP header (whose
    /// length is the whole datagram's) and the DNS header, which count as the message; the
    /// bytes in later fragments count as not captured, and later fragments hold no DNS.
    @Test(arguments: [false, true])
    func aFirstFragmentIsReadAsFarAsItGoes(v6: Bool) {
        var response = Self.header(flags: 0x8180, an: 120) + Self.name + [0, 1, 0, 1]
        for _ in 0..<120 { response += [0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1] }
        let datagram = Self.udp(53, 40000, payload: response)
        func fragment(_ bytes: ArraySlice<UInt8>, offset: Int, more: Bool) -> [UInt8] {
            let ip = v6
                ? FrameBuilder.ipv6(src: Self.server6, dst: Self.client6, proto: IPProtocol.udp, payload: Array(bytes),
                                    extensions: [(IPProtocol.fragment, FrameBuilder.fragmentHeader(offset: UInt16(offset / 8), more: more))])
                : FrameBuilder.ipv4(src: Self.server4, dst: Self.client4, proto: IPProtocol.udp, payload: Array(bytes),
                                    moreFragments: more, fragmentOffset: UInt16(offset / 8))
            return FrameBuilder.ethernet(ip: ip)
        }
        let first = Self.decode(fragment(datagram[0..<1200], offset: 0, more: true))
        #expect(first.hasPorts && first.sourcePort == 53)
        #expect(Self.dns(first) == Self.response("NOERROR"))
        let later = Self.decode(fragment(datagram[1200...], offset: 1200, more: false))
        #expect(later.isLaterFragment && !later.hasPorts)
        #expect(Self.dns(later) == .none)

        // A query whose question goes on past the first fragment: what is missing is not
        // in this packet, as if cut by the capture.
        let long = Self.header() + [UInt8](repeating: 0, count: 25).flatMap { _ in [9] + [UInt8](repeating: 0x61, count: 9) } + [0, 0, 1, 0, 1]
        let query = Self.udp(40000, 53, payload: long)
        #expect(Self.dns(Self.decode(fragment(query[0..<96], offset: 0, more: true))) == .cut)
        #expect(Self.dns(Self.decode(fragment(query[0..<(query.count - 8) / 8 * 8], offset: 0, more: true))) == .cut)
        #expect(Self.dns(Self.decode(fragment(query[...], offset: 0, more: false))) == Self.query("A"))
    }
}
