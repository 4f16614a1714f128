import Testing
@testable import TrafficCore
import TrafficTestSupport

/// Addresses and packets shared by the decoder tests.
enum DecoderFixtures {
    static let v4Client = addr("198.51.100.7")
    static let v4Server = addr("10.0.0.1")
    static let v6Client = addr("2001:db8:2::7")
    static let v6Server = addr("2001:db8:1::1")

    /// TCP 40000 -> 443 over IPv4, a 20-byte TCP header.
    static let tcp4 = FrameBuilder.ipv4(src: v4Client, dst: v4Server, proto: IPProtocol.tcp,
                                        payload: FrameBuilder.ports(40000, 443, headerLength: 20, payload: 10))
    static let tcp4Expected = Expected.ip(v4Client, v4Server, proto: IPProtocol.tcp, ports: (40000, 443))

    /// UDP 5353 -> 53 over IPv6.
    static let udp6 = FrameBuilder.ipv6(src: v6Client, dst: v6Server, proto: IPProtocol.udp,
                                        payload: FrameBuilder.ports(5353, 53, headerLength: 8, payload: 12))
    static let udp6Expected = Expected.ip(v6Client, v6Server, proto: IPProtocol.udp, ports: (5353, 53))
}

struct LinkCase: Sendable, CustomTestStringConvertible {
    let name: String
    let link: LinkType
    let frame: [UInt8]
    let expected: Expected
    var testDescription: String { name }
}

@Suite("PacketDecoder: link layers")
struct LinkLayerDecodingTests {
    typealias F = DecoderFixtures

