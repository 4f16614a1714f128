/// The packed keys of a window's hash tables, with their bit layouts defined here and
/// nowhere else.
///
/// A flow is one (client, server, direction, service) in a window: two addresses in four
/// words and a tag word. A party (a client or a server) is one address in two words and a
/// tag word. A zero tag marks an empty table slot, so every key in a table sets
/// `occupied`.
///
/// ```swift
/// let key = FlowKey(Attribution(client: a, server: b, direction: .inbound, service: s))
/// key.tag.direction    // .inbound
/// key.clientParty      // the clients-table key of the client
/// ```
struct FlowKey: TableKey {
    var clientHigh: UInt64
    var clientLow: UInt64
    var serverHigh: UInt64
    var serverLow: UInt64
    var tag: FlowTag

    static var empty: FlowKey { FlowKey(clientHigh: 0, clientLow: 0, serverHigh: 0, serverLow: 0, tag: FlowTag(rawValue: 0)) }

    @inline(__always)
    var isOccupied: Bool { tag.rawValue != 0 }

    @inline(__always)
    init(clientHigh: UInt64, clientLow: UInt64, serverHigh: UInt64, serverLow: UInt64, tag: FlowTag) {
        self.clientHigh = clientHigh
        self.clientLow = clientLow
        self.serverHigh = serverHigh
        self.serverLow = serverLow
        self.tag = tag
    }

    /// The key of an attributed packet; a `nil` server (an inject that names none) counts
    /// among the servers not listed one by one.
    @inline(__always)
    init(client: IPAddress, server: IPAddress?, direction: Direction, service: Service) {
        var tag = FlowTag.occupied | UInt64(service.rawValue)
        if direction == .outbound { tag |= FlowTag.outbound }
        if client.isIPv6 { tag |= FlowTag.clientIPv6 }
        if let server {
            if server.isIPv6 { tag |= FlowTag.serverIPv6 }
            self.init(clientHigh: client.high, clientLow: client.low, serverHigh: server.high, serverLow: server.low, tag: FlowTag(rawValue: tag))
        } else {
            tag |= FlowTag.serverOther
            self.init(clientHigh: client.high, clientLow: client.low, serverHigh: 0, serverLow: 0, tag: FlowTag(rawValue: tag))
        }
    }

    init(_ a: Attribution) {
        self.init(client: a.client, server: a.server, direction: a.direction, service: a.service)
    }

    @inline(__always)
    var hash: Int {
        var h = clientLow &* 0x9E37_79B9_7F4A_7C15
        h ^= (serverLow &+ tag.rawValue) &* 0xC2B2_AE3D_27D4_EB4F
        h ^= (clientHigh ^ (serverHigh &* 0x1656_67B1_9E37_79F9)) &* 0xD6E8_FEB8_6659_FD93
        h = (h ^ (h >> 31)) &* 0xBF58_476D_1CE4_E5B9
        h ^= h >> 29
        return Int(truncatingIfNeeded: h)
    }

    /// The clients-table key of this flow's client.
    @inline(__always)
    var clientParty: PartyKey {
        PartyKey(high: clientHigh, low: clientLow, isIPv6: tag.rawValue & FlowTag.clientIPv6 != 0)
    }

    /// The servers-table key of this flow's server.
    @inline(__always)
    var serverParty: PartyKey {
        PartyKey(high: serverHigh, low: serverLow, isIPv6: tag.rawValue & FlowTag.serverIPv6 != 0)
    }

    /// The same flow with its client folded into `other` (past `--max-clients`).
    @inline(__always)
    var withOtherClient: FlowKey {
        var k = self
        k.clientHigh = 0
        k.clientLow = 0
        k.tag.rawValue = (tag.rawValue & ~FlowTag.clientIPv6) | FlowTag.clientOther
        return k
    }

