/// Packets and bytes.
public struct Counts: Codable, Hashable, Sendable {
    public var packets: UInt64
    public var bytes: UInt64

    public init(packets: UInt64 = 0, bytes: UInt64 = 0) {
        self.packets = packets
        self.bytes = bytes
    }

    public static let zero = Counts()

    @inline(__always)
    public mutating func add(packets: UInt64 = 1, bytes: UInt64) {
        self.packets &+= packets
        self.bytes &+= bytes
    }

    public static func + (lhs: Counts, rhs: Counts) -> Counts {
        Counts(packets: lhs.packets &+ rhs.packets, bytes: lhs.bytes &+ rhs.bytes)
    }

    public static func += (lhs: inout Counts, rhs: Counts) { lhs = lhs + rhs }
}

/// One service in one direction, inside a client or for the whole window.
public struct ServiceCounts: Codable, Hashable, Sendable {
    /// The service (`TCP/443`, `ICMP`, `UDP`, `IP/47`, or `other` in JSON).
    public var service: Service
    public var direction: Direction
    public var packets: UInt64
    public var bytes: UInt64

    public init(service: Service, direction: Direction, packets: UInt64, bytes: UInt64) {
        self.service = service
        self.direction = direction
        self.packets = packets
        self.bytes = bytes
    }
}

/// One party's traffic in a window: a client (with the services it used) or a server
/// (with the services it offered).
public struct PartyRecord: Codable, Hashable, Sendable {
    /// The address (canonical text form in JSON, RFC 5952 for IPv6).
    public var ip: IPAddress
    /// Whether the address is in a local network (`--local-net`, a live interface's own).
    public var local: Bool
    public var `in`: Counts
    public var out: Counts
    /// Sorted by bytes, descending.
    public var services: ServiceList
    /// A client's TCP control segments (`nil` when it had none).
    public var tcp: PartyTCP?
    /// The named network holding the address (`--networks`; `nil` without it).
    public var network: String?
    /// A client's country code or `unknown` (`--country-db`; `nil` without it).
    public var country: String?
    /// A client's AS number as decimal text or `unknown`, and its organisation (`--asn-db`;
    /// `nil` without it).
    public var asn: String?
    public var asOrg: String?

    public init(ip: IPAddress, local: Bool = false, in: Counts, out: Counts, services: ServiceList, tcp: PartyTCP? = nil) {
        self.ip = ip
        self.local = local
        self.in = `in`
        self.out = out
        self.services = services
        self.tcp = tcp
    }

    public var total: Counts { self.in + out }

    enum CodingKeys: String, CodingKey {
        case ip, local, `in`, out, services, tcp, network, country, asn
        case asOrg = "as_org"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        ip = try c.decode(IPAddress.self, forKey: .ip)
        // Records stored before parties were marked have no `local`.
        local = try c.decodeIfPresent(Bool.self, forKey: .local) ?? false
        self.in = try c.decode(Counts.self, forKey: .in)
        out = try c.decode(Counts.self, forKey: .out)
        services = try c.decode(ServiceList.self, forKey: .services)
        tcp = try c.decodeIfPresent(PartyTCP.self, forKey: .tcp)
        network = try c.decodeIfPresent(String.self, forKey: .network)
        country = try c.decodeIfPresent(String.self, forKey: .country)
        asn = try c.decodeIfPresent(String.self, forKey: .asn)
        asOrg = try c.decodeIfPresent(String.self, forKey: .asOrg)
    }
}

/// One client's TCP control segments in a window, both directions: SYN without ACK,
/// SYN-ACK, RST, FIN, and how many of its services saw a SYN (a scan touches many).
public struct PartyTCP: Codable, Hashable, Sendable {
    public var syn: UInt64 = 0
    public var synack: UInt64 = 0
    public var rst: UInt64 = 0
    public var fin: UInt64 = 0
    public var synServices: UInt64 = 0

    public init(syn: UInt64 = 0, synack: UInt64 = 0, rst: UInt64 = 0, fin: UInt64 = 0, synServices: UInt64 = 0) {
        self.syn = syn
        self.synack = synack
        self.rst = rst
        self.fin = fin
        self.synServices = synServices
    }

    enum CodingKeys: String, CodingKey {
        case syn, synack, rst, fin
        case synServices = "syn_services"
    }
}

/// A client whose SYNs (without ACK) reached many services in a window.
public struct SYNClient: Codable, Hashable, Sendable {
    public var ip: IPAddress
    /// Distinct (server-side) services its SYNs went to.
    public var synServices: UInt64
    public var syn: UInt64