    static var cases: [LinkCase] {
        let tcp4 = F.tcp4, udp6 = F.udp6
        let e4 = F.tcp4Expected, e6 = F.udp6Expected
        var c: [LinkCase] = [
            LinkCase(name: "Ethernet IPv4", link: .ethernet, frame: FrameBuilder.ethernet(ip: tcp4), expected: e4),
            LinkCase(name: "Ethernet IPv6", link: .ethernet, frame: FrameBuilder.ethernet(ip: udp6), expected: e6),
            LinkCase(name: "802.1Q IPv4", link: .ethernet, frame: FrameBuilder.ethernet(vlans: [100], ip: tcp4), expected: e4),
            LinkCase(name: "802.1Q IPv6", link: .ethernet, frame: FrameBuilder.ethernet(vlans: [4094], ip: udp6), expected: e6),
            LinkCase(name: "QinQ 0x88a8+0x8100 IPv4", link: .ethernet,
                     frame: FrameBuilder.ethernet(etherType: 0x0800, vlans: [10, 20], outerTPID: 0x88A8, payload: tcp4), expected: e4),
            LinkCase(name: "QinQ 0x88a8+0x8100 IPv6", link: .ethernet,
                     frame: FrameBuilder.ethernet(etherType: 0x86DD, vlans: [10, 20], outerTPID: 0x88A8, payload: udp6), expected: e6),
            LinkCase(name: "three tags 0x88a8+0x8100+0x8100 IPv4", link: .ethernet,
                     frame: FrameBuilder.ethernet(etherType: 0x0800, vlans: [1, 2, 3], outerTPID: 0x88A8, payload: tcp4), expected: e4),
            LinkCase(name: "three 802.1Q tags IPv6", link: .ethernet,
                     frame: FrameBuilder.ethernet(etherType: 0x86DD, vlans: [1, 2, 3], payload: udp6), expected: e6),
            LinkCase(name: "QinQ 0x9100+0x8100 IPv4", link: .ethernet,
                     frame: FrameBuilder.ethernet(etherType: 0x0800, vlans: [7, 8], outerTPID: 0x9100, payload: tcp4), expected: e4),
            LinkCase(name: "LLC/SNAP IPv4", link: .ethernet, frame: Frames.snap(etherType: 0x0800, payload: tcp4), expected: e4),
            LinkCase(name: "LLC/SNAP IPv6", link: .ethernet, frame: Frames.snap(etherType: 0x86DD, payload: udp6), expected: e6),
            LinkCase(name: "802.1Q + LLC/SNAP IPv4", link: .ethernet,
                     frame: Frames.snap(etherType: 0x0800, vlans: [5], payload: tcp4), expected: e4),
            LinkCase(name: "ARP", link: .ethernet, frame: FrameBuilder.arp, expected: .nonIP),
            LinkCase(name: "802.1Q ARP", link: .ethernet,
                     frame: FrameBuilder.ethernet(etherType: 0x0806, vlans: [100], payload: [UInt8](repeating: 0, count: 28)), expected: .nonIP),
            LinkCase(name: "LLDP 0x88cc", link: .ethernet,
                     frame: FrameBuilder.ethernet(etherType: 0x88CC, payload: [UInt8](repeating: 0x02, count: 40)), expected: .nonIP),
            LinkCase(name: "unknown EtherType 0x1234 (IP bytes after it)", link: .ethernet,
                     frame: FrameBuilder.ethernet(etherType: 0x1234, payload: tcp4), expected: .nonIP),
            LinkCase(name: "IPX 0x8137", link: .ethernet,
                     frame: FrameBuilder.ethernet(etherType: 0x8137, payload: tcp4), expected: .nonIP),
            LinkCase(name: "802.3 LLC (STP)", link: .ethernet,
                     frame: FrameBuilder.ethernet(etherType: 38, payload: [0x42, 0x42, 0x03] + [UInt8](repeating: 0, count: 35)), expected: .nonIP),
            LinkCase(name: "SNAP with a non-zero OUI (CDP)", link: .ethernet,
                     frame: FrameBuilder.ethernet(etherType: UInt16(8 + tcp4.count),
                                                  payload: [0xAA, 0xAA, 0x03, 0x00, 0x00, 0x0C, 0x08, 0x00] + tcp4), expected: .nonIP),
            LinkCase(name: "SNAP zero OUI ARP", link: .ethernet,
                     frame: Frames.snap(etherType: 0x0806, payload: [UInt8](repeating: 0, count: 28)), expected: .nonIP),
            LinkCase(name: "EtherType IPv4 carrying IPv6", link: .ethernet,
                     frame: FrameBuilder.ethernet(etherType: 0x0800, payload: udp6), expected: .malformed(.badVersion)),
            LinkCase(name: "EtherType IPv6 carrying IPv4", link: .ethernet,
                     frame: FrameBuilder.ethernet(etherType: 0x86DD, payload: tcp4), expected: .malformed(.badVersion)),

            LinkCase(name: "LINUX_SLL IPv4", link: .linuxSLL, frame: Frames.sll(protocol: 0x0800, payload: tcp4), expected: e4),
            LinkCase(name: "LINUX_SLL IPv6", link: .linuxSLL, frame: Frames.sll(protocol: 0x86DD, payload: udp6), expected: e6),
            LinkCase(name: "LINUX_SLL ARP", link: .linuxSLL,
                     frame: Frames.sll(protocol: 0x0806, payload: [UInt8](repeating: 0, count: 28)), expected: .nonIP),
            LinkCase(name: "LINUX_SLL2 IPv4", link: .linuxSLL2, frame: Frames.sll2(protocol: 0x0800, payload: tcp4), expected: e4),
            LinkCase(name: "LINUX_SLL2 IPv6", link: .linuxSLL2, frame: Frames.sll2(protocol: 0x86DD, payload: udp6), expected: e6),
            LinkCase(name: "LINUX_SLL2 ARP", link: .linuxSLL2,
                     frame: Frames.sll2(protocol: 0x0806, payload: [UInt8](repeating: 0, count: 28)), expected: .nonIP),

            LinkCase(name: "NULL unknown family 7", link: .null, frame: Frames.nullLE(family: 7, payload: tcp4), expected: .nonIP),
            LinkCase(name: "NULL AF_INET carrying IPv6", link: .null, frame: Frames.nullLE(family: 2, payload: udp6),
                     expected: .malformed(.badVersion)),
            LinkCase(name: "LOOP AF_INET", link: .loop, frame: Frames.familyBE(2, payload: tcp4), expected: e4),
            // LOOP is network order only: a little-endian 2 reads as 0x02000000, no known family.
            LinkCase(name: "LOOP little-endian AF_INET is not AF_INET", link: .loop,
                     frame: Frames.nullLE(family: 2, payload: tcp4), expected: .nonIP),

            LinkCase(name: "RAW(12) IPv4", link: .raw, frame: tcp4, expected: e4),
            LinkCase(name: "RAW(12) IPv6", link: .raw, frame: udp6, expected: e6),
            LinkCase(name: "RAW(14) IPv4", link: LinkType(rawValue: 14), frame: tcp4, expected: e4),
            LinkCase(name: "LINKTYPE_RAW(101) IPv6", link: LinkType(rawValue: 101), frame: udp6, expected: e6),
            LinkCase(name: "RAW version 5", link: .raw, frame: [0x50] + tcp4.dropFirst(), expected: .malformed(.badVersion)),
            LinkCase(name: "RAW empty", link: .raw, frame: [], expected: .malformed(.truncatedIP)),
            LinkCase(name: "IPV4(228)", link: LinkType(rawValue: 228), frame: tcp4, expected: e4),
            LinkCase(name: "IPV4(228) carrying IPv6", link: .ipv4, frame: udp6, expected: .malformed(.badVersion)),
            LinkCase(name: "IPV6(229)", link: LinkType(rawValue: 229), frame: udp6, expected: e6),
            LinkCase(name: "IPV6(229) carrying IPv4", link: .ipv6, frame: tcp4, expected: .malformed(.badVersion)),
        ]
        // DLT_NULL: the family in the capturing host's order, either order; DLT_LOOP: network order.
        for family: UInt32 in [2, 10, 24, 28, 30] {
            let payload = family == 2 ? tcp4 : udp6
            let expected = family == 2 ? e4 : e6
            c.append(LinkCase(name: "NULL little-endian AF \(family)", link: .null,
                              frame: Frames.nullLE(family: family, payload: payload), expected: expected))
            c.append(LinkCase(name: "NULL big-endian AF \(family)", link: .null,
                              frame: Frames.familyBE(family, payload: payload), expected: expected))
            if family != 2 {
                c.append(LinkCase(name: "LOOP AF \(family)", link: .loop,
                                  frame: Frames.familyBE(family, payload: payload), expected: expected))
            }
        }
        return c
    }

