import Testing
@testable import TrafficCore
import TrafficTestSupport

/// A frame and, for every prefix length, what decoding that prefix must give: malformed
/// exactly while the prefix ends before the bytes attribution needs, then the full answer.
struct TruncationCase: Sendable, CustomTestStringConvertible {
    enum Region: Sendable {
        /// Malformed, with one of these reasons.
        case malformed(Set<MalformedReason>)
        /// Not an IP packet (non-IP or malformed): the exact bucket is checked by another test.
        case notIP
    }

    let name: String
    let link: LinkType
    let frame: [UInt8]
    /// In order: prefixes shorter than `end` fall in the first matching region.
    let regions: [(end: Int, region: Region)]
    /// Every prefix at least as long as the last region's end.
    let complete: Expected

    var testDescription: String { name }

    /// Where the answer becomes `complete`.
    var completeFrom: Int { regions.map(\.end).max() ?? 0 }
}

enum TruncationLayout {
    typealias Regions = [(end: Int, region: TruncationCase.Region)]
    static let link = TruncationCase.Region.malformed([.truncatedLink])
    static let ip = TruncationCase.Region.malformed([.truncatedIP])
    static let transport = TruncationCase.Region.malformed([.truncatedTransport])
    /// The bytes between the last extension header's first bytes and the transport header:
    /// both reasons describe a frame cut there, the bucket (malformed) is what matters.
    static let extensionBody = TruncationCase.Region.malformed([.truncatedIP, .truncatedTransport])

    /// IPv4 starting at `start` with a header of `headerLength` bytes.
    static func ipv4(start: Int, headerLength: Int, needsPorts: Bool) -> Regions {
        var r: Regions = [(start + 20, ip), (start + headerLength, ip)]
        if needsPorts { r.append((start + headerLength + 4, transport)) }
        return r
    }

    /// IPv6 starting at `start` with `extensions`; stops at a later fragment.
    static func ipv6(start: Int, extensions: [(UInt8, [UInt8])], needsPorts: Bool) -> Regions {
        var r: Regions = [(start + 40, ip)]
        var offset = start + 40
        for (type, bytes) in extensions {
            let needed = type == IPProtocol.fragment ? 4 : 2
            r.append((offset + needed, ip))
            if type == IPProtocol.fragment && (UInt16(bytes[2]) << 8 | UInt16(bytes[3])) & 0xFFF8 != 0 {
                return r  // a later fragment: nothing after it is read
            }
            offset += bytes.count
        }
        if needsPorts {
            if !extensions.isEmpty { r.append((offset, extensionBody)) }
            r.append((offset + 4, transport))
        }
        return r
    }
}

@Suite("PacketDecoder: truncation at every byte")
struct TruncationTests {
    typealias L = TruncationLayout
    static let c4 = DecoderFixtures.v4Client, s4 = DecoderFixtures.v4Server
    static let c6 = DecoderFixtures.v6Client, s6 = DecoderFixtures.v6Server

    static let hbh = (IPProtocol.hopByHop, FrameBuilder.optionsHeader(units: 1))
    static let routing = (IPProtocol.routing, FrameBuilder.optionsHeader())
    static let dstOpts = (IPProtocol.destinationOptions, FrameBuilder.optionsHeader())
    static let ah = (IPProtocol.ah, FrameBuilder.authenticationHeader(payloadLength: 4))
    static let fragFirst = (IPProtocol.fragment, FrameBuilder.fragmentHeader(offset: 0, more: true))
    static let fragLater = (IPProtocol.fragment, FrameBuilder.fragmentHeader(offset: 90, more: true))

    static func tcp4(options: Int = 0, proto: UInt8 = IPProtocol.tcp, sport: UInt16 = 40000, dport: UInt16 = 443) -> [UInt8] {
        FrameBuilder.ipv4(src: c4, dst: s4, proto: proto, payload: FrameBuilder.ports(sport, dport, headerLength: 20, payload: 6),
                          options: [UInt8](repeating: 1, count: options))
    }

    static func ip6(_ extensions: [(UInt8, [UInt8])], proto: UInt8 = IPProtocol.tcp, sport: UInt16 = 50000, dport: UInt16 = 8080) -> [UInt8] {
        FrameBuilder.ipv6(src: c6, dst: s6, proto: proto, payload: FrameBuilder.ports(sport, dport, headerLength: 20, payload: 5),
                          extensions: extensions)
    }