    public init(ip: IPAddress, synServices: UInt64, syn: UInt64) {
        self.ip = ip
        self.synServices = synServices
        self.syn = syn
    }

    enum CodingKeys: String, CodingKey {
        case ip, syn
        case synServices = "syn_services"
    }
}

/// TCP segments of one direction by control kind (a segment counts under each that
/// applies; one cut before its flags under `unknown`).
public struct TCPCounts: Codable, Hashable, Sendable {
    public var syn: UInt64 = 0
    public var synack: UInt64 = 0
    public var rst: UInt64 = 0
    public var fin: UInt64 = 0
    public var unknown: UInt64 = 0

    public init(syn: UInt64 = 0, synack: UInt64 = 0, rst: UInt64 = 0, fin: UInt64 = 0, unknown: UInt64 = 0) {
        self.syn = syn
        self.synack = synack
        self.rst = rst
        self.fin = fin
        self.unknown = unknown
    }

    public subscript(kind: TCPFlags.Kind) -> UInt64 {
        get {
            switch kind {
            case .syn: syn
            case .synack: synack
            case .rst: rst
            case .fin: fin
            case .unknown: unknown
            }
        }
        set {
            switch kind {
            case .syn: syn = newValue
            case .synack: synack = newValue
            case .rst: rst = newValue
            case .fin: fin = newValue
            case .unknown: unknown = newValue
            }
        }
    }
}

/// What a window saw of TCP, packet sizes and DNS.
public struct ProtocolCounts: Codable, Hashable, Sendable {
    public var tcpIn = TCPCounts()
    public var tcpOut = TCPCounts()
    /// IP packets per size bucket (`sizeBounds`, then larger), by direction.
    public var sizesIn = [UInt64](repeating: 0, count: ProtocolCounts.sizeBuckets)
    public var sizesOut = [UInt64](repeating: 0, count: ProtocolCounts.sizeBuckets)
    /// DNS queries per type (`DNSFacts.queryTypes`), responses per code (`DNSFacts.responseCodes`).
    public var dnsQueries = [UInt64](repeating: 0, count: DNSFacts.queryTypes.count)
    public var dnsResponses = [UInt64](repeating: 0, count: DNSFacts.responseCodes.count)
    /// DNS messages shorter than their header or without a readable first question, and
    /// those the capture cut before the decoder could tell.
    public var dnsMalformed: UInt64 = 0
    public var dnsCut: UInt64 = 0
    /// The clients whose SYNs reached the most services (at most `synClientLimit`, most
    /// services first, then most SYNs, then address), listed or not: a port scan shows here
    /// even when its bytes keep it out of the top.
    public var synClients: [SYNClient] = []

    /// How many clients `synClients` lists at most.
    public static let synClientLimit = 10

    /// The upper bounds (wire bytes, inclusive) of the size buckets; the last has none.
    public static var sizeBounds: [UInt64] { ProtocolTallies.sizeBounds }
    /// How many size buckets there are (the bounds, then one without).
    public static let sizeBuckets = ProtocolTallies.sizeBuckets

    public init() {}

    init(tallies t: [UInt64]) {
        for kind in TCPFlags.Kind.allCases {
            tcpIn[kind] = t[ProtocolTallies.tcp(kind, 0)]
            tcpOut[kind] = t[ProtocolTallies.tcp(kind, 1)]
        }
        for bucket in 0..<Self.sizeBuckets {
            sizesIn[bucket] = t[ProtocolTallies.size(bucket, 0)]
            sizesOut[bucket] = t[ProtocolTallies.size(bucket, 1)]
        }
        dnsQueries = Array(t[ProtocolTallies.queries..<ProtocolTallies.queries + DNSFacts.queryTypes.count])
        dnsResponses = Array(t[ProtocolTallies.responses..<ProtocolTallies.responses + DNSFacts.responseCodes.count])
        dnsMalformed = t[ProtocolTallies.dnsMalformed]
        dnsCut = t[ProtocolTallies.dnsCut]
    }