    @Test(arguments: cases)
    func decodes(_ c: LinkCase) {
        expectDecoded(decodeExact(c.frame, link: c.link), c.expected, c.name)
    }

    @Test(arguments: LinkType.supported)
    func everySupportedLinkTypeHasADecoder(_ link: LinkType) throws {
        let decoder = try #require(PacketDecoder(linkType: link))
        #expect(decoder.linkType == link)
        #expect(link.isSupported)
    }

    @Test(arguments: [Int32(105), 127, 147, 192, 9999, -1])
    func unsupportedLinkTypesHaveNoDecoder(_ raw: Int32) {
        let link = LinkType(rawValue: raw)
        #expect(PacketDecoder(linkType: link) == nil)
        #expect(!link.isSupported)
        #expect(link.description == "DLT \(raw)")
    }

    @Test func linkTypeNumbersAndNames() {
        let expected: [(LinkType, Int32, String)] = [
            (.null, 0, "NULL"), (.ethernet, 1, "EN10MB"), (.raw, 12, "RAW"), (.loop, 108, "LOOP"),
            (.linuxSLL, 113, "LINUX_SLL"), (.ipv4, 228, "IPV4"), (.ipv6, 229, "IPV6"), (.linuxSLL2, 276, "LINUX_SLL2"),
        ]
        for (link, raw, name) in expected {
            #expect(link.rawValue == raw)
            #expect(link.description == name)
        }
    }
}

@Suite("PacketDecoder: IPv4")
struct IPv4DecodingTests {
    typealias F = DecoderFixtures
    static let src = F.v4Client, dst = F.v4Server

    static func decode(_ ip: [UInt8]) -> DecodedPacket { decodeExact(FrameBuilder.ethernet(etherType: 0x0800, payload: ip), link: .ethernet) }

