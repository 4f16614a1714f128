/// What the decoder learned from one frame: its bucket, and for an IP packet the
/// addresses, protocol and ports that attribution needs.
public struct DecodedPacket: Sendable, Equatable {
    /// The bucket a frame lands in.
    public enum Kind: UInt8, Sendable {
        case ip, nonIP, malformed
    }

    public var kind: Kind = .nonIP
    /// Meaningful when `kind == .malformed`.
    public var malformedReason: MalformedReason = .truncatedLink
    public var source = IPAddress(ipv4: 0)
    public var destination = IPAddress(ipv4: 0)
    /// The transport protocol (after IPv6 extension headers).
    public var ipProtocol: UInt8 = 0
    public var sourcePort: UInt16 = 0
    public var destinationPort: UInt16 = 0
    /// The packet carried TCP/UDP/SCTP ports (a first fragment, or an unfragmented packet).
    public var hasPorts = false
    /// A fragment other than the first: no transport header.
    public var isLaterFragment = false
    /// An ICMP or ICMPv6 reply or error (echo reply, unreachable, ...): its source is the
    /// server side. `false` when the type byte was not captured.
    public var isReply = false
    /// A TCP segment's control flags (`TCPFlags`; `unknown` when cut before them), else 0.
    public var tcpFlags: UInt8 = 0
    /// A DNS message's kind on port 53 (`DNSFacts`), else `none`.
    public var dns: UInt8 = 0

    public init() {}

    @inline(__always)
    static func malformed(_ reason: MalformedReason) -> DecodedPacket {
        var p = DecodedPacket()
        p.kind = .malformed
        p.malformedReason = reason
        return p
    }

    @inline(__always)
    static var nonIP: DecodedPacket { DecodedPacket() }
}

/// Decodes frames of one link type down to the transport ports, reading only the
/// captured bytes it is given: no copy, no allocation, never past the end.
///
/// ```swift
/// guard let decoder = PacketDecoder(linkType: .ethernet) else { ... }
/// let packet = bytes.withUnsafeBytes { decoder.decode($0) }
/// ```
public struct PacketDecoder: Sendable {
    public let linkType: LinkType
    let framing: Framing

    enum Framing: UInt8, Sendable {
        case ethernet, linuxSLL, linuxSLL2, null, loop, ipv4, ipv6, raw
    }

    /// `nil` when trafficmon cannot decode `linkType`.
    public init?(linkType: LinkType) {
        switch linkType {
        case LinkType.ethernet: framing = .ethernet
        case LinkType.linuxSLL: framing = .linuxSLL
        case LinkType.linuxSLL2: framing = .linuxSLL2
        case LinkType.null: framing = .null
        case LinkType.loop: framing = .loop
        case LinkType.ipv4: framing = .ipv4
        case LinkType.ipv6: framing = .ipv6
        case LinkType.raw, LinkType.rawOpenBSD, LinkType.rawLinktype: framing = .raw
        default: return nil
        }
        self.linkType = linkType
    }

    /// Where the link layer says the packet goes: a network protocol and its offset, or
    /// a verdict (non-IP, malformed) with no network layer to read.
    struct LinkResult {
        enum Network: UInt8 { case ipv4, ipv6, unknownVersion, nonIP, malformed }
        var network: Network
        var offset: Int
        var reason: MalformedReason = .truncatedLink
    }

    /// Decodes one frame (`data` holds the captured bytes only).
    @inline(__always)
    public func decode(_ buffer: UnsafeRawBufferPointer) -> DecodedPacket {
        // A frame with no bytes has no base address; any other is read through one pointer.
        guard let base = buffer.baseAddress, buffer.count > 0 else {
            return framing == .raw || framing == .ipv4 || framing == .ipv6 ? .malformed(.truncatedIP) : .malformed(.truncatedLink)
        }
        let data = FrameBytes(base: base, count: buffer.count)
        // One call site per network decoder, so each inlines into the packet path.
        let link = linkLayer(data)
        switch link.network {
        case .ipv4: return decodeIPv4(data, at: link.offset)
        case .ipv6: return decodeIPv6(data, at: link.offset)
        case .nonIP: return .nonIP
        case .malformed: return .malformed(link.reason)
        case .unknownVersion: return .malformed(.badVersion)
        }
    }