    enum CodingKeys: String, CodingKey { case tcp, sizes, dns }
    enum DirectionKeys: String, CodingKey { case `in`, out }
    enum TCPKeys: String, CodingKey {
        case `in`, out
        case synClients = "syn_clients"
    }
    enum DNSKeys: String, CodingKey { case queries, responses, malformed, cut }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let tcp = try c.nestedContainer(keyedBy: TCPKeys.self, forKey: .tcp)
        tcpIn = try tcp.decode(TCPCounts.self, forKey: .in)
        tcpOut = try tcp.decode(TCPCounts.self, forKey: .out)
        synClients = try tcp.decodeIfPresent([SYNClient].self, forKey: .synClients) ?? []
        let sizes = try c.nestedContainer(keyedBy: DirectionKeys.self, forKey: .sizes)
        sizesIn = try sizes.decode([UInt64].self, forKey: .in)
        sizesOut = try sizes.decode([UInt64].self, forKey: .out)
        guard sizesIn.count == Self.sizeBuckets, sizesOut.count == Self.sizeBuckets else {
            throw DecodingError.dataCorruptedError(forKey: .in, in: sizes, debugDescription: "8 size buckets per direction")
        }
        let dns = try c.nestedContainer(keyedBy: DNSKeys.self, forKey: .dns)
        let queries = try dns.decode([String: UInt64].self, forKey: .queries)
        dnsQueries = DNSFacts.queryTypes.map { queries[$0] ?? 0 }
        let responses = try dns.decode([String: UInt64].self, forKey: .responses)
        dnsResponses = DNSFacts.responseCodes.map { responses[$0] ?? 0 }
        dnsMalformed = try dns.decode(UInt64.self, forKey: .malformed)
        dnsCut = try dns.decode(UInt64.self, forKey: .cut)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        var tcp = c.nestedContainer(keyedBy: TCPKeys.self, forKey: .tcp)
        try tcp.encode(tcpIn, forKey: .in)
        try tcp.encode(tcpOut, forKey: .out)
        try tcp.encode(synClients, forKey: .synClients)
        var sizes = c.nestedContainer(keyedBy: DirectionKeys.self, forKey: .sizes)
        try sizes.encode(sizesIn, forKey: .in)
        try sizes.encode(sizesOut, forKey: .out)
        var dns = c.nestedContainer(keyedBy: DNSKeys.self, forKey: .dns)
        try dns.encode(Dictionary(uniqueKeysWithValues: zip(DNSFacts.queryTypes, dnsQueries)), forKey: .queries)
        try dns.encode(Dictionary(uniqueKeysWithValues: zip(DNSFacts.responseCodes, dnsResponses)), forKey: .responses)
        try dns.encode(dnsMalformed, forKey: .malformed)
        try dns.encode(dnsCut, forKey: .cut)
    }
}

/// A client's traffic in a window.
public typealias ClientRecord = PartyRecord

/// Traffic of the parties that are not listed one by one: folded past `--top`, or past
/// `--max-clients` (`other` for clients, `other_servers` for servers).
public struct OtherCounts: Codable, Hashable, Sendable {
    /// How many distinct parties it holds: exact for folded parties, and for the parties
    /// past `--max-clients` up to 4,096 of them; beyond that a HyperLogLog estimate
    /// (about 1.6% standard error). (`clients` in `other`, `servers` in `other_servers`.)
    public var clients: UInt64
    public var `in`: Counts
    public var out: Counts

    public init(in: Counts = .zero, out: Counts = .zero, clients: UInt64 = 0) {
        self.in = `in`
        self.out = out
        self.clients = clients
    }

    /// The party count under the name `other_servers` gives it.
    public var servers: UInt64 {
        get { clients }
        set { clients = newValue }
    }

    public var packets: UInt64 { self.in.packets &+ out.packets }
    public var bytes: UInt64 { self.in.bytes &+ out.bytes }

    enum CodingKeys: String, CodingKey { case packets, bytes, clients, servers, `in`, out }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        clients = try c.decodeIfPresent(UInt64.self, forKey: .clients) ?? c.decode(UInt64.self, forKey: .servers)
        if let inbound = try c.decodeIfPresent(Counts.self, forKey: .in),
           let outbound = try c.decodeIfPresent(Counts.self, forKey: .out) {
            self.in = inbound
            self.out = outbound
        } else {
            // A record without the split: keep the totals on the inbound side.
            self.in = Counts(packets: try c.decode(UInt64.self, forKey: .packets), bytes: try c.decode(UInt64.self, forKey: .bytes))
            self.out = .zero
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(packets, forKey: .packets)
        try c.encode(bytes, forKey: .bytes)
        try c.encode(clients, forKey: .clients)
        try c.encode(self.in, forKey: .in)
        try c.encode(out, forKey: .out)
    }
}

