/// What the decoder reads beyond the ports, packed in two bytes of a decoded packet: a TCP
/// segment's control flags and a DNS message's kind (query type or response code). The
/// layouts, the kinds and their labels are defined here and nowhere else.
///
/// ```swift
/// let flags = TCPFlags(rawValue: packet.tcpFlags)
/// flags.isSYN                       // SYN without ACK
/// DNSFacts(rawValue: packet.dns).kind   // .query(qtype: 0) = an A query
/// ```
public struct TCPFlags: Sendable, Hashable {
    /// 0 for anything but TCP. Bit 7: the flags byte was captured, with bits 0 (FIN), 1 (SYN),
    /// 2 (RST), 4 (ACK) as TCP has them; bit 6 alone: a TCP segment cut before its flags.
    public var rawValue: UInt8

    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// From the 14th byte of a TCP header.
    @inline(__always)
    init(headerByte: UInt8) { rawValue = 0x80 | (headerByte & 0x17) }

    static let known: UInt8 = 0x80
    static let fin: UInt8 = 0x01
    static let syn: UInt8 = 0x02
    static let rst: UInt8 = 0x04
    static let ack: UInt8 = 0x10

    /// A TCP segment whose flags byte was cut off by the capture.
    public static let unknown = TCPFlags(rawValue: 0x40)
    /// The bits that make a segment count under some kind: cut, SYN, RST or FIN.
    static let counted: UInt8 = 0x47

    public var isKnown: Bool { rawValue & Self.known != 0 }

    /// The kinds a segment counts under: a segment counts under each that applies (RST+FIN
    /// under both); one cut before its flags counts under `unknown` alone.
    public enum Kind: Int, CaseIterable, Sendable {
        case syn, synack, rst, fin, unknown

        public var label: String {
            switch self {
            case .syn: "syn"
            case .synack: "synack"
            case .rst: "rst"
            case .fin: "fin"
            case .unknown: "unknown"
            }
        }
    }

    /// Calls `body` for each kind the segment counts under.
    @inline(__always)
    func forEachKind(_ body: (Kind) -> Void) {
        guard isKnown else { return body(.unknown) }
        if rawValue & Self.syn != 0 { body(rawValue & Self.ack != 0 ? .synack : .syn) }
        if rawValue & Self.rst != 0 { body(.rst) }
        if rawValue & Self.fin != 0 { body(.fin) }
    }

}

/// A DNS message's kind as the decoder found it: not DNS, a query (with its first
/// question's type), a response (with its code), malformed, or cut before the decoder could
/// tell (the capture's snapshot length).
public struct DNSFacts: Sendable, Hashable {
    /// Bits 6-7: 0 none, 1 query, 2 response, 3 not judged; bits 0-5: the query type's index,
    /// the response code's index, or (not judged) 0 malformed, 1 cut.
    public var rawValue: UInt8

    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let none = DNSFacts(rawValue: 0)
    static let malformed = DNSFacts(rawValue: 0xC0)
    static let cut = DNSFacts(rawValue: 0xC1)

    static func query(_ qtype: UInt16) -> DNSFacts { DNSFacts(rawValue: 0x40 | UInt8(queryTypeIndex(qtype))) }
    static func response(_ rcode: UInt8) -> DNSFacts { DNSFacts(rawValue: 0x80 | UInt8(min(Int(rcode), responseCodes.count - 1))) }

    public enum Kind: Equatable, Sendable {
        case none
        /// The index in `queryTypes`.
        case query(Int)
        /// The index in `responseCodes`.
        case response(Int)
        case malformed
        case cut
    }

    public var kind: Kind {
        switch rawValue >> 6 {
        case 1: .query(Int(rawValue & 0x3F))
        case 2: .response(Int(rawValue & 0x3F))
        case 3: rawValue & 0x3F == 0 ? .malformed : .cut
        default: .none
        }
    }

    /// The query types counted by name, then `other`.
    public static let queryTypes = ["A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT", "HTTPS", "ANY", "other"]
    static let queryTypeNumbers: [UInt16] = [1, 28, 5, 15, 2, 12, 6, 33, 16, 65, 255]

    /// The response codes counted by name (0-5), then `other`.
    public static let responseCodes = ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "other"]

    static func queryTypeIndex(_ qtype: UInt16) -> Int {
        queryTypeNumbers.firstIndex(of: qtype) ?? queryTypes.count - 1
    }
}

/// A window's protocol figures, one counter each in a flat block (the packet path adds to
/// them through a pointer): TCP control segments by kind and direction, IP packets by size
/// bucket and direction, DNS queries by type, responses by code, malformed and cut
/// messages. The layout is defined here and nowhere else.
enum ProtocolTallies {
    static let tcp = 0                  // TCPFlags.Kind x direction: 5 x 2
    static let sizes = 10               // size bucket x direction: `sizeBuckets` x 2
    static let queries = 26             // DNSFacts.queryTypes: 12
    static let responses = 38           // DNSFacts.responseCodes: 7
    static let dnsMalformed = 45
    static let dnsCut = 46
    static let count = 47

    /// The upper bounds (wire bytes, inclusive) of the size buckets; the last bucket has none.
    static let sizeBounds: [UInt64] = [64, 128, 256, 512, 1024, 1518, 9216]
    static let sizeBuckets = 8

    /// The bucket of a packet of `bytes` wire bytes: the first whose bound holds it (the
    /// powers of two found from the leading zeros, without a search).
    @inline(__always)
    static func sizeBucket(_ bytes: UInt64) -> Int {
        if bytes <= 64 { return 0 }
        if bytes <= 1024 { return 64 - (bytes - 1).leadingZeroBitCount - 6 }
        return bytes <= 1518 ? 5 : (bytes <= 9216 ? 6 : 7)
    }

    @inline(__always)
    static func tcp(_ kind: TCPFlags.Kind, _ direction: Int) -> Int { tcp + kind.rawValue * 2 + direction }

    @inline(__always)
    static func size(_ bucket: Int, _ direction: Int) -> Int { sizes + bucket * 2 + direction }
}
