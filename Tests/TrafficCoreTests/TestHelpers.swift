import Foundation
import Testing
@testable import TrafficCore
import TrafficTestSupport

// Shared helpers of the TrafficCore tests: addresses, frames of every link type, a decoder
// that reads from an exactly-sized allocation, expectations on decoded packets, and a
// window collector for the aggregator.

/// An address from a literal the test knows to be valid.
func addr(_ text: String) -> IPAddress {
    guard let a = IPAddress(text) else { preconditionFailure("bad test address literal \(text)") }
    return a
}

/// An IPv6 address from its eight 16-bit groups.
func v6(_ groups: [UInt16]) -> IPAddress {
    precondition(groups.count == 8)
    var high: UInt64 = 0, low: UInt64 = 0
    for i in 0..<4 {
        high = high << 16 | UInt64(groups[i])
        low = low << 16 | UInt64(groups[i + 4])
    }
    return IPAddress(ipv6High: high, low: low)
}

/// Decodes `bytes` from a fresh allocation of exactly `bytes.count` bytes, so a read past
/// the end is a heap overflow that AddressSanitizer reports.
func decodeExact(_ bytes: some Collection<UInt8>, link: LinkType) -> DecodedPacket {
    guard let decoder = PacketDecoder(linkType: link) else {
        preconditionFailure("unsupported link type \(link)")
    }
    return decodeExact(bytes, decoder: decoder)
}

func decodeExact(_ bytes: some Collection<UInt8>, decoder: PacketDecoder) -> DecodedPacket {
    let copy = Array(bytes)
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: copy.count, alignment: 1)
    defer { buffer.deallocate() }
    copy.withUnsafeBytes { source in
        if source.count > 0 { buffer.copyMemory(from: source) }
    }
    return decoder.decode(UnsafeRawBufferPointer(buffer))
}

/// Frames of the link types FrameBuilder does not build.
enum Frames {
    static let be16 = FrameBuilder.be16
    static let be32 = FrameBuilder.be32

    /// Link-layer address bytes chosen so that reading the protocol at a wrong offset
    /// gives neither 0x0800 nor 0x86DD.
    static let linkAddress: [UInt8] = [0x02, 0x42, 0xAC, 0x11, 0x00, 0x02, 0x00, 0x00]

    /// `DLT_LINUX_SLL`: packet type, ARPHRD, address length, 8 address bytes, protocol (offset 14).
    static func sll(protocol proto: UInt16, payload: [UInt8]) -> [UInt8] {
        be16(0) + be16(1) + be16(6) + linkAddress + be16(proto) + payload
    }

    /// `DLT_LINUX_SLL2`: protocol (offset 0), reserved, interface index, ARPHRD, packet type,
    /// address length, 8 address bytes: 20 bytes.
    static func sll2(protocol proto: UInt16, payload: [UInt8]) -> [UInt8] {
        be16(proto) + [0, 0] + be32(3) + be16(1) + [0, 6] + linkAddress + payload
    }

    /// `DLT_NULL` with the family in little-endian host order.
    static func nullLE(family: UInt32, payload: [UInt8]) -> [UInt8] {
        [UInt8(family & 0xFF), UInt8((family >> 8) & 0xFF), UInt8((family >> 16) & 0xFF), UInt8(family >> 24)] + payload
    }

    /// `DLT_NULL` (big-endian host) and `DLT_LOOP`: the family in network order.
    static func familyBE(_ family: UInt32, payload: [UInt8]) -> [UInt8] {
        be32(family) + payload
    }

    /// An 802.3 frame carrying LLC/SNAP with a zero OUI and `etherType`.
    static func snap(etherType: UInt16, vlans: [UInt16] = [], payload: [UInt8]) -> [UInt8] {
        let llc: [UInt8] = [0xAA, 0xAA, 0x03, 0x00, 0x00, 0x00] + be16(etherType)
        return FrameBuilder.ethernet(etherType: UInt16(llc.count + payload.count), vlans: vlans, payload: llc + payload)
    }
}

/// What a decoded frame must look like, computed from how the test built it.
struct Expected: Sendable, CustomStringConvertible {
    var kind: DecodedPacket.Kind
    /// For `.malformed`: the acceptable reasons (usually one).
    var reasons: Set<MalformedReason> = []
    var source = IPAddress(ipv4: 0)
    var destination = IPAddress(ipv4: 0)
    var ipProtocol: UInt8 = 0
    /// `nil`: no ports.
    var ports: [UInt16]? = nil
    var laterFragment = false