/// Frames that could not be decoded, with a count per reason.
public struct MalformedCounts: Codable, Hashable, Sendable {
    public var packets: UInt64
    public var bytes: UInt64
    /// Packets per `MalformedReason.label`.
    public var reasons: [String: UInt64]

    public init(packets: UInt64 = 0, bytes: UInt64 = 0, reasons: [String: UInt64] = [:]) {
        self.packets = packets
        self.bytes = bytes
        self.reasons = reasons
    }

    enum CodingKeys: String, CodingKey { case packets, bytes, reasons }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        packets = try c.decode(UInt64.self, forKey: .packets)
        bytes = try c.decode(UInt64.self, forKey: .bytes)
        reasons = try c.decodeIfPresent([String: UInt64].self, forKey: .reasons) ?? [:]
    }
}

/// What the capture delivered and lost while the window was open.
public struct CaptureCounts: Codable, Hashable, Sendable {
    /// Frames the capture delivered into this window.
    public var received: UInt64
    public var kernelDropped: UInt64
    public var interfaceDropped: UInt64
    /// Frames longer on the wire than the interface's MTU and link header: merged by
    /// GRO/LRO before the capture saw them (live captures only).
    public var oversized: UInt64
    /// Per live interface: what it delivered and lost (empty for files).
    public var interfaces: [InterfaceCounts]

    /// Frames the kernel or the interface dropped (`kernel_dropped + interface_dropped`).
    public var dropped: UInt64 { kernelDropped &+ interfaceDropped }

    public init(
        received: UInt64 = 0, kernelDropped: UInt64 = 0, interfaceDropped: UInt64 = 0, oversized: UInt64 = 0,
        interfaces: [InterfaceCounts] = []
    ) {
        self.received = received
        self.kernelDropped = kernelDropped
        self.interfaceDropped = interfaceDropped
        self.oversized = oversized
        self.interfaces = interfaces
    }

    enum CodingKeys: String, CodingKey {
        case received, dropped, oversized, interfaces
        case kernelDropped = "kernel_dropped"
        case interfaceDropped = "interface_dropped"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        received = try c.decode(UInt64.self, forKey: .received)
        let dropped = try c.decode(UInt64.self, forKey: .dropped)
        // Records stored before the split hold only the sum: count it as the kernel's.
        kernelDropped = try c.decodeIfPresent(UInt64.self, forKey: .kernelDropped) ?? dropped
        interfaceDropped = try c.decodeIfPresent(UInt64.self, forKey: .interfaceDropped) ?? 0
        oversized = try c.decodeIfPresent(UInt64.self, forKey: .oversized) ?? 0
        interfaces = try c.decodeIfPresent([InterfaceCounts].self, forKey: .interfaces) ?? []
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(received, forKey: .received)
        try c.encode(dropped, forKey: .dropped)
        try c.encode(kernelDropped, forKey: .kernelDropped)
        try c.encode(interfaceDropped, forKey: .interfaceDropped)
        try c.encode(oversized, forKey: .oversized)
        try c.encode(interfaces, forKey: .interfaces)
    }
}

/// One live interface's figures in a window.
public struct InterfaceCounts: Codable, Hashable, Sendable {
    public var name: String
    /// Frames its capture delivered into the window.
    public var received: UInt64
    public var kernelDropped: UInt64
    public var interfaceDropped: UInt64

    public init(name: String, received: UInt64 = 0, kernelDropped: UInt64 = 0, interfaceDropped: UInt64 = 0) {
        self.name = name
        self.received = received
        self.kernelDropped = kernelDropped
        self.interfaceDropped = interfaceDropped
    }

    enum CodingKeys: String, CodingKey {
        case name, received
        case kernelDropped = "kernel_dropped"
        case interfaceDropped = "interface_dropped"
    }
}

/// One source's IP traffic in a window: a live interface, a capture file, a flow input
/// (`netflow`, `sflow`) or `inject`, so that a mirror port and a router's flows are never
/// added up unseen.
public struct SourceCounts: Codable, Hashable, Sendable {
    public var name: String
    public var `in`: Counts
    public var out: Counts

    public init(name: String, in: Counts = .zero, out: Counts = .zero) {
        self.name = name
        self.in = `in`
        self.out = out
    }
}

