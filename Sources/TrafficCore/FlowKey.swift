/// The packed keys of a window's counting, with their bit layout defined here and nowhere
/// else.
///
/// A `FlowKey` is one attributed packet: (client, server, direction, service), two
/// addresses in four words and a tag word. The window counts it twice, once per side, in
/// two tables keyed by `PartyKey`: (client, direction, service) and (server, direction,
/// service). A `PartyKey` is one address in two words and a tag word; with the direction
/// and service bits cleared it is a party's own key (the clients and servers tables), and
/// with only those bits it is a window-wide service total. A zero tag marks an empty table
/// slot, so every stored key sets `FlowTag.occupied`.
///
/// ```swift
/// let key = FlowKey(client: a, server: b, direction: .inbound, service: s)
/// key.clientSide      // (a, in, s): the clients' flow table key
/// key.serverSide      // (b, in, s): the servers' flow table key
/// key.clientSide.party  // a alone: the clients table key
/// ```
struct FlowKey: Hashable {
    var clientHigh: UInt64
    var clientLow: UInt64
    var serverHigh: UInt64
    var serverLow: UInt64
    var tag: FlowTag

    static var empty: FlowKey { FlowKey(clientHigh: 0, clientLow: 0, serverHigh: 0, serverLow: 0, tag: FlowTag(rawValue: 0)) }

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

    /// (client, direction, service): the key of the clients' flow table.
    @inline(__always)
    var clientSide: PartyKey {
        PartyKey(
            high: clientHigh, low: clientLow,
            tag: tag.rawValue & (FlowTag.occupied | FlowTag.outbound | FlowTag.serviceMask | FlowTag.partyIPv6 | FlowTag.partyOther))
    }

    /// (server, direction, service): the key of the servers' flow table (the server's
    /// family and `other` bits moved to the party positions).
    @inline(__always)
    var serverSide: PartyKey {
        let t = tag.rawValue
        return PartyKey(
            high: serverHigh, low: serverLow,
            tag: (t & (FlowTag.occupied | FlowTag.outbound | FlowTag.serviceMask))
                | (t & FlowTag.serverIPv6) >> 1 | (t & FlowTag.serverOther) >> 1)
    }
}

/// The tag word of a `FlowKey` and of a `PartyKey`: service, direction, address families
/// and `other` marks.
struct FlowTag: Hashable {
    var rawValue: UInt64

    /// Bits 0-24: `Service.rawValue`.
    static let serviceMask: UInt64 = 0x01FF_FFFF
    /// Bit 32: set for `out`.
    static let outbound: UInt64 = 1 << 32
    /// Bit 33: the client (in a `FlowKey`) or the party (in a `PartyKey`) is IPv6.
    static let clientIPv6: UInt64 = 1 << 33
    static let partyIPv6: UInt64 = clientIPv6
    /// Bit 34: the server is IPv6 (a `FlowKey` only).
    static let serverIPv6: UInt64 = 1 << 34
    /// Bit 35: the client (in a `FlowKey`) or the party (in a `PartyKey`) is `other`: its
    /// address words are zero.
    static let clientOther: UInt64 = 1 << 35
    static let partyOther: UInt64 = clientOther
    /// Bit 36: the server is `other` (a `FlowKey` only): not known.
    static let serverOther: UInt64 = 1 << 36
    /// Bits 26-28 (a client's TCP control table only): the `TCPFlags.Kind` plus one.
    static let controlShift: UInt64 = 26
    static let controlMask: UInt64 = 0x7 << 26
    /// Bit 40: always set in a stored key (a zero tag is an empty slot).
    static let occupied: UInt64 = 1 << 40

    @inline(__always)
    var service: Service { Service(rawValue: UInt32(truncatingIfNeeded: rawValue & Self.serviceMask)) }
    @inline(__always)
    var direction: Direction { rawValue & Self.outbound == 0 ? .inbound : .outbound }
}

/// A 3-word table key: one address and a tag word (`FlowTag` bits). Per side, the key of a
/// (party, direction, service) flow; with only `occupied` and `partyIPv6` in its tag, a
/// party's own key; with only the direction and service, a window-wide service total.
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

    /// A party's own key.
    init(_ address: IPAddress) {
        self.init(high: address.high, low: address.low, tag: address.isIPv6 ? FlowTag.occupied | FlowTag.partyIPv6 : FlowTag.occupied)
    }

    @inline(__always)
    var hash: Int {
        var h = low &* 0x9E37_79B9_7F4A_7C15
        h ^= high &+ (tag &* 0xC2B2_AE3D_27D4_EB4F)
        h = (h ^ (h >> 31)) &* 0xBF58_476D_1CE4_E5B9
        h ^= h >> 29
        return Int(truncatingIfNeeded: h)
    }

    var flowTag: FlowTag { FlowTag(rawValue: tag) }

    /// The party of a flow key: its address and family alone.
    @inline(__always)
    var party: PartyKey { PartyKey(high: high, low: low, tag: tag & (FlowTag.occupied | FlowTag.partyIPv6)) }

    /// Whether the party is `other` (folded past `--max-clients`, or a server not known).
    @inline(__always)
    var isOther: Bool { tag & FlowTag.partyOther != 0 }

    var address: IPAddress {
        tag & FlowTag.partyIPv6 != 0 ? IPAddress(ipv6High: high, low: low) : IPAddress(ipv4: UInt32(truncatingIfNeeded: low))
    }

    /// The same flow with its party folded into `other`.
    @inline(__always)
    var withOtherParty: PartyKey {
        PartyKey(high: 0, low: 0, tag: (tag & ~FlowTag.partyIPv6) | FlowTag.partyOther)
    }

    /// The same flow with its service folded into `other` (past the flow cap).
    @inline(__always)
    var withOtherService: PartyKey {
        PartyKey(high: high, low: low, tag: (tag & ~FlowTag.serviceMask) | UInt64(Service.other.rawValue))
    }

    /// A client's key in its TCP control table: the party, the service, and the kind of
    /// control segment (no direction).
    @inline(__always)
    func control(_ kind: TCPFlags.Kind) -> PartyKey {
        PartyKey(
            high: high, low: low,
            tag: (tag & ~(FlowTag.outbound | FlowTag.controlMask)) | UInt64(kind.rawValue + 1) << FlowTag.controlShift)
    }

    /// The control kind of a TCP control table key.
    var controlKind: TCPFlags.Kind? {
        TCPFlags.Kind(rawValue: Int((tag & FlowTag.controlMask) >> FlowTag.controlShift) - 1)
    }

    /// The (service, direction) of a flow key alone: the key of a window-wide service total.
    @inline(__always)
    var serviceTotal: PartyKey {
        PartyKey(high: 0, low: 0, tag: tag & (FlowTag.occupied | FlowTag.outbound | FlowTag.serviceMask))
    }
}