    static func ip(_ source: IPAddress, _ destination: IPAddress, proto: UInt8, ports: (UInt16, UInt16)?, later: Bool = false) -> Expected {
        Expected(kind: .ip, source: source, destination: destination, ipProtocol: proto,
                 ports: ports.map { [$0.0, $0.1] }, laterFragment: later)
    }

    static let nonIP = Expected(kind: .nonIP)

    static func malformed(_ reasons: MalformedReason...) -> Expected {
        Expected(kind: .malformed, reasons: Set(reasons))
    }

    var description: String {
        switch kind {
        case .nonIP: "nonIP"
        case .malformed: "malformed\(reasons.map(\.label).sorted())"
        case .ip: "ip(\(source) -> \(destination) proto \(ipProtocol) ports \(ports.map { "\($0)" } ?? "none")\(laterFragment ? " later fragment" : ""))"
        }
    }
}

func describe(_ p: DecodedPacket) -> String {
    switch p.kind {
    case .nonIP: "nonIP"
    case .malformed: "malformed(\(p.malformedReason.label))"
    case .ip: "ip(\(p.source) -> \(p.destination) proto \(p.ipProtocol) ports \(p.hasPorts ? "[\(p.sourcePort), \(p.destinationPort)]" : "none")\(p.isLaterFragment ? " later fragment" : ""))"
    }
}

/// Checks a decoded packet against an expectation; returns whether it matched.
@discardableResult
func expectDecoded(_ p: DecodedPacket, _ e: Expected, _ context: String = "",
                   sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
    var ok = p.kind == e.kind
    switch e.kind {
    case .malformed:
        ok = ok && e.reasons.contains(p.malformedReason)
    case .nonIP:
        break
    case .ip:
        ok = ok && p.source == e.source && p.destination == e.destination && p.ipProtocol == e.ipProtocol
            && p.isLaterFragment == e.laterFragment && p.hasPorts == (e.ports != nil)
        if let ports = e.ports {
            ok = ok && p.sourcePort == ports[0] && p.destinationPort == ports[1]
        }
    }
    #expect(ok, "\(context) expected \(e), decoded \(describe(p))", sourceLocation: sourceLocation)
    return ok
}

/// Collects the records an aggregator closes.
final class RecordCollector {
    var records: [WindowRecord] = []
}

func makeAggregator(_ configuration: WindowAggregator.Configuration) -> (WindowAggregator, RecordCollector) {
    let collector = RecordCollector()
    let aggregator = WindowAggregator(configuration: configuration) { (record: WindowRecord) in
        collector.records.append(record)
    }
    return (aggregator, collector)
}

/// A decoded IP packet built by hand (the aggregator and attributor take decoded packets).
func packet(_ source: String, _ sourcePort: UInt16?, _ destination: String, _ destinationPort: UInt16?,
            proto: UInt8 = IPProtocol.tcp, laterFragment: Bool = false, reply: Bool = false) -> DecodedPacket {
    packet(addr(source), sourcePort, addr(destination), destinationPort, proto: proto, laterFragment: laterFragment, reply: reply)
}

/// A decoded IP packet; `reply` marks an ICMP/ICMPv6 reply or error.
func packet(_ source: IPAddress, _ sourcePort: UInt16?, _ destination: IPAddress, _ destinationPort: UInt16?,
            proto: UInt8 = IPProtocol.tcp, laterFragment: Bool = false, reply: Bool = false) -> DecodedPacket {
    var p = DecodedPacket()
    p.kind = .ip
    p.source = source
    p.destination = destination
    p.ipProtocol = proto
    p.isLaterFragment = laterFragment
    p.isReply = reply
    if let sourcePort, let destinationPort {
        p.sourcePort = sourcePort
        p.destinationPort = destinationPort
        p.hasPorts = true
    }
    return p
}

func nonIPPacket() -> DecodedPacket {
    var p = DecodedPacket()
    p.kind = .nonIP
    return p
}

func malformedPacket(_ reason: MalformedReason) -> DecodedPacket {
    var p = DecodedPacket()
    p.kind = .malformed
    p.malformedReason = reason
    return p
}

let nanosPerSecond: Int64 = 1_000_000_000

/// Seconds (possibly fractional, as milliseconds) to nanoseconds.
func seconds(_ s: Int64, ms: Int64 = 0) -> Int64 { s * nanosPerSecond + ms * 1_000_000 }