    @Test(arguments: [4, 8, 12, 20, 40])
    func optionsAreSkippedToThePorts(optionBytes: Int) {
        // NOPs then an end-of-options byte, padded to a multiple of 4 by construction.
        let options = [UInt8](repeating: 0x01, count: optionBytes - 1) + [0x00]
        let ip = FrameBuilder.ipv4(src: Self.src, dst: Self.dst, proto: IPProtocol.udp,
                                   payload: FrameBuilder.ports(1111, 2222), options: options)
        #expect(Int(ip[0] & 0x0F) * 4 == 20 + optionBytes)
        expectDecoded(Self.decode(ip), .ip(Self.src, Self.dst, proto: IPProtocol.udp, ports: (1111, 2222)))
    }

    @Test func firstFragmentCarriesThePorts() {
        let ip = FrameBuilder.ipv4(src: Self.src, dst: Self.dst, proto: IPProtocol.udp,
                                   payload: FrameBuilder.ports(5000, 53, payload: 1400), moreFragments: true, fragmentOffset: 0)
        expectDecoded(Self.decode(ip), .ip(Self.src, Self.dst, proto: IPProtocol.udp, ports: (5000, 53)))
    }

    @Test func dontFragmentAndReservedFlagsAreNotAnOffset() {
        var ip = FrameBuilder.ipv4(src: Self.src, dst: Self.dst, proto: IPProtocol.tcp, payload: FrameBuilder.ports(5000, 80, headerLength: 20))
        ip[6] = 0x40 | 0x20  // DF and MF, offset 0
        expectDecoded(Self.decode(ip), .ip(Self.src, Self.dst, proto: IPProtocol.tcp, ports: (5000, 80)))
        ip[6] = 0x80  // the reserved ("evil") bit, offset 0
        expectDecoded(Self.decode(ip), .ip(Self.src, Self.dst, proto: IPProtocol.tcp, ports: (5000, 80)))
    }

    @Test(arguments: [(UInt16(1), true), (185, true), (185, false), (0x1FFF, false)])
    func laterFragmentHasNoPorts(offset: UInt16, more: Bool) {
        // The bytes after the header are the middle of a datagram, not ports.
        let ip = FrameBuilder.ipv4(src: Self.src, dst: Self.dst, proto: IPProtocol.udp,
                                   payload: [0x12, 0x34, 0x56, 0x78, 0, 0, 0, 0], moreFragments: more, fragmentOffset: offset)
        let p = Self.decode(ip)
        expectDecoded(p, .ip(Self.src, Self.dst, proto: IPProtocol.udp, ports: nil, later: true))
        #expect(p.sourcePort == 0 && p.destinationPort == 0)
    }

    @Test func laterFragmentWithNoPayloadIsStillIP() {
        let ip = FrameBuilder.ipv4(src: Self.src, dst: Self.dst, proto: IPProtocol.tcp, payload: [], fragmentOffset: 100)
        expectDecoded(Self.decode(ip), .ip(Self.src, Self.dst, proto: IPProtocol.tcp, ports: nil, later: true))
    }

    @Test func zeroTotalLengthIsAccepted() {
        // A TSO/GSO segment as Linux hands it to the capture.
        let ip = FrameBuilder.ipv4(src: Self.src, dst: Self.dst, proto: IPProtocol.tcp,
                                   payload: FrameBuilder.ports(40000, 443, headerLength: 20, payload: 3000), totalLength: 0)
        expectDecoded(Self.decode(ip), .ip(Self.src, Self.dst, proto: IPProtocol.tcp, ports: (40000, 443)))
    }

    @Test(arguments: [(20, UInt16(19)), (20, 1), (24, 20), (24, 23), (60, 59), (60, 40)])
    func totalLengthBelowHeaderLengthIsBadHeaderLength(headerLength: Int, totalLength: UInt16) {
        let options = [UInt8](repeating: 0x01, count: headerLength - 20)
        let ip = FrameBuilder.ipv4(src: Self.src, dst: Self.dst, proto: IPProtocol.tcp,
                                   payload: FrameBuilder.ports(1, 2, headerLength: 20), options: options, totalLength: totalLength)
        expectDecoded(Self.decode(ip), .malformed(.badHeaderLength))
    }