/// One closed (or the open) window: DESIGN.md's JSON record.
///
/// Conservation holds for every record the aggregator makes:
/// `packets == Σ clients + other + non_ip + malformed`, the same with `servers` and
/// `other_servers`, and the same for bytes.
///
/// ```swift
/// let line = record.jsonBytes()                       // one NDJSON line, without "\n"
/// let back = try JSONDecoder().decode(WindowRecord.self, from: Data(line))
/// ```
public struct WindowRecord: Decodable, Hashable, Sendable {
    /// Window start, nanoseconds since the Unix epoch (a multiple of the window length).
    public var start: Int64
    /// Window end (exclusive), nanoseconds since the Unix epoch.
    public var end: Int64
    /// The window did not run its whole length (end of file, shutdown, or a capture that started mid-window).
    public var partial: Bool
    public var `in`: Counts
    public var out: Counts
    /// Sorted by total bytes, descending.
    public var clients: [PartyRecord]
    public var other: OtherCounts
    /// The servers, sorted by total bytes, descending.
    public var servers: [PartyRecord]
    public var otherServers: OtherCounts
    public var nonIP: Counts
    public var malformed: MalformedCounts
    public var latePackets: UInt64
    public var capture: CaptureCounts
    /// Every service in the window (all clients, listed or not), sorted by bytes, descending.
    public var services: [ServiceCounts]
    /// Per named network and side (`--networks`; `nil` without it).
    public var networks: [NetworkCounts]?
    /// Client traffic per country (`--country-db`; `nil` without it).
    public var countries: [CountryCounts]?
    /// Client traffic per autonomous system (`--asn-db`; `nil` without it).
    public var asns: [ASNCounts]?
    /// TCP control segments, packet sizes and DNS messages of the window.
    public var protocols: ProtocolCounts
    /// Some figures were scaled up from samples (a flow exporter's sampling rate above 1):
    /// estimates, not exact counts.
    public var sampled = false
    /// The IP traffic of each source (`in` + `out` over the sources equal the window's).
    public var sources: [SourceCounts] = []

    public init(
        start: Int64, end: Int64, partial: Bool = false,
        in: Counts = .zero, out: Counts = .zero, clients: [PartyRecord] = [], other: OtherCounts = .init(),
        servers: [PartyRecord] = [], otherServers: OtherCounts = .init(),
        nonIP: Counts = .zero, malformed: MalformedCounts = .init(), latePackets: UInt64 = 0,
        capture: CaptureCounts = .init(), services: [ServiceCounts] = [], protocols: ProtocolCounts = ProtocolCounts()
    ) {
        self.start = start
        self.end = end
        self.partial = partial
        self.in = `in`
        self.out = out
        self.clients = clients
        self.other = other
        self.servers = servers
        self.otherServers = otherServers
        self.nonIP = nonIP
        self.malformed = malformed
        self.latePackets = latePackets
        self.capture = capture
        self.services = services
        self.protocols = protocols
    }

    enum CodingKeys: String, CodingKey {
        case networks, countries, asns
        case start, end, partial, packets, bytes, `in`, out, clients, other, servers
        case otherServers = "other_servers"
        case nonIP = "non_ip"
        case malformed
        case latePackets = "late_packets"
        case capture, services, tcp, sizes, dns, sampled, sources
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let startText = try c.decode(String.self, forKey: .start)
        let endText = try c.decode(String.self, forKey: .end)
        guard let start = Timestamp.parse(startText) else {
            throw DecodingError.dataCorruptedError(forKey: .start, in: c, debugDescription: "not an RFC 3339 time: \(startText)")
        }
        guard let end = Timestamp.parse(endText) else {
            throw DecodingError.dataCorruptedError(forKey: .end, in: c, debugDescription: "not an RFC 3339 time: \(endText)")
        }
        self.start = start
        self.end = end
        partial = try c.decode(Bool.self, forKey: .partial)
        // The totals are derived from the parts below; they are read only to refuse a
        // record whose totals are not numbers.
        _ = try c.decode(UInt64.self, forKey: .packets)
        _ = try c.decode(UInt64.self, forKey: .bytes)
        self.in = try c.decode(Counts.self, forKey: .in)
        out = try c.decode(Counts.self, forKey: .out)
        clients = try c.decode([PartyRecord].self, forKey: .clients)
        other = try c.decode(OtherCounts.self, forKey: .other)
        // Records stored before servers were listed have neither key: their IP traffic is
        // then all in `other_servers`, so conservation still holds.
        servers = try c.decodeIfPresent([PartyRecord].self, forKey: .servers) ?? []
        otherServers = try c.decodeIfPresent(OtherCounts.self, forKey: .otherServers) ?? OtherCounts(in: self.in, out: out)
        nonIP = try c.decode(Counts.self, forKey: .nonIP)
        malformed = try c.decode(MalformedCounts.self, forKey: .malformed)
        latePackets = try c.decode(UInt64.self, forKey: .latePackets)
        capture = try c.decode(CaptureCounts.self, forKey: .capture)
        networks = try c.decodeIfPresent([NetworkCounts].self, forKey: .networks)
        countries = try c.decodeIfPresent([CountryCounts].self, forKey: .countries)
        asns = try c.decodeIfPresent([ASNCounts].self, forKey: .asns)
        services = try c.decodeIfPresent([ServiceCounts].self, forKey: .services) ?? []
        // Records stored before protocols were counted have none: zeros.
        protocols = c.contains(.tcp) ? try ProtocolCounts(from: decoder) : ProtocolCounts()
        // Records stored before flow inputs have neither.
        sampled = try c.decodeIfPresent(Bool.self, forKey: .sampled) ?? false
        sources = try c.decodeIfPresent([SourceCounts].self, forKey: .sources) ?? []
    }