    /// Reads the link header: which network protocol follows, and where.
    @inline(always)
    func linkLayer(_ data: FrameBytes) -> LinkResult {
        let n = data.count
        switch framing {
        case .ethernet:
            guard n >= 14 else { return LinkResult(network: .malformed, offset: 0) }
            return followEtherType(data, etherType: data.u16(12), at: 14)
        case .linuxSLL:
            guard n >= 16 else { return LinkResult(network: .malformed, offset: 0) }
            return followEtherType(data, etherType: data.u16(14), at: 16)
        case .linuxSLL2:
            guard n >= 20 else { return LinkResult(network: .malformed, offset: 0) }
            return followEtherType(data, etherType: data.u16(0), at: 20)
        case .null, .loop:
            guard n >= 4 else { return LinkResult(network: .malformed, offset: 0) }
            var family: UInt32
            if framing == .loop {
                family = data.u32(0)
            } else {
                // Host byte order of the machine that captured: take whichever order is small.
                family = UInt32(littleEndian: data.base.loadUnaligned(as: UInt32.self))
                if family & 0xFFFF_0000 != 0 { family = family.byteSwapped }
            }
            switch family {
            case 2: return LinkResult(network: .ipv4, offset: 4)
            case 10, 24, 28, 30: return LinkResult(network: .ipv6, offset: 4)
            default: return LinkResult(network: .nonIP, offset: 4)
            }
        case .ipv4:
            return LinkResult(network: .ipv4, offset: 0)
        case .ipv6:
            return LinkResult(network: .ipv6, offset: 0)
        case .raw:
            guard n >= 1 else { return LinkResult(network: .malformed, offset: 0, reason: .truncatedIP) }
            switch data[0] >> 4 {
            case 4: return LinkResult(network: .ipv4, offset: 0)
            case 6: return LinkResult(network: .ipv6, offset: 0)
            default: return LinkResult(network: .unknownVersion, offset: 0)
            }
        }
    }

    /// Follows 802.1Q/802.1ad tags (any depth) and LLC/SNAP to the network layer.
    @inline(__always)
    func followEtherType(_ data: FrameBytes, etherType: UInt16, at start: Int) -> LinkResult {
        var type = etherType
        var offset = start
        let n = data.count
        while type == 0x8100 || type == 0x88A8 || type == 0x9100 || type == 0x9200 {
            guard n >= offset + 4 else { return LinkResult(network: .malformed, offset: 0) }
            type = data.u16(offset + 2)
            offset += 4
        }
        if type <= 1500 {
            // An 802.3 length: an LLC header follows, and IP only inside SNAP with a zero OUI.
            guard n >= offset + 3 else { return LinkResult(network: .malformed, offset: 0) }
            guard data[offset] == 0xAA, data[offset + 1] == 0xAA, data[offset + 2] == 0x03 else {
                return LinkResult(network: .nonIP, offset: offset)
            }
            guard n >= offset + 8 else { return LinkResult(network: .malformed, offset: 0) }
            guard data[offset + 3] == 0, data[offset + 4] == 0, data[offset + 5] == 0 else {
                return LinkResult(network: .nonIP, offset: offset)
            }
            type = data.u16(offset + 6)
            offset += 8
        }
        switch type {
        case 0x0800: return LinkResult(network: .ipv4, offset: offset)
        case 0x86DD: return LinkResult(network: .ipv6, offset: offset)
        default: return LinkResult(network: .nonIP, offset: offset)
        }
    }

    /// Always inlined into `decode`, as are `linkLayer` and `decodeIPv6`: the packet path then
    /// keeps the decoded fields in registers rather than in a returned value in memory.
    @inline(always)
    func decodeIPv4(_ data: FrameBytes, at o: Int) -> DecodedPacket {
        // Offsets are at most a frame's length (a 32-bit field) plus a few bytes: in a
        // 64-bit Int `&+` cannot overflow, and spares the packet path a check per sum.
        let n = data.count
        guard n > o else { return .malformed(.truncatedIP) }
        let first = data[o]
        guard first >> 4 == 4 else { return .malformed(.badVersion) }
        guard n >= o &+ 20 else { return .malformed(.truncatedIP) }
        let headerLength = Int(first & 0x0F) &* 4
        guard headerLength >= 20 else { return .malformed(.badHeaderLength) }
        let totalLength = Int(data.u16(o &+ 2))
        // Zero total length: a TSO/GSO segment as Linux hands it to the capture.
        guard totalLength == 0 || totalLength >= headerLength else { return .malformed(.badHeaderLength) }
        guard n >= o &+ headerLength else { return .malformed(.truncatedIP) }
        var p = DecodedPacket()
        p.kind = .ip
        p.source = IPAddress(ipv4: data.u32(o &+ 12))
        p.destination = IPAddress(ipv4: data.u32(o &+ 16))
        let proto = data[o &+ 9]
        p.ipProtocol = proto
        let fragment = data.u16(o &+ 6)
        p.isLaterFragment = fragment & 0x1FFF != 0
        if !p.isLaterFragment && Service.hasPorts(proto) {
            let t = o &+ headerLength
            guard n >= t &+ 4, totalLength == 0 || totalLength - headerLength >= 4 else {
                return .malformed(.truncatedTransport)
            }
            p.sourcePort = data.u16(t)
            p.destinationPort = data.u16(t &+ 2)
            p.hasPorts = true
            Self.readPastPorts(data, into: &p, transport: t, end: totalLength == 0 ? nil : o &+ totalLength,
                               firstFragment: fragment & 0x2000 != 0)
        } else if proto == IPProtocol.icmp && !p.isLaterFragment {
            let t = o &+ headerLength
            if n > t { p.isReply = Self.isICMPReply(data[t]) }
        }
        return p
    }

