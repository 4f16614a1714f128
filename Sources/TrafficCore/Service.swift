/// A service label packed in 32 bits: IP protocol number, and the server port when the
/// protocol has ports and the packet carried them.
///
/// ```swift
/// let s = Service(ipProtocol: 6, port: 443)
/// s.label            // "TCP/443"
/// Service(label: "UDP/53") == Service(ipProtocol: 17, port: 53)   // true
/// ```
public struct Service: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// Bits 0-15: port; bits 16-23: IP protocol; bit 24: has a port.
    public var rawValue: UInt32

    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// A service with a server port (TCP, UDP, SCTP).
    @inline(__always)
    public init(ipProtocol: UInt8, port: UInt16) {
        rawValue = 1 << 24 | UInt32(ipProtocol) << 16 | UInt32(port)
    }

    /// A service named by its protocol alone (ICMP, GRE, a non-first fragment, ...).
    @inline(__always)
    public init(ipProtocol: UInt8) {
        rawValue = UInt32(ipProtocol) << 16
    }

    /// Everything folded together: services past a `--top` cut or past the per-window flow cap.
    public static let other = Service(rawValue: 0x00FF_FFFF)

    public var ipProtocol: UInt8 { UInt8(truncatingIfNeeded: rawValue >> 16) }
    public var port: UInt16? { rawValue & (1 << 24) != 0 ? UInt16(truncatingIfNeeded: rawValue) : nil }

    /// `true` for the protocols whose first four transport bytes are source and destination ports.
    @inline(__always)
    public static func hasPorts(_ ipProtocol: UInt8) -> Bool {
        ipProtocol == IPProtocol.tcp || ipProtocol == IPProtocol.udp || ipProtocol == IPProtocol.sctp
    }

    /// The protocol's name in labels: `TCP`, `ICMPv6`, ... or `IP/<number>`.
    public static func protocolName(_ ipProtocol: UInt8) -> String {
        Service(ipProtocol: ipProtocol).label
    }

    /// `TCP/443`, `UDP/53`, `SCTP/2905`, `ICMP`, `ICMPv6`, `GRE`, `ESP`, `AH`, `IGMP`, `UDP`
    /// (a non-first fragment), otherwise `IP/<number>`: the text `appendLabel` writes.
    public var label: String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16)
        appendLabel(to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    public var description: String { label }

    /// Appends `label` as UTF-8 without building a String.
    public func appendLabel(to out: inout some ByteSink) {
        if self == .other {
            out.append("other")
            return
        }
        let name: StaticString
        switch ipProtocol {
        case IPProtocol.icmp: name = "ICMP"
        case IPProtocol.igmp: name = "IGMP"
        case IPProtocol.tcp: name = "TCP"
        case IPProtocol.udp: name = "UDP"
        case IPProtocol.gre: name = "GRE"
        case IPProtocol.esp: name = "ESP"
        case IPProtocol.ah: name = "AH"
        case IPProtocol.icmpv6: name = "ICMPv6"
        case IPProtocol.sctp: name = "SCTP"
        default:
            out.append("IP/")
            out.appendDecimal(ipProtocol)
            return
        }
        out.append(name)
        if let port {
            out.append(UInt8(ascii: "/"))
            out.appendDecimal(port)
        }
    }

    /// Parses a label in the form `label` produces (`TCP/8000`, `ICMP`, `IP/47`, `UDP`).
    public init?(label: String) {
        if label == "other" {
            self = .other
            return
        }
        let parts = label.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        let name = parts[0].uppercased()
        var proto: UInt8?
        for candidate in [IPProtocol.icmp, IPProtocol.igmp, IPProtocol.tcp, IPProtocol.udp, IPProtocol.gre,
                          IPProtocol.esp, IPProtocol.ah, IPProtocol.icmpv6, IPProtocol.sctp]
        where Self.protocolName(candidate).uppercased() == name {
            proto = candidate
        }
        if parts.count == 1 {
            guard let proto else { return nil }
            self.init(ipProtocol: proto)
            return
        }
        let tail = parts[1]
        guard !tail.isEmpty, tail.count <= 5, tail.allSatisfy({ $0.isASCII && $0.isNumber }),
              let number = Int(tail) else { return nil }
        if name == "IP" {
            guard number <= 255 else { return nil }
            self.init(ipProtocol: UInt8(number))
            return
        }
        guard let proto, Self.hasPorts(proto), (1...65535).contains(number) else { return nil }
        self.init(ipProtocol: proto, port: UInt16(number))
    }

    public static func < (lhs: Service, rhs: Service) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// IP protocol numbers trafficmon names.
public enum IPProtocol {
    public static let hopByHop: UInt8 = 0
    public static let icmp: UInt8 = 1
    public static let igmp: UInt8 = 2
    public static let tcp: UInt8 = 6
    public static let udp: UInt8 = 17
    public static let routing: UInt8 = 43
    public static let fragment: UInt8 = 44
    public static let gre: UInt8 = 47
    public static let esp: UInt8 = 50
    public static let ah: UInt8 = 51
    public static let icmpv6: UInt8 = 58
    public static let destinationOptions: UInt8 = 60
    public static let sctp: UInt8 = 132
}

/// The direction of a packet relative to the monitored side.
public enum Direction: UInt8, Sendable, CaseIterable {
    /// Towards the local (server) side.
    case inbound = 0
    /// Away from the local (server) side.
    case outbound = 1

    public var label: String { self == .inbound ? "in" : "out" }

    public init?(label: String) {
        switch label {
        case "in": self = .inbound
        case "out": self = .outbound
        default: return nil
        }
    }
}