/// A JSON value that keeps the order of object keys (JSONSerialization does not).
indirect enum OrderedJSON: Equatable {
    case object([(String, OrderedJSON)])
    case array([OrderedJSON])
    case string(String)
    case number(String)
    case bool(Bool)
    case null

    static func == (a: OrderedJSON, b: OrderedJSON) -> Bool {
        switch (a, b) {
        case let (.object(x), .object(y)): x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        case let (.array(x), .array(y)): x == y
        case let (.string(x), .string(y)): x == y
        case let (.number(x), .number(y)): x == y
        case let (.bool(x), .bool(y)): x == y
        case (.null, .null): true
        default: false
        }
    }

    var keys: [String] {
        if case let .object(members) = self { return members.map(\.0) }
        return []
    }

    subscript(key: String) -> OrderedJSON? {
        if case let .object(members) = self { return members.first { $0.0 == key }?.1 }
        return nil
    }

    var elements: [OrderedJSON] {
        if case let .array(items) = self { return items }
        return []
    }

    /// Parses one JSON text; `nil` on any syntax error or trailing bytes.
    static func parse(_ bytes: [UInt8]) -> OrderedJSON? {
        var parser = Parser(b: bytes)
        guard let value = parser.value() else { return nil }
        parser.skipSpace()
        return parser.i == bytes.count ? value : nil
    }

    private struct Parser {
        let b: [UInt8]
        var i = 0

        mutating func skipSpace() {
            while i < b.count, [0x20, 0x09, 0x0A, 0x0D].contains(b[i]) { i += 1 }
        }

        mutating func value() -> OrderedJSON? {
            skipSpace()
            guard i < b.count else { return nil }
            switch b[i] {
            case UInt8(ascii: "{"):
                i += 1
                var members: [(String, OrderedJSON)] = []
                skipSpace()
                if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                while true {
                    skipSpace()
                    guard let key = string() else { return nil }
                    skipSpace()
                    guard i < b.count, b[i] == UInt8(ascii: ":") else { return nil }
                    i += 1
                    guard let v = value() else { return nil }
                    members.append((key, v))
                    skipSpace()
                    guard i < b.count else { return nil }
                    if b[i] == UInt8(ascii: ",") { i += 1; continue }
                    if b[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                    return nil
                }
            case UInt8(ascii: "["):
                i += 1
                var items: [OrderedJSON] = []
                skipSpace()
                if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                while true {
                    guard let v = value() else { return nil }
                    items.append(v)
                    skipSpace()
                    guard i < b.count else { return nil }
                    if b[i] == UInt8(ascii: ",") { i += 1; continue }
                    if b[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                    return nil
                }
            case UInt8(ascii: "\""):
                return string().map { .string($0) }
            case UInt8(ascii: "t"):
                return literal("true", .bool(true))
            case UInt8(ascii: "f"):
                return literal("false", .bool(false))
            case UInt8(ascii: "n"):
                return literal("null", .null)
            default:
                let start = i
                while i < b.count, b[i] == UInt8(ascii: "-") || b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: ".")
                    || b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") || (b[i] >= 0x30 && b[i] <= 0x39) { i += 1 }
                guard i > start else { return nil }
                return .number(String(decoding: b[start..<i], as: UTF8.self))
            }
        }

        mutating func literal(_ text: String, _ v: OrderedJSON) -> OrderedJSON? {
            let t = Array(text.utf8)
            guard i + t.count <= b.count, Array(b[i..<(i + t.count)]) == t else { return nil }
            i += t.count
            return v
        }

        mutating func hex4() -> UInt32? {
            guard i + 4 <= b.count, let v = UInt32(String(decoding: b[i..<(i + 4)], as: UTF8.self), radix: 16) else { return nil }
            i += 4
            return v
        }

        mutating func string() -> String? {
            guard i < b.count, b[i] == UInt8(ascii: "\"") else { return nil }
            i += 1
            var out = [UInt8]()
            while i < b.count {
                let c = b[i]
                i += 1
                if c == UInt8(ascii: "\"") { return String(decoding: out, as: UTF8.self) }
                if c < 0x20 { return nil }  // raw control characters are not allowed in JSON strings
                if c != UInt8(ascii: "\\") { out.append(c); continue }
                guard i < b.count else { return nil }
                let e = b[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    guard var scalar = hex4() else { return nil }
                    if scalar >= 0xD800 && scalar < 0xDC00 {
                        guard i + 2 <= b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") else { return nil }
                        i += 2
                        guard let lowSurrogate = hex4(), lowSurrogate >= 0xDC00 && lowSurrogate < 0xE000 else { return nil }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (lowSurrogate - 0xDC00)
                    }
                    guard let u = Unicode.Scalar(scalar) else { return nil }
                    out += Array(String(Character(u)).utf8)
                default:
                    return nil
                }
            }
            return nil
        }
    }
}
