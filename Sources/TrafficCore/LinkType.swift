/// A libpcap data-link type (`DLT_*` value as `pcap_datalink` returns it on Linux).
///
/// ```swift
/// let link = LinkType(rawValue: 1)   // .ethernet
/// link.isSupported                   // true
/// ```
public struct LinkType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// `DLT_NULL`: BSD loopback, a 4-byte address family in the capturing host's byte order.
    public static let null = LinkType(rawValue: 0)
    /// `DLT_EN10MB`: Ethernet, with any depth of 802.1Q / 802.1ad tags.
    public static let ethernet = LinkType(rawValue: 1)
    /// `DLT_RAW` as Linux defines it: a bare IPv4 or IPv6 packet.
    public static let raw = LinkType(rawValue: 12)
    /// `DLT_RAW` as OpenBSD defines it.
    public static let rawOpenBSD = LinkType(rawValue: 14)
    /// `LINKTYPE_RAW`, the file-format value some writers leave as is.
    public static let rawLinktype = LinkType(rawValue: 101)
    /// `DLT_LOOP`: OpenBSD loopback, a 4-byte address family in network byte order.
    public static let loop = LinkType(rawValue: 108)
    /// `DLT_LINUX_SLL`: Linux cooked capture v1 (16-byte header).
    public static let linuxSLL = LinkType(rawValue: 113)
    /// `DLT_IPV4`: a bare IPv4 packet.
    public static let ipv4 = LinkType(rawValue: 228)
    /// `DLT_IPV6`: a bare IPv6 packet.
    public static let ipv6 = LinkType(rawValue: 229)
    /// `DLT_LINUX_SLL2`: Linux cooked capture v2 (20-byte header).
    public static let linuxSLL2 = LinkType(rawValue: 276)

    /// The link types trafficmon decodes.
    public static let supported: [LinkType] = [
        .null, .ethernet, .raw, .rawOpenBSD, .rawLinktype, .loop, .linuxSLL, .ipv4, .ipv6, .linuxSLL2,
    ]

    public var isSupported: Bool { Self.supported.contains(self) }

    /// The longest link header a frame of this type carries before its network packet, with
    /// room for two VLAN tags on Ethernet: a frame longer on the wire than the interface
    /// MTU plus this was merged (GRO/LRO) before the capture saw it.
    public var maximumHeaderLength: Int {
        switch self {
        case .ethernet: 14 + 8
        case .linuxSLL: 16
        case .linuxSLL2: 20
        case .null, .loop: 4
        default: 0
        }
    }

    public var description: String {
        switch self {
        case .null: "NULL"
        case .ethernet: "EN10MB"
        case .raw, .rawOpenBSD, .rawLinktype: "RAW"
        case .loop: "LOOP"
        case .linuxSLL: "LINUX_SLL"
        case .linuxSLL2: "LINUX_SLL2"
        case .ipv4: "IPV4"
        case .ipv6: "IPV6"
        default: "DLT \(rawValue)"
        }
    }
}