    static var cases: [TruncationCase] {
        var c: [TruncationCase] = []
        func add(_ name: String, _ link: LinkType, _ frame: [UInt8], _ regions: L.Regions, _ complete: Expected) {
            c.append(TruncationCase(name: name, link: link, frame: frame, regions: regions, complete: complete))
        }
        let e4 = Expected.ip(c4, s4, proto: IPProtocol.tcp, ports: (40000, 443))
        func e6(_ proto: UInt8 = IPProtocol.tcp, later: Bool = false) -> Expected {
            .ip(c6, s6, proto: proto, ports: Service.hasPorts(proto) && !later ? (50000, 8080) : nil, later: later)
        }

        add("Ethernet TCP over IPv6", .ethernet, FrameBuilder.ethernet(ip: ip6([])),
            [(14, L.link)] + L.ipv6(start: 14, extensions: [], needsPorts: true), e6())
        add("802.1Q TCP over IPv4", .ethernet, FrameBuilder.ethernet(vlans: [42], ip: tcp4()),
            [(18, L.link)] + L.ipv4(start: 18, headerLength: 20, needsPorts: true), e4)
        let chain = [hbh, routing, fragFirst, ah, dstOpts]
        add("QinQ IPv6 hbh/routing/fragment/AH/dst + UDP", .ethernet,
            FrameBuilder.ethernet(etherType: 0x86DD, vlans: [10, 20], outerTPID: 0x88A8, payload: ip6(chain, proto: IPProtocol.udp)),
            [(22, L.link)] + L.ipv6(start: 22, extensions: chain, needsPorts: true), e6(IPProtocol.udp))
        let laterChain = [hbh, dstOpts, fragLater]
        add("QinQ IPv6 later fragment", .ethernet,
            FrameBuilder.ethernet(etherType: 0x86DD, vlans: [10, 20], outerTPID: 0x88A8, payload: ip6(laterChain, proto: IPProtocol.udp)),
            [(22, L.link)] + L.ipv6(start: 22, extensions: laterChain, needsPorts: false), e6(IPProtocol.udp, later: true))
        add("three tags SCTP over IPv4", .ethernet,
            FrameBuilder.ethernet(etherType: 0x0800, vlans: [1, 2, 3], outerTPID: 0x88A8, payload: tcp4(proto: IPProtocol.sctp)),
            [(26, L.link)] + L.ipv4(start: 26, headerLength: 20, needsPorts: true),
            .ip(c4, s4, proto: IPProtocol.sctp, ports: (40000, 443)))
        add("Ethernet IPv4 with 12 option bytes, UDP", .ethernet, FrameBuilder.ethernet(ip: tcp4(options: 12, proto: IPProtocol.udp)),
            [(14, L.link)] + L.ipv4(start: 14, headerLength: 32, needsPorts: true),
            .ip(c4, s4, proto: IPProtocol.udp, ports: (40000, 443)))
        add("Ethernet ICMP over IPv4", .ethernet,
            FrameBuilder.ethernet(ip: FrameBuilder.ipv4(src: c4, dst: s4, proto: IPProtocol.icmp, payload: FrameBuilder.icmpEcho(payload: 8))),
            [(14, L.link)] + L.ipv4(start: 14, headerLength: 20, needsPorts: false), .ip(c4, s4, proto: IPProtocol.icmp, ports: nil))
        add("Ethernet IPv4 later fragment", .ethernet,
            FrameBuilder.ethernet(ip: FrameBuilder.ipv4(src: c4, dst: s4, proto: IPProtocol.udp, payload: [1, 2, 3, 4, 5, 6], fragmentOffset: 7)),
            [(14, L.link)] + L.ipv4(start: 14, headerLength: 20, needsPorts: false),
            .ip(c4, s4, proto: IPProtocol.udp, ports: nil, later: true))
        add("Ethernet ICMPv6 after hbh and AH", .ethernet, FrameBuilder.ethernet(ip: ip6([hbh, ah], proto: IPProtocol.icmpv6)),
            [(14, L.link)] + L.ipv6(start: 14, extensions: [hbh, ah], needsPorts: false), e6(IPProtocol.icmpv6))
        // The SNAP header itself ([14, 22)) is checked by `llcSnapCutInsideTheSnapHeaderIsTruncatedLink`.
        add("LLC/SNAP TCP over IPv4", .ethernet, Frames.snap(etherType: 0x0800, payload: tcp4()),
            [(14, L.link), (22, .notIP)] + L.ipv4(start: 22, headerLength: 20, needsPorts: true), e4)
        add("LINUX_SLL TCP over IPv4", .linuxSLL, Frames.sll(protocol: 0x0800, payload: tcp4()),
            [(16, L.link)] + L.ipv4(start: 16, headerLength: 20, needsPorts: true), e4)
        add("LINUX_SLL IPv6 dst options + TCP", .linuxSLL, Frames.sll(protocol: 0x86DD, payload: ip6([dstOpts])),
            [(16, L.link)] + L.ipv6(start: 16, extensions: [dstOpts], needsPorts: true), e6())
        add("LINUX_SLL2 TCP over IPv4", .linuxSLL2, Frames.sll2(protocol: 0x0800, payload: tcp4(options: 4)),
            [(20, L.link)] + L.ipv4(start: 20, headerLength: 24, needsPorts: true), e4)
        add("LINUX_SLL2 IPv6 AH + TCP", .linuxSLL2, Frames.sll2(protocol: 0x86DD, payload: ip6([ah])),
            [(20, L.link)] + L.ipv6(start: 20, extensions: [ah], needsPorts: true), e6())
        add("NULL little-endian TCP over IPv4", .null, Frames.nullLE(family: 2, payload: tcp4()),
            [(4, L.link)] + L.ipv4(start: 4, headerLength: 20, needsPorts: true), e4)
        add("NULL big-endian AF 30 IPv6 + SCTP", .null, Frames.familyBE(30, payload: ip6([], proto: IPProtocol.sctp)),
            [(4, L.link)] + L.ipv6(start: 4, extensions: [], needsPorts: true), e6(IPProtocol.sctp))
        add("LOOP TCP over IPv4", .loop, Frames.familyBE(2, payload: tcp4()),
            [(4, L.link)] + L.ipv4(start: 4, headerLength: 20, needsPorts: true), e4)
        add("LOOP AF 24 IPv6 routing + UDP", .loop, Frames.familyBE(24, payload: ip6([routing], proto: IPProtocol.udp)),
            [(4, L.link)] + L.ipv6(start: 4, extensions: [routing], needsPorts: true), e6(IPProtocol.udp))
        add("RAW TCP over IPv4", .raw, tcp4(), L.ipv4(start: 0, headerLength: 20, needsPorts: true), e4)
        add("RAW IPv6 first fragment + TCP", .raw, ip6([fragFirst]), L.ipv6(start: 0, extensions: [fragFirst], needsPorts: true), e6())
        add("IPV4 TCP with 40 option bytes", .ipv4, tcp4(options: 40), L.ipv4(start: 0, headerLength: 60, needsPorts: true), e4)
        add("IPV6 hbh + TCP", .ipv6, ip6([hbh]), L.ipv6(start: 0, extensions: [hbh], needsPorts: true), e6())
        add("ARP", .ethernet, FrameBuilder.arp, [(14, L.link)], .nonIP)
        add("802.1Q ARP", .ethernet, FrameBuilder.ethernet(etherType: 0x0806, vlans: [9], payload: [UInt8](repeating: 0, count: 28)),
            [(18, L.link)], .nonIP)
        add("NULL unknown family", .null, Frames.nullLE(family: 17, payload: tcp4()), [(4, L.link)], .nonIP)
        return c
    }