    @Test(arguments: [UInt8(0), 1, 2, 3, 4])
    func headerLengthBelowFiveWordsIsBadHeaderLength(ihl: UInt8) {
        var ip = FrameBuilder.ipv4(src: Self.src, dst: Self.dst, proto: IPProtocol.tcp, payload: FrameBuilder.ports(1, 2, headerLength: 20))
        ip[0] = 0x40 | ihl
        expectDecoded(Self.decode(ip), .malformed(.badHeaderLength))
        expectDecoded(decodeExact(ip, link: .raw), .malformed(.badHeaderLength))
    }

    @Test(arguments: [UInt8(0), 1, 2, 3, 5, 6, 7, 15])
    func wrongVersionIsBadVersion(version: UInt8) {
        var ip = FrameBuilder.ipv4(src: Self.src, dst: Self.dst, proto: IPProtocol.tcp, payload: FrameBuilder.ports(1, 2, headerLength: 20))
        ip[0] = version << 4 | 5
        expectDecoded(Self.decode(ip), .malformed(.badVersion))
        expectDecoded(decodeExact(ip, link: .ipv4), .malformed(.badVersion))
    }

    @Test func headerLengthPastTheDataIsTruncatedIP() {
        // IHL 15 (60 bytes) in a 40-byte packet.
        var ip = FrameBuilder.ipv4(src: Self.src, dst: Self.dst, proto: IPProtocol.icmp, payload: FrameBuilder.icmpEcho(payload: 12))
        ip[0] = 0x4F
        ip[2] = 0; ip[3] = 0  // total length 0, so only the captured length limits the header
        #expect(ip.count == 40)
        expectDecoded(Self.decode(ip), .malformed(.truncatedIP))
    }

    @Test(arguments: [IPProtocol.tcp, IPProtocol.udp, IPProtocol.sctp])
    func totalLengthLeavingNoRoomForThePortsIsTruncatedTransport(proto: UInt8) {
        // The captured bytes hold "ports", but past the IP total length they are Ethernet padding.
        for room in 0..<4 {
            let ip = FrameBuilder.ipv4(src: Self.src, dst: Self.dst, proto: proto,
                                       payload: FrameBuilder.ports(1000, 2000, headerLength: 20), totalLength: UInt16(20 + room))
            expectDecoded(Self.decode(ip), .malformed(.truncatedTransport), "room \(room):")
        }
        let ip = FrameBuilder.ipv4(src: Self.src, dst: Self.dst, proto: proto,
                                   payload: FrameBuilder.ports(1000, 2000, headerLength: 20), totalLength: 24)
        expectDecoded(Self.decode(ip), .ip(Self.src, Self.dst, proto: proto, ports: (1000, 2000)))
    }

    @Test func icmpNeedsNoTransportBytes() {
        let ip = FrameBuilder.ipv4(src: Self.src, dst: Self.dst, proto: IPProtocol.icmp, payload: [])
        expectDecoded(Self.decode(ip), .ip(Self.src, Self.dst, proto: IPProtocol.icmp, ports: nil))
        #expect(!Self.decode(ip).isReply)
    }

    /// Replies (echo, timestamp, information, address mask, router advertisement) and errors
    /// (unreachable, source quench, redirect, time exceeded, parameter problem) come from the
    /// server side.
    @Test func icmpRepliesAndErrorsAreMarked() {
        let replies: Set<UInt8> = [0, 3, 4, 5, 9, 11, 12, 14, 16, 18]
        for type in 0...255 {
            let ip = FrameBuilder.ipv4(src: Self.src, dst: Self.dst, proto: IPProtocol.icmp, payload: [UInt8(type), 0, 0, 0])
            #expect(Self.decode(ip).isReply == replies.contains(UInt8(type)), "type \(type)")
            // The same type byte in a later fragment is payload, not a type.
            let later = FrameBuilder.ipv4(
                src: Self.src, dst: Self.dst, proto: IPProtocol.icmp, payload: [UInt8(type), 0, 0, 0], fragmentOffset: 10)
            #expect(!Self.decode(later).isReply)
        }
        // Another protocol's first byte is never read as a type.
        let udp = FrameBuilder.ipv4(src: Self.src, dst: Self.dst, proto: IPProtocol.udp, payload: FrameBuilder.ports(0, 53))
        #expect(!Self.decode(udp).isReply)
    }
}