    /// What a TCP or UDP segment at `transport` holds past its ports: TCP's flags, and a DNS
    /// message on port 53. `end` is where the IP packet says the segment ends (`nil`: not
    /// said, a segmentation-offload frame); in a `firstFragment` the datagram goes on in
    /// later fragments.
    @inline(__always)
    static func readPastPorts(_ data: FrameBytes, into p: inout DecodedPacket, transport t: Int, end: Int?, firstFragment: Bool) {
        let dnsPort = p.sourcePort == 53 || p.destinationPort == 53
        if p.ipProtocol == IPProtocol.tcp {
            let captured = data.count >= t &+ 14 && end.map({ t &+ 14 <= $0 }) ?? true
            p.tcpFlags = captured ? TCPFlags(headerByte: data[t &+ 13]).rawValue : TCPFlags.unknown.rawValue
            if dnsPort { p.dns = dnsOverTCP(data, segment: t, end: end).rawValue }
        } else if p.ipProtocol == IPProtocol.udp && dnsPort {
            p.dns = dnsOverUDP(data, segment: t, end: end, firstFragment: firstFragment).rawValue
        }
    }

    /// A DNS message in a UDP datagram: its length from the UDP header. In the first fragment
    /// of a datagram (a large response) the message goes on in later fragments: it is read
    /// from the bytes this packet holds, as if the capture had cut the rest.
    @inline(never)
    static func dnsOverUDP(_ data: FrameBytes, segment t: Int, end: Int?, firstFragment: Bool) -> DNSFacts {
        guard data.count >= t + 6 else { return .cut }
        let length = Int(data.u16(t + 4)) - 8
        if firstFragment, let end {
            guard length >= 0 else { return .malformed }
            return dns(FrameBytes(base: data.base, count: min(data.count, end)), at: t + 8, length: length)
        }
        guard length >= 0, end.map({ t + 8 + length <= $0 }) ?? true else { return .malformed }
        return dns(data, at: t + 8, length: length)
    }

    /// A DNS message in a TCP segment that starts with its 2-byte length and holds it whole
    /// (no reassembly): anything else on port 53 (a handshake, a continuation) is not judged.
    @inline(never)
    static func dnsOverTCP(_ data: FrameBytes, segment t: Int, end: Int?) -> DNSFacts {
        guard let end else { return .none }
        guard data.count >= t + 13 else { return .cut }
        let payload = t + Int(data[t + 12] >> 4) * 4
        let payloadLength = end - payload
        guard payloadLength >= 2 else { return .none }
        guard data.count >= payload + 2 else { return .cut }
        guard Int(data.u16(payload)) == payloadLength - 2 else { return .none }
        return dns(data, at: payload + 2, length: payloadLength - 2)
    }

    /// A DNS message of `length` bytes at `start`: a response by its code, a query by its
    /// first question's type; shorter than its 12-byte header, or a query without a
    /// readable first question, is malformed; cut by the capture before what is needed, cut.
    static func dns(_ data: FrameBytes, at start: Int, length: Int) -> DNSFacts {
        guard length >= 12 else { return .malformed }
        guard data.count >= start + 12 else { return .cut }
        if data[start + 2] & 0x80 != 0 { return .response(data[start + 3] & 0x0F) }
        guard data.u16(start + 4) >= 1 else { return .malformed }
        let end = start + length
        var i = start + 12
        // The first question's name: labels up to a zero byte, or a compression pointer.
        // A name is at most 255 bytes with its length bytes and the final zero, so at most
        // 254 may lie before the byte that ends it (a pointer's target adds at least one).
        let name = i
        while true {
            guard i < end, i - name < 255 else { return .malformed }
            guard i < data.count else { return .cut }
            let label = data[i]
            if label == 0 {
                i += 1
                break
            }
            if label & 0xC0 == 0xC0 {
                i += 2
                break
            }
            guard label & 0xC0 == 0 else { return .malformed }
            i += 1 + Int(label)
        }
        guard i + 2 <= end else { return .malformed }
        guard i + 2 <= data.count else { return .cut }
        return .query(data.u16(i))
    }