    /// The same flow with its server folded into `other` (past `--max-clients` distinct
    /// servers, or past the flow cap).
    @inline(__always)
    var withOtherServer: FlowKey {
        var k = self
        k.serverHigh = 0
        k.serverLow = 0
        k.tag.rawValue = (tag.rawValue & ~FlowTag.serverIPv6) | FlowTag.serverOther
        return k
    }

    /// The same flow with its service folded into `other` (past the flow cap).
    @inline(__always)
    var withOtherService: FlowKey {
        var k = self
        k.tag.rawValue = (tag.rawValue & ~FlowTag.serviceMask) | UInt64(Service.other.rawValue)
        return k
    }
}

/// The tag word of a `FlowKey`: service, direction, address families and `other` marks.
struct FlowTag: Hashable {
    var rawValue: UInt64

    /// Bits 0-24: `Service.rawValue`.
    static let serviceMask: UInt64 = 0x01FF_FFFF
    /// Bit 32: set for `out`.
    static let outbound: UInt64 = 1 << 32
    /// Bit 33: the client is IPv6.
    static let clientIPv6: UInt64 = 1 << 33
    /// Bit 34: the server is IPv6.
    static let serverIPv6: UInt64 = 1 << 34
    /// Bit 35: the client is `other` (its address words are zero).
    static let clientOther: UInt64 = 1 << 35
    /// Bit 36: the server is `other` (its address words are zero).
    static let serverOther: UInt64 = 1 << 36
    /// Bit 40: always set in a stored key (a zero tag is an empty slot).
    static let occupied: UInt64 = 1 << 40

    @inline(__always)
    var service: Service { Service(rawValue: UInt32(truncatingIfNeeded: rawValue & Self.serviceMask)) }
    @inline(__always)
    var direction: Direction { rawValue & Self.outbound == 0 ? .inbound : .outbound }
    @inline(__always)
    var isClientOther: Bool { rawValue & Self.clientOther != 0 }
    @inline(__always)
    var isServerOther: Bool { rawValue & Self.serverOther != 0 }

    /// The (service, direction) part alone, as the key of a window-wide service total.
    @inline(__always)
    var serviceKey: PartyKey {
        PartyKey(high: 0, low: 0, tag: Self.occupied | (rawValue & (Self.outbound | Self.serviceMask)))
    }
}

/// A clients- or servers-table key: one address, and a tag word (`occupied`, and
/// `FlowTag.clientIPv6` for IPv6). Also the key of small tables keyed by a tag alone.
struct PartyKey: TableKey {
    var high: UInt64
    var low: UInt64
    var tag: UInt64

    static var empty: PartyKey { PartyKey(high: 0, low: 0, tag: 0) }

    @inline(__always)
    var isOccupied: Bool { tag != 0 }

    @inline(__always)
    init(high: UInt64, low: UInt64, tag: UInt64) {
        self.high = high
        self.low = low
        self.tag = tag
    }

    @inline(__always)
    init(high: UInt64, low: UInt64, isIPv6: Bool) {
        self.init(high: high, low: low, tag: isIPv6 ? FlowTag.occupied | FlowTag.clientIPv6 : FlowTag.occupied)
    }

    init(_ address: IPAddress) {
        self.init(high: address.high, low: address.low, isIPv6: address.isIPv6)
    }

    var address: IPAddress {
        tag & FlowTag.clientIPv6 != 0 ? IPAddress(ipv6High: high, low: low) : IPAddress(ipv4: UInt32(truncatingIfNeeded: low))
    }

    @inline(__always)
    var hash: Int {
        var h = low &* 0x9E37_79B9_7F4A_7C15
        h ^= high &+ (tag &* 0xC2B2_AE3D_27D4_EB4F)
        h = (h ^ (h >> 31)) &* 0xBF58_476D_1CE4_E5B9
        h ^= h >> 29
        return Int(truncatingIfNeeded: h)
    }

    /// A (service, direction) key back as its parts.
    var serviceAndDirection: (Service, Direction) {
        let t = FlowTag(rawValue: tag)
        return (t.service, t.direction)
    }
}