@Suite("PacketDecoder: IPv6 extension headers")
struct IPv6DecodingTests {
    /// ICMPv6 errors (1-4), echo reply, router and neighbor advertisements and node
    /// information reply come from the server side, behind extension headers too.
    @Test func icmpv6RepliesAndErrorsAreMarked() {
        let replies: Set<UInt8> = [1, 2, 3, 4, 129, 134, 136, 140]
        for type in 0...255 {
            let plain = FrameBuilder.ipv6(src: Self.src, dst: Self.dst, proto: IPProtocol.icmpv6, payload: [UInt8(type), 0, 0, 0])
            #expect(Self.decode(plain).isReply == replies.contains(UInt8(type)), "type \(type)")
            let chained = FrameBuilder.ipv6(
                src: Self.src, dst: Self.dst, proto: IPProtocol.icmpv6, payload: [UInt8(type), 0, 0, 0],
                extensions: [(IPProtocol.hopByHop, FrameBuilder.optionsHeader())])
            #expect(Self.decode(chained).isReply == replies.contains(UInt8(type)), "type \(type) after hop-by-hop")
        }
        // Cut before the type byte: a request as far as anyone can tell.
        let cut = FrameBuilder.ipv6(src: Self.src, dst: Self.dst, proto: IPProtocol.icmpv6, payload: [129, 0, 0, 0])
        #expect(!Self.decode(Array(cut.prefix(40))).isReply)
    }

    typealias F = DecoderFixtures
    static let src = F.v6Client, dst = F.v6Server

    static func decode(_ ip: [UInt8]) -> DecodedPacket { decodeExact(FrameBuilder.ethernet(etherType: 0x86DD, payload: ip), link: .ethernet) }

    struct ChainCase: Sendable, CustomTestStringConvertible {
        let name: String
        let extensions: [(UInt8, [UInt8])]
        let proto: UInt8
        /// The fragment header, if any, says this is not the first fragment.
        let later: Bool
        var testDescription: String { name }
    }

    static let hbh = (IPProtocol.hopByHop, FrameBuilder.optionsHeader())
    static let hbhLong = (IPProtocol.hopByHop, FrameBuilder.optionsHeader(units: 2))
    static let routing = (IPProtocol.routing, FrameBuilder.optionsHeader(units: 1))
    static let dstOpts = (IPProtocol.destinationOptions, FrameBuilder.optionsHeader())
    static let ah = (IPProtocol.ah, FrameBuilder.authenticationHeader(payloadLength: 4))
    static let ahShort = (IPProtocol.ah, FrameBuilder.authenticationHeader(payloadLength: 1))
    static let fragFirst = (IPProtocol.fragment, FrameBuilder.fragmentHeader(offset: 0, more: true))
    static let fragLater = (IPProtocol.fragment, FrameBuilder.fragmentHeader(offset: 181, more: true))
    static let fragLast = (IPProtocol.fragment, FrameBuilder.fragmentHeader(offset: 1, more: false))

    static let chains: [ChainCase] = [
        ChainCase(name: "hop-by-hop", extensions: [hbh], proto: IPProtocol.tcp, later: false),
        ChainCase(name: "hop-by-hop, 24 bytes", extensions: [hbhLong], proto: IPProtocol.udp, later: false),
        ChainCase(name: "routing", extensions: [routing], proto: IPProtocol.tcp, later: false),
        ChainCase(name: "destination options", extensions: [dstOpts], proto: IPProtocol.sctp, later: false),
        ChainCase(name: "AH (24 bytes)", extensions: [ah], proto: IPProtocol.tcp, later: false),
        ChainCase(name: "AH (12 bytes)", extensions: [ahShort], proto: IPProtocol.udp, later: false),
        ChainCase(name: "first fragment", extensions: [fragFirst], proto: IPProtocol.udp, later: false),
        ChainCase(name: "later fragment", extensions: [fragLater], proto: IPProtocol.udp, later: true),
        ChainCase(name: "last fragment", extensions: [fragLast], proto: IPProtocol.tcp, later: true),
        ChainCase(name: "hbh, dst, routing, first fragment, AH, dst", extensions: [hbh, dstOpts, routing, fragFirst, ah, dstOpts],
                  proto: IPProtocol.tcp, later: false),
        ChainCase(name: "hbh, routing, later fragment", extensions: [hbh, routing, fragLater], proto: IPProtocol.udp, later: true),
        ChainCase(name: "hbh, routing, AH then ICMPv6", extensions: [hbhLong, routing, ah], proto: IPProtocol.icmpv6, later: false),
        ChainCase(name: "dst then ESP", extensions: [dstOpts], proto: IPProtocol.esp, later: false),
        ChainCase(name: "hbh then no next header", extensions: [hbh], proto: 59, later: false),
        ChainCase(name: "thirty destination options", extensions: Array(repeating: dstOpts, count: 30), proto: IPProtocol.udp, later: false),
    ]

