import TrafficCore

/// Builds frames byte by byte for tests: Ethernet (with VLAN tags), IPv4, IPv6 (with
/// extension headers), TCP, UDP, ports of SCTP and others, ICMP, DNS headers.
///
/// ```swift
/// let frame = FrameBuilder.ethernet(vlans: [100], payload: FrameBuilder.ipv4(src: a, dst: b, proto: 6,
///                                   payload: FrameBuilder.ports(1234, 443, headerLength: 20)))
/// ```
public enum FrameBuilder {
    public static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
    public static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }

    public static func ethernet(etherType: UInt16, vlans: [UInt16] = [], outerTPID: UInt16 = 0x8100, payload: [UInt8]) -> [UInt8] {
        var f: [UInt8] = [0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01]
        for (i, vlan) in vlans.enumerated() {
            f += be16(i == 0 ? outerTPID : 0x8100)
            f += be16(vlan)
        }
        f += be16(etherType)
        f += payload
        return f
    }

    /// An Ethernet frame around an IPv4 or IPv6 packet (EtherType from the version nibble).
    public static func ethernet(vlans: [UInt16] = [], ip: [UInt8]) -> [UInt8] {
        let type: UInt16 = (ip.first ?? 0x45) >> 4 == 6 ? 0x86DD : 0x0800
        return ethernet(etherType: type, vlans: vlans, payload: ip)
    }

    public static func addressBytes(_ a: IPAddress) -> [UInt8] {
        if a.isIPv6 {
            var out = [UInt8]()
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8((a.high >> UInt64(shift)) & 0xFF)) }
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8((a.low >> UInt64(shift)) & 0xFF)) }
            return out
        }
        return be32(a.ipv4Value)
    }

    /// An IPv4 packet; `fragmentOffset` in 8-byte units, `options` padded to 4 bytes by the caller.
    public static func ipv4(
        src: IPAddress, dst: IPAddress, proto: UInt8, payload: [UInt8], options: [UInt8] = [],
        moreFragments: Bool = false, fragmentOffset: UInt16 = 0, totalLength: UInt16? = nil
    ) -> [UInt8] {
        let headerLength = 20 + options.count
        var h: [UInt8] = [UInt8(0x40 | (headerLength / 4)), 0]
        h += be16(totalLength ?? UInt16(headerLength + payload.count))
        h += be16(0x1234)
        h += be16((moreFragments ? 0x2000 : 0) | (fragmentOffset & 0x1FFF))
        h += [64, proto, 0, 0]
        h += addressBytes(src)
        h += addressBytes(dst)
        h += options
        return h + payload
    }

    /// An IPv6 packet; `extensions` are (next-header value of that header, its bytes) in order.
    public static func ipv6(src: IPAddress, dst: IPAddress, proto: UInt8, payload: [UInt8], extensions: [(UInt8, [UInt8])] = []) -> [UInt8] {
        var chain = [UInt8]()
        var firstNext = proto
        if !extensions.isEmpty {
            firstNext = extensions[0].0
            for (i, ext) in extensions.enumerated() {
                var bytes = ext.1
                bytes[0] = i + 1 < extensions.count ? extensions[i + 1].0 : proto
                chain += bytes
            }
        }
        var h: [UInt8] = [0x60, 0, 0, 0]
        h += be16(UInt16(chain.count + payload.count))
        h += [firstNext, 64]
        h += addressBytes(src)
        h += addressBytes(dst)
        return h + chain + payload
    }

    /// A hop-by-hop / routing / destination-options header of `8 * (units + 1)` bytes.
    public static func optionsHeader(units: UInt8 = 0) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 8 * (Int(units) + 1))
        b[1] = units
        return b
    }

    /// An IPv6 fragment header.
    public static func fragmentHeader(offset: UInt16, more: Bool) -> [UInt8] {
        [0, 0] + be16(offset << 3 | (more ? 1 : 0)) + [0, 0, 0, 1]
    }

    /// An authentication header with `payloadLength` (AH length field; header is (len+2)*4 bytes).
    public static func authenticationHeader(payloadLength: UInt8 = 4) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: (Int(payloadLength) + 2) * 4)
        b[1] = payloadLength
        return b
    }

    /// A transport header that starts with source and destination ports, padded to `headerLength`.
    public static func ports(_ source: UInt16, _ destination: UInt16, headerLength: Int = 8, payload: Int = 0) -> [UInt8] {
        var b = be16(source) + be16(destination)
        b += [UInt8](repeating: 0, count: max(0, headerLength - 4) + payload)
        return b
    }

    /// A TCP segment: a header of `headerWords` 32-bit words (by default 5 plus the
    /// options, which the caller pads to 4 bytes) with `flags` in its 14th byte, then
    /// `options` and `payload`.
    public static func tcp(
        _ sport: UInt16, _ dport: UInt16, flags: UInt8, seq: UInt32 = 1, ack: UInt32 = 0,
        options: [UInt8] = [], payload: [UInt8] = [], headerWords: Int? = nil
    ) -> [UInt8] {
        var h = be16(sport) + be16(dport) + be32(seq) + be32(ack)
        h += [UInt8((headerWords ?? (5 + options.count / 4)) << 4), flags]
        h += be16(65535) + [0, 0, 0, 0]
        return h + options + payload
    }

    /// A UDP datagram; `length` (the header's length field) is the true one unless given.
    public static func udp(_ sport: UInt16, _ dport: UInt16, payload: [UInt8], length: UInt16? = nil) -> [UInt8] {
        be16(sport) + be16(dport) + be16(length ?? UInt16(8 + payload.count)) + [0, 0] + payload
    }

    /// A DNS message header: `id`, `flags` and the four section counts.
    public static func dnsHeader(id: UInt16, flags: UInt16, qd: UInt16, an: UInt16 = 0, ns: UInt16 = 0, ar: UInt16 = 0) -> [UInt8] {
        [id, flags, qd, an, ns, ar].flatMap(be16)
    }

    /// An ICMP echo message: `type` 8 (request) or 0 (reply); for ICMPv6, 128 or 129.
    public static func icmpEcho(payload: Int = 56, type: UInt8 = 8) -> [UInt8] {
        [type, 0, 0, 0, 0, 1, 0, 1] + [UInt8](repeating: 0xAB, count: payload)
    }

    public static let arp: [UInt8] = ethernet(
        etherType: 0x0806,
        payload: [0, 1, 8, 0, 6, 4, 0, 1] + [UInt8](repeating: 0, count: 20))
}