    @Test(arguments: cases)
    func everyPrefix(_ c: TruncationCase) {
        #expect(c.completeFrom <= c.frame.count, "the case must reach its complete form")
        for n in 0...c.frame.count {
            let p = decodeExact(c.frame.prefix(n), link: c.link)
            guard let region = c.regions.first(where: { n < $0.end })?.region else {
                expectDecoded(p, c.complete, "prefix \(n) of \(c.frame.count):")
                continue
            }
            switch region {
            case .malformed(let reasons):
                expectDecoded(p, Expected(kind: .malformed, reasons: reasons), "prefix \(n) of \(c.frame.count):")
            case .notIP:
                #expect(p.kind != .ip, "prefix \(n) of \(c.frame.count): decoded \(describe(p))")
            }
        }
    }

    /// An 802.3 frame cut inside its SNAP header (after the Ethernet header, before the
    /// SNAP EtherType) cannot be attributed: a truncated link header, so `malformed`
    /// (truncated_link), as a frame cut inside a VLAN tag is.
    @Test func llcSnapCutInsideTheSnapHeaderIsTruncatedLink() {
        let frame = Frames.snap(etherType: 0x0800, payload: Self.tcp4())
        for n in 14..<22 {
            expectDecoded(decodeExact(frame.prefix(n), link: .ethernet), .malformed(.truncatedLink), "prefix \(n):")
        }
        expectDecoded(decodeExact(frame.prefix(22), link: .ethernet), .malformed(.truncatedIP), "prefix 22:")
    }

    /// Monitoring often captures only 64-128 bytes: a frame cut right after the ports is attributed.
    @Test(arguments: [54, 64, 96, 128])
    func snapLengthCutAfterThePortsIsAttributed(snapLength: Int) {
        let frame = FrameBuilder.ethernet(ip: FrameBuilder.ipv4(src: Self.c4, dst: Self.s4, proto: IPProtocol.tcp,
                                                                payload: FrameBuilder.ports(40000, 443, headerLength: 20, payload: 1400)))
        expectDecoded(decodeExact(frame.prefix(snapLength), link: .ethernet),
                      .ip(Self.c4, Self.s4, proto: IPProtocol.tcp, ports: (40000, 443)))
    }
}