    @Test(arguments: chains)
    func extensionChain(_ c: ChainCase) {
        let payload = Service.hasPorts(c.proto) && !c.later ? FrameBuilder.ports(33000, 8443, headerLength: 20)
            : [0xDE, 0xAD, 0xBE, 0xEF, 0, 0, 0, 0]
        let ip = FrameBuilder.ipv6(src: Self.src, dst: Self.dst, proto: c.proto, payload: payload, extensions: c.extensions)
        let hasPorts = Service.hasPorts(c.proto) && !c.later
        let expected = Expected.ip(Self.src, Self.dst, proto: c.proto, ports: hasPorts ? (33000, 8443) : nil, later: c.later)
        expectDecoded(Self.decode(ip), expected)
        expectDecoded(decodeExact(ip, link: .ipv6), expected)
    }

    @Test func zeroPayloadLengthIsAccepted() {
        var ip = FrameBuilder.ipv6(src: Self.src, dst: Self.dst, proto: IPProtocol.tcp,
                                   payload: FrameBuilder.ports(1234, 22, headerLength: 20), extensions: [Self.hbh])
        ip[4] = 0; ip[5] = 0
        expectDecoded(Self.decode(ip), .ip(Self.src, Self.dst, proto: IPProtocol.tcp, ports: (1234, 22)))
    }

    @Test func payloadLengthLeavingNoRoomForThePortsIsTruncatedTransport() {
        // Extension headers (8 bytes) + UDP: the ports need a payload length of at least 12.
        var ip = FrameBuilder.ipv6(src: Self.src, dst: Self.dst, proto: IPProtocol.udp,
                                   payload: FrameBuilder.ports(1234, 53), extensions: [Self.dstOpts])
        for payloadLength in [1, 8, 10, 11] {
            ip[4] = 0; ip[5] = UInt8(payloadLength)
            expectDecoded(Self.decode(ip), .malformed(.truncatedTransport), "payload length \(payloadLength):")
        }
        ip[5] = 12
        expectDecoded(Self.decode(ip), .ip(Self.src, Self.dst, proto: IPProtocol.udp, ports: (1234, 53)))
    }

    @Test(arguments: [UInt8(0), 4, 5, 7, 15])
    func wrongVersionIsBadVersion(version: UInt8) {
        var ip = FrameBuilder.ipv6(src: Self.src, dst: Self.dst, proto: IPProtocol.udp, payload: FrameBuilder.ports(1, 2))
        ip[0] = version << 4
        expectDecoded(Self.decode(ip), .malformed(.badVersion))
        expectDecoded(decodeExact(ip, link: .ipv6), .malformed(.badVersion))
    }
}

@Suite("PacketDecoder: transport protocols")
struct TransportDecodingTests {
    typealias F = DecoderFixtures

    static let portProtocols = [IPProtocol.tcp, IPProtocol.udp, IPProtocol.sctp]