    /// Clients plus `other`: the IP traffic in the window.
    public var ipTotal: Counts { self.in + out }

    /// Every frame of the window: IP (`in` + `out`), non-IP and malformed.
    public var packets: UInt64 { self.in.packets &+ out.packets &+ nonIP.packets &+ malformed.packets }
    public var bytes: UInt64 { self.in.bytes &+ out.bytes &+ nonIP.bytes &+ malformed.bytes }

    /// Whether the record satisfies DESIGN.md's conservation rule.
    public var isConserved: Bool {
        func sides(_ parties: [PartyRecord], _ other: OtherCounts) -> (Counts, Counts) {
            var inbound = other.in, outbound = other.out
            for party in parties {
                inbound += party.in
                outbound += party.out
            }
            return (inbound, outbound)
        }
        // The totals are the sum of `in`, `out`, non-IP and malformed by construction.
        return sides(clients, other) == (self.in, out) && sides(servers, otherServers) == (self.in, out)
            && whoIsConserved
    }
}

/// A value a record's JSON holds as a string (an address, a service, a direction): read
/// and written the same way for each, with one error for a string that names none.
///
/// ```swift
/// let service = try JSONDecoder().decode(Service.self, from: Data("\"TCP/443\"".utf8))
/// ```
public protocol JSONText: Codable {
    /// The string the value is written as.
    var jsonText: String { get }
    /// The value `jsonText` names, or `nil`.
    init?(jsonText: String)
    /// What the string should have been, for the error on one that is not (`an IP address`).
    static var jsonTextMeaning: String { get }
}

extension JSONText {
    public init(from decoder: any Decoder) throws {
        self = try Self.decodeText(decoder)
    }

    public func encode(to encoder: any Encoder) throws {
        try encodeText(to: encoder)
    }

    /// The value a decoder's single string names (what `init(from:)` does; a raw-value
    /// enum, which also has `RawRepresentable`'s coding, calls it from its own).
    public static func decodeText(_ decoder: any Decoder) throws -> Self {
        let c = try decoder.singleValueContainer()
        let text = try c.decode(String.self)
        guard let value = Self(jsonText: text) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "not \(Self.jsonTextMeaning): \(text)")
        }
        return value
    }

    /// Writes `jsonText` as a single string (what `encode(to:)` does).
    public func encodeText(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(jsonText)
    }
}

extension Direction: JSONText {
    // As a raw-value enum it also has `RawRepresentable`'s coding (the number): the text
    // is chosen here.
    public init(from decoder: any Decoder) throws { self = try Self.decodeText(decoder) }
    public func encode(to encoder: any Encoder) throws { try encodeText(to: encoder) }

    public var jsonText: String { label }
    public init?(jsonText: String) { self.init(label: jsonText) }
    public static var jsonTextMeaning: String { "a direction (\"in\" or \"out\")" }
}

extension Service: JSONText {
    public var jsonText: String { label }
    public init?(jsonText: String) { self.init(label: jsonText) }
    public static var jsonTextMeaning: String { "a service label" }
}

extension IPAddress: JSONText {
    public var jsonText: String { description }
    public init?(jsonText: String) { self.init(jsonText) }
    public static var jsonTextMeaning: String { "an IP address" }
}