    /// ICMP types sent in answer to something (echo, timestamp, information and address
    /// mask replies, router advertisement) or about it (unreachable, source quench,
    /// redirect, time exceeded, parameter problem): as ICMPv6's replies and advertisements.
    @inline(__always)
    static func isICMPReply(_ type: UInt8) -> Bool {
        type < 32 && (UInt32(1) << UInt32(type)) & 0x5_5A39 != 0
    }

    /// ICMPv6 errors (1-4), echo reply (129), router and neighbor advertisements (134,
    /// 136) and node information reply (140).
    @inline(__always)
    static func isICMPv6Reply(_ type: UInt8) -> Bool {
        (1...4).contains(type) || type == 129 || type == 134 || type == 136 || type == 140
    }

    @inline(always)
    func decodeIPv6(_ data: FrameBytes, at o: Int) -> DecodedPacket {
        let n = data.count
        guard n > o else { return .malformed(.truncatedIP) }
        guard data[o] >> 4 == 6 else { return .malformed(.badVersion) }
        guard n >= o + 40 else { return .malformed(.truncatedIP) }
        var p = DecodedPacket()
        p.kind = .ip
        p.source = IPAddress(ipv6High: data.u64(o + 8), low: data.u64(o + 16))
        p.destination = IPAddress(ipv6High: data.u64(o + 24), low: data.u64(o + 32))
        let payloadLength = Int(data.u16(o + 4))
        var next = data[o + 6]
        var t = o + 40
        var firstFragment = false
        // Extension headers: each is at least 8 bytes long, so the walk ends.
        walk: while true {
            switch next {
            case IPProtocol.hopByHop, IPProtocol.routing, IPProtocol.destinationOptions:
                guard n >= t + 2 else { return .malformed(.truncatedIP) }
                next = data[t]
                t += (Int(data[t + 1]) + 1) * 8
            case IPProtocol.ah:
                guard n >= t + 2 else { return .malformed(.truncatedIP) }
                next = data[t]
                t += (Int(data[t + 1]) + 2) * 4
            case IPProtocol.fragment:
                guard n >= t + 4 else { return .malformed(.truncatedIP) }
                next = data[t]
                if data.u16(t + 2) & 0xFFF8 != 0 {
                    p.isLaterFragment = true
                    break walk
                }
                firstFragment = data.u16(t + 2) & 1 != 0
                t += 8
            default:
                break walk
            }
        }
        p.ipProtocol = next
        if !p.isLaterFragment && Service.hasPorts(next) {
            guard n >= t + 4, payloadLength == 0 || payloadLength >= t - o - 40 + 4 else {
                return .malformed(.truncatedTransport)
            }
            p.sourcePort = data.u16(t)
            p.destinationPort = data.u16(t + 2)
            p.hasPorts = true
            Self.readPastPorts(data, into: &p, transport: t, end: payloadLength == 0 ? nil : o + 40 + payloadLength,
                               firstFragment: firstFragment)
        } else if next == IPProtocol.icmpv6 && !p.isLaterFragment {
            if n > t { p.isReply = Self.isICMPv6Reply(data[t]) }
        }
        return p
    }
}

/// Bytes read big-endian through a non-nil base pointer: a frame's captured bytes (the
/// packet decoder) or a received datagram (the flow decoders). The reader bounds-checks
/// every offset against `count` itself, so reads need no other check.
///
/// ```swift
/// let bytes = FrameBytes(base: pointer, count: length)
/// if bytes.count >= 4 { let version = bytes.u16(0) }
/// ```
@frozen public struct FrameBytes {
    public let base: UnsafeRawPointer
    public let count: Int

    @inlinable
    public init(base: UnsafeRawPointer, count: Int) {
        self.base = base
        self.count = count
    }

    @inlinable @inline(__always)
    public subscript(_ offset: Int) -> UInt8 {
        base.load(fromByteOffset: offset, as: UInt8.self)
    }

    @inlinable @inline(__always)
    public func u16(_ offset: Int) -> UInt16 {
        UInt16(bigEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    @inlinable @inline(__always)
    public func u32(_ offset: Int) -> UInt32 {
        UInt32(bigEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    @inlinable @inline(__always)
    public func u64(_ offset: Int) -> UInt64 {
        UInt64(bigEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }
}