    @Test(arguments: portProtocols, [(UInt16(1), UInt16(65535)), (65535, 1), (40000, 443), (53, 53)])
    func portsAreReadOverBothFamilies(proto: UInt8, ports: (UInt16, UInt16)) {
        let payload = FrameBuilder.ports(ports.0, ports.1, headerLength: proto == IPProtocol.tcp ? 20 : 12)
        let ip4 = FrameBuilder.ipv4(src: F.v4Client, dst: F.v4Server, proto: proto, payload: payload)
        expectDecoded(decodeExact(FrameBuilder.ethernet(ip: ip4), link: .ethernet),
                      .ip(F.v4Client, F.v4Server, proto: proto, ports: ports))
        let ip6 = FrameBuilder.ipv6(src: F.v6Client, dst: F.v6Server, proto: proto, payload: payload)
        expectDecoded(decodeExact(FrameBuilder.ethernet(ip: ip6), link: .ethernet),
                      .ip(F.v6Client, F.v6Server, proto: proto, ports: ports))
    }

    /// Protocols without ports: the bytes after the header look like ports but must not be read as such.
    @Test(arguments: [IPProtocol.icmp, IPProtocol.igmp, IPProtocol.gre, IPProtocol.esp, IPProtocol.ah,
                      0, 4, 41, 89, 103, 136, 254, 255])
    func ipv4ProtocolsWithoutPorts(proto: UInt8) {
        let ip = FrameBuilder.ipv4(src: F.v4Client, dst: F.v4Server, proto: proto, payload: FrameBuilder.ports(1000, 2000))
        let p = decodeExact(FrameBuilder.ethernet(ip: ip), link: .ethernet)
        expectDecoded(p, .ip(F.v4Client, F.v4Server, proto: proto, ports: nil))
        #expect(p.sourcePort == 0 && p.destinationPort == 0)
    }

    @Test(arguments: [IPProtocol.icmpv6, IPProtocol.gre, IPProtocol.esp, IPProtocol.icmp, 4, 41, 59, 89, 135, 254, 255])
    func ipv6ProtocolsWithoutPorts(proto: UInt8) {
        let ip = FrameBuilder.ipv6(src: F.v6Client, dst: F.v6Server, proto: proto, payload: FrameBuilder.ports(1000, 2000))
        let p = decodeExact(FrameBuilder.ethernet(ip: ip), link: .ethernet)
        expectDecoded(p, .ip(F.v6Client, F.v6Server, proto: proto, ports: nil))
        #expect(p.sourcePort == 0 && p.destinationPort == 0)
    }

    @Test func tunnelsAreNotOpened() {
        // GRE, IP-in-IP and 6in4 around an inner TCP packet: the outer header is what counts.
        let inner4 = FrameBuilder.ipv4(src: addr("192.0.2.1"), dst: addr("192.0.2.2"), proto: IPProtocol.tcp,
                                       payload: FrameBuilder.ports(1, 2, headerLength: 20))
        let inner6 = FrameBuilder.ipv6(src: addr("2001:db8::a"), dst: addr("2001:db8::b"), proto: IPProtocol.tcp,
                                       payload: FrameBuilder.ports(1, 2, headerLength: 20))
        let gre = FrameBuilder.ipv4(src: F.v4Client, dst: F.v4Server, proto: IPProtocol.gre, payload: [0, 0, 0x08, 0x00] + inner4)
        expectDecoded(decodeExact(FrameBuilder.ethernet(ip: gre), link: .ethernet),
                      .ip(F.v4Client, F.v4Server, proto: IPProtocol.gre, ports: nil))
        let ipip = FrameBuilder.ipv4(src: F.v4Client, dst: F.v4Server, proto: 4, payload: inner4)
        expectDecoded(decodeExact(ipip, link: .raw), .ip(F.v4Client, F.v4Server, proto: 4, ports: nil))
        let sixInFour = FrameBuilder.ipv4(src: F.v4Client, dst: F.v4Server, proto: 41, payload: inner6)
        expectDecoded(decodeExact(sixInFour, link: .raw), .ip(F.v4Client, F.v4Server, proto: 41, ports: nil))
        let fourInSix = FrameBuilder.ipv6(src: F.v6Client, dst: F.v6Server, proto: 4, payload: inner4)
        expectDecoded(decodeExact(fourInSix, link: .raw), .ip(F.v6Client, F.v6Server, proto: 4, ports: nil))
    }
}
