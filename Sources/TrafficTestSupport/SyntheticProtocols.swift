import Foundation
import TrafficCore

/// A deterministic capture of TCP control segments, packet sizes and DNS, with an exact
/// oracle of what each frame is. Local servers and clients (`localNetworks`) talk to
/// remote ones, so every frame has exactly one local side and its direction is plain:
/// `in` towards the local side, `out` away from it.
///
/// What it holds, chosen per episode by a seeded generator:
/// - TCP: handshakes with data and FINs, SYN floods (many SYNs from spoofed sources, few
///   SYN-ACKs, no ACKs), port scans answered by RST-ACK, RST storms, RST+FIN and other odd
///   flag combinations, segments whose captured bytes end before the flags byte (or after
///   it, or in the payload), and a TCP header that claims fewer than 20 bytes.
/// - DNS over UDP/53: queries of every listed type and unlisted ones, some whose first
///   question's name ends in a compression pointer; responses with codes 0-5 and others,
///   answers compressed against the question; messages shorter than the 12-byte header, a
///   query without a question, names with a label past the end, 0x40 and 0x80 label types,
///   no terminator, no type, names over 255 bytes, a UDP length beyond the IP packet, and
///   structured garbage on port 53.
/// - A large DNS response in IPv4 and IPv6 fragments (the first holds the message's header).
/// - DNS over TCP/53: handshakes, segments that start with a 2-byte length equal to the
///   message, segments holding two messages, and messages split over two segments.
/// - Sizes in every bucket (60 to 9600 wire bytes, around each bound), IPv4 and IPv6,
///   some frames with an 802.1Q tag.
///
/// The oracle follows from how each frame was built: the flags the generator set, the
/// query type or response code it wrote, whether the message it wrote is well formed, and
/// which bytes a reader needs to tell (DESIGN.md: the 12-byte header and the first question
/// only) against the bytes the capture keeps.
///
/// ```swift
/// let traffic = SyntheticProtocols(packets: 5_000, seed: 3)
/// try traffic.pcap(snapLength: 128).write(to: url)
/// traffic.truth(snapLength: 128).tcpIn["syn"]
/// ```
public struct SyntheticProtocols: Sendable {
    /// Pass these as `--local-net`.
    public static let localNetworks = ["10.1.0.0/16", "2001:db8:53::/48"]

    /// What a DNS message is, as written.
    public enum DNSKind: Sendable, Hashable {
        /// Not DNS (a TCP handshake on port 53, a segment without a matching length).
        case none
        /// A query, by its first question's type label (`A`, ..., `other`).
        case query(String)
        /// A response, by its code label (`NOERROR`, ..., `other`).
        case response(String)
        case malformed
    }

    public struct Frame: Sendable {
        /// The whole frame as it went on the wire (padded to 60 bytes).
        public var bytes: [UInt8]
        /// How many bytes the capture keeps before any snap length (a deliberate cut).
        public var captured: Int
        public var timestamp: Int64
        /// Towards the local side.
        public var inbound: Bool
        /// Bytes needed for the frame to count as an IP packet: through the ports, or
        /// through the IP headers for a later fragment (fewer: malformed).
        public var portsEnd: Int
        /// TCP: where the flags byte is in the frame, and its value.
        public var tcpFlagsOffset: Int?
        public var tcpFlags: UInt8 = 0
        /// Port 53: what the message is, and how many captured bytes it takes to tell
        /// (fewer: cut). `nil` off port 53.
        public var dns: DNSKind?
        public var dnsNeeded = 0
        /// What the episode was, for messages.
        public var episode: String

        public var wireLength: Int { bytes.count }
    }

    /// What one frame counts as.
    public struct Verdict: Sendable, Hashable {
        /// An IP packet with its ports (false: malformed, no size or protocol figures, and
        /// the rest of the verdict empty).
        public var ip: Bool
        public var inbound: Bool
        /// The size bucket's index (`sizeBounds`, then larger); -1 when not an IP packet.
        public var sizeBucket: Int
        /// `syn`, `synack`, `rst`, `fin` (each that applies), or `unknown` alone.
        public var tcp: [String]
        /// `query A`, `response NXDOMAIN`, `malformed`, `cut`, or nil.
        public var dns: String?

        public init(ip: Bool, inbound: Bool, sizeBucket: Int, tcp: [String], dns: String?) {
            self.ip = ip
            self.inbound = inbound
            self.sizeBucket = sizeBucket
            self.tcp = tcp
            self.dns = dns
        }
    }

    /// The figures of a whole capture, shaped like a record's `tcp`, `sizes` and `dns`.
    public struct Truth: Sendable, Equatable {
        public var packets: UInt64 = 0
        public var bytes: UInt64 = 0
        /// By kind (`syn`, `synack`, `rst`, `fin`, `unknown`).
        public var tcpIn: [String: UInt64] = [:]
        public var tcpOut: [String: UInt64] = [:]
        public var sizesIn = [UInt64](repeating: 0, count: 8)
        public var sizesOut = [UInt64](repeating: 0, count: 8)
        /// By type label; by code label.
        public var queries: [String: UInt64] = [:]
        public var responses: [String: UInt64] = [:]
        public var dnsMalformed: UInt64 = 0
        public var dnsCut: UInt64 = 0
        /// Frames cut before their ports.
        public var malformedFrames: UInt64 = 0

        public init() {}

        public mutating func add(_ v: Verdict, wireLength: Int) {
            packets += 1
            bytes += UInt64(wireLength)
            guard v.ip else {
                malformedFrames += 1
                return
            }
            if v.inbound { sizesIn[v.sizeBucket] += 1 } else { sizesOut[v.sizeBucket] += 1 }
            for kind in v.tcp {
                if v.inbound { tcpIn[kind, default: 0] += 1 } else { tcpOut[kind, default: 0] += 1 }
            }
            guard let dns = v.dns else { return }
            if dns == "malformed" {
                dnsMalformed += 1
            } else if dns == "cut" {
                dnsCut += 1
            } else if dns.hasPrefix("query ") {
                queries[String(dns.dropFirst(6)), default: 0] += 1
            } else if dns.hasPrefix("response ") {
                responses[String(dns.dropFirst(9)), default: 0] += 1
            }
        }
    }

    /// The upper bounds (wire bytes, inclusive) of the size buckets, as DESIGN.md lists them.
    public static let sizeBounds = [64, 128, 256, 512, 1024, 1518, 9216]
    /// Query types by number, labelled as DESIGN.md lists them; any other is `other`.
    public static let queryTypes: [UInt16: String] = [
        1: "A", 28: "AAAA", 5: "CNAME", 15: "MX", 2: "NS", 12: "PTR", 6: "SOA", 33: "SRV", 16: "TXT", 65: "HTTPS", 255: "ANY",
    ]
    /// Unlisted types the generator also asks for: DS, DNSKEY, CAA, SVCB, SPF, NAPTR, AXFR, 0, 65535.
    public static let otherQueryTypes: [UInt16] = [43, 48, 257, 64, 99, 35, 252, 0, 65535]
    public static let responseCodes = ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"]

    public static func sizeBucket(_ wire: Int) -> Int { sizeBounds.firstIndex { wire <= $0 } ?? sizeBounds.count }
    static func queryLabel(_ qtype: UInt16) -> String { queryTypes[qtype] ?? "other" }
    static func responseLabel(_ rcode: UInt8) -> String { Int(rcode) < responseCodes.count ? responseCodes[Int(rcode)] : "other" }

    public let frames: [Frame]

    /// - Parameters:
    ///   - spacing: nanoseconds between frames (one second and a one-second window give
    ///     each frame a record of its own).
    public init(packets: Int, seed: UInt64 = 1, start: Int64 = 1_700_000_000 * 1_000_000_000, spacing: Int64 = 1_000_000) {
        var frames: [Frame] = []
        frames.reserveCapacity(packets)
        Self.generate(packets: packets, seed: seed, start: start, spacing: spacing) { frames.append($0) }
        self.frames = frames
    }

    /// The oracle of a capture written with `snapLength`.
    public func truth(snapLength: Int = .max) -> Truth {
        var t = Truth()
        for f in frames { t.add(Self.verdict(f, snapLength: snapLength), wireLength: f.wireLength) }
        return t
    }

    /// The frames as a capture file image.
    public func pcap(snapLength: Int = 262_144, format: PcapWriter.Format = .pcapMicro) -> PcapWriter {
        var writer = PcapWriter(linkType: 1, snapLength: snapLength, format: format)
        for f in frames { writer.append(Array(f.bytes.prefix(f.captured)), timestamp: f.timestamp, wireLength: f.wireLength) }
        return writer
    }

    /// Writes a capture of `packets` frames straight to `url` without keeping them in memory
    /// and returns its oracle.
    public static func write(
        to url: URL, packets: Int, seed: UInt64 = 1, spacing: Int64 = 1_000_000, snapLength: Int = 262_144,
        format: PcapWriter.Format = .pcapMicro
    ) throws -> Truth {
        FileManager.default.createFile(atPath: url.path, contents: nil)
        let handle = try FileHandle(forWritingTo: url)
        defer { try? handle.close() }
        var writer = PcapWriter(linkType: 1, snapLength: snapLength, format: format)
        var truth = Truth()
        var writeError: (any Error)?
        generate(packets: packets, seed: seed, start: 1_700_000_000 * 1_000_000_000, spacing: spacing) { f in
            writer.append(Array(f.bytes.prefix(f.captured)), timestamp: f.timestamp, wireLength: f.wireLength)
            truth.add(verdict(f, snapLength: snapLength), wireLength: f.wireLength)
            if writer.data.count > 1 << 22 {
                do { try handle.write(contentsOf: writer.takeData()) } catch { writeError = error }
            }
        }
        try handle.write(contentsOf: writer.takeData())
        if let writeError { throw writeError }
        return truth
    }

    /// What `f` counts as when the capture keeps at most `snapLength` bytes of it.
    public static func verdict(_ f: Frame, snapLength: Int = .max) -> Verdict {
        let kept = min(f.captured, snapLength, f.bytes.count)
        guard kept >= f.portsEnd else { return Verdict(ip: false, inbound: false, sizeBucket: -1, tcp: [], dns: nil) }
        var v = Verdict(ip: true, inbound: f.inbound, sizeBucket: sizeBucket(f.wireLength), tcp: [], dns: nil)
        if let offset = f.tcpFlagsOffset {
            if kept > offset {
                let syn = f.tcpFlags & 0x02 != 0, ack = f.tcpFlags & 0x10 != 0
                if syn { v.tcp.append(ack ? "synack" : "syn") }
                if f.tcpFlags & 0x04 != 0 { v.tcp.append("rst") }
                if f.tcpFlags & 0x01 != 0 { v.tcp.append("fin") }
            } else {
                v.tcp = ["unknown"]
            }
        }
        if let dns = f.dns {
            if kept < f.dnsNeeded {
                v.dns = "cut"
            } else {
                switch dns {
                case .none: v.dns = nil
                case .query(let label): v.dns = "query \(label)"
                case .response(let label): v.dns = "response \(label)"
                case .malformed: v.dns = "malformed"
                }
            }
        }
        return v
    }

    // MARK: The generator

    /// A DNS message as written: its bytes, what it is, and how many of its bytes a
    /// reader of the header and the first question needs to tell.
    struct Message {
        var bytes: [UInt8]
        var kind: DNSKind
        var needed: Int
    }

    static let localServers4: [IPAddress] = (1...6).map { IPAddress(ipv4: 0x0A01_0000 | UInt32($0)) }
    static let localServers6: [IPAddress] = (1...3).map { IPAddress(ipv6High: 0x2001_0DB8_0053_0000, low: UInt64($0)) }

    struct Generator {
        var rng: SplitMix64
        var emitted = 0
        let packets: Int
        let start: Int64
        let spacing: Int64
        let emit: (Frame) -> Void

        var done: Bool { emitted >= packets }

        mutating func below(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }
        mutating func chance(_ p: Double) -> Bool { rng.unit() < p }
        mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }

        mutating func remote(v6: Bool) -> IPAddress {
            if v6 { return IPAddress(ipv6High: 0x2001_0DB8_F000_0000 | (rng.next() & 0xFFFF), low: rng.next() | 1) }
            let bases: [UInt32] = [0xC633_6400, 0xCB00_7100, 0xC000_0200, 0x6440_0000]
            return IPAddress(ipv4: pick(bases) | UInt32(truncatingIfNeeded: rng.next() & 0xFF) | 1)
        }

        mutating func local(v6: Bool) -> IPAddress { v6 ? pick(SyntheticProtocols.localServers6) : pick(SyntheticProtocols.localServers4) }
        mutating func ephemeral() -> UInt16 { UInt16(32768 + below(28232)) }

        /// Emits one frame: `transport` (a TCP or UDP header and its payload) in IP from
        /// `src` to `dst`, in Ethernet (sometimes with a VLAN tag), padded to 60 bytes.
        mutating func frame(
            _ episode: String, src: IPAddress, dst: IPAddress, inbound: Bool, proto: UInt8, transport: [UInt8],
            dns: (kind: DNSKind, needed: Int)? = nil, keep: ((Int) -> Int)? = nil
        ) {
            let ip = src.isIPv6
                ? FrameBuilder.ipv6(src: src, dst: dst, proto: proto, payload: transport)
                : FrameBuilder.ipv4(src: src, dst: dst, proto: proto, payload: transport)
            packet(episode, ip: ip, transportLength: transport.count, inbound: inbound, tcpFlags: proto == 6 ? transport[13] : nil,
                   dns: dns, keep: keep)
        }

        /// Emits an IP packet whose last `transportLength` bytes follow its IP headers: a
        /// transport header with ports, or (`ports` false) a later fragment's data.
        mutating func packet(
            _ episode: String, ip: [UInt8], transportLength: Int, inbound: Bool, tcpFlags: UInt8? = nil, ports: Bool = true,
            dns: (kind: DNSKind, needed: Int)? = nil, keep: ((Int) -> Int)? = nil
        ) {
            guard !done else { return }
            let vlan: [UInt16] = below(10) == 0 ? [UInt16(100 + below(50))] : []
            var bytes = FrameBuilder.ethernet(vlans: vlan, ip: ip)
            let t = bytes.count - transportLength
            if bytes.count < 60 { bytes += [UInt8](repeating: 0, count: 60 - bytes.count) }
            var f = Frame(
                bytes: bytes, captured: bytes.count, timestamp: start + Int64(emitted) * spacing, inbound: inbound,
                portsEnd: ports ? t + 4 : t, episode: episode)
            if let tcpFlags {
                f.tcpFlagsOffset = t + 13
                f.tcpFlags = tcpFlags
            }
            if let dns {
                f.dns = dns.kind
                f.dnsNeeded = t + dns.needed
            }
            if let keep { f.captured = min(bytes.count, keep(t)) }
            emit(f)
            emitted += 1
        }

        // MARK: TCP

        /// MSS, SACK permitted, timestamps, NOP, window scale: 20 bytes, as a SYN carries them.
        static let synOptions: [UInt8] = [2, 4, 0x05, 0xB4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]

        /// Payload bytes for a frame of about `wire` bytes on the wire after `overhead`
        /// bytes of headers.
        mutating func payload(wire: Int, overhead: Int) -> [UInt8] {
            [UInt8](repeating: UInt8(truncatingIfNeeded: below(256)), count: max(0, wire - overhead))
        }

        /// A wire size: every bucket, each bound and the byte past it, jumbo frames and
        /// beyond.
        mutating func wireSize() -> Int {
            let sizes = [60, 63, 64, 65, 100, 128, 129, 200, 256, 257, 400, 512, 513, 800, 1024, 1025, 1400, 1518, 1519,
                         4000, 9000, 9216, 9217, 9600]
            return chance(0.5) ? pick(sizes) : 60 + below(1459)
        }

        /// A normal connection: handshake, data both ways, FINs from both sides, with the
        /// sequence numbers a real stream has.
        mutating func handshake() {
            let v6 = chance(0.3)
            let inboundService = chance(0.6)
            let (client, server) = inboundService ? (remote(v6: v6), local(v6: v6)) : (local(v6: v6), remote(v6: v6))
            let cport = ephemeral(), sport = pick([80, 443, 22, 25, 8080] as [UInt16])
            let overhead = 14 + (v6 ? 40 : 20) + 20
            var stream = Stream(client: client, server: server, cport: cport, sport: sport, clientIsRemote: inboundService,
                                cseq: UInt32(truncatingIfNeeded: rng.next()), sseq: UInt32(truncatingIfNeeded: rng.next()))
            send(&stream, "handshake", toServer: true, flags: 0x02, options: Self.synOptions)
            send(&stream, "handshake", toServer: false, flags: 0x12, options: Self.synOptions)
            send(&stream, "handshake", toServer: true, flags: 0x10)
            for _ in 0..<(1 + below(4)) {
                let data = payload(wire: wireSize(), overhead: overhead)
                send(&stream, "data", toServer: chance(0.4), flags: 0x18, payload: data)
            }
            send(&stream, "fin", toServer: true, flags: 0x11)
            send(&stream, "fin", toServer: false, flags: 0x11)
            send(&stream, "fin", toServer: true, flags: 0x10)
        }

        /// Both ends of a TCP connection and the next sequence number of each.
        struct Stream {
            var client: IPAddress, server: IPAddress
            var cport: UInt16, sport: UInt16
            var clientIsRemote: Bool
            var cseq: UInt32, sseq: UInt32
        }

        /// Sends a segment on `stream` and moves its sequence numbers on (SYN and FIN take one).
        mutating func send(_ s: inout Stream, _ episode: String, toServer: Bool, flags: UInt8, options: [UInt8] = [],
                           payload: [UInt8] = [], dns: (DNSKind, Int)? = nil) {
            let ack: UInt32 = flags & 0x10 != 0 ? (toServer ? s.sseq : s.cseq) : 0
            let seq = toServer ? s.cseq : s.sseq
            let (src, dst) = toServer ? (s.client, s.server) : (s.server, s.client)
            let (sp, dp) = toServer ? (s.cport, s.sport) : (s.sport, s.cport)
            let inbound = toServer == s.clientIsRemote
            frame(episode, src: src, dst: dst, inbound: inbound, proto: 6,
                  transport: FrameBuilder.tcp(sp, dp, flags: flags, seq: seq, ack: ack, options: options, payload: payload), dns: dns)
            let advance = UInt32(payload.count) &+ (flags & 0x03 != 0 ? 1 : 0)
            if toServer { s.cseq &+= advance } else { s.sseq &+= advance }
        }

        /// Many SYNs from spoofed sources to one local service; the server answers a few.
        mutating func synFlood() {
            let v6 = chance(0.25)
            let server = local(v6: v6)
            let port = pick([80, 443, 25] as [UInt16])
            for _ in 0..<(10 + below(50)) {
                let client = remote(v6: v6), cport = ephemeral()
                frame("syn flood", src: client, dst: server, inbound: true, proto: 6,
                      transport: FrameBuilder.tcp(cport, port, flags: 0x02, seq: UInt32(truncatingIfNeeded: rng.next())))
                if below(8) == 0 {
                    frame("syn flood", src: server, dst: client, inbound: false, proto: 6,
                          transport: FrameBuilder.tcp(port, cport, flags: 0x12, ack: 1, options: Self.synOptions))
                }
            }
        }

        /// One client's SYNs to many ports of a local server; closed ports answer RST-ACK.
        mutating func scan() {
            let v6 = chance(0.3)
            let client = remote(v6: v6), server = local(v6: v6), cport = ephemeral()
            for _ in 0..<(5 + below(30)) {
                let port = UInt16(1 + below(1024))
                frame("scan", src: client, dst: server, inbound: true, proto: 6, transport: FrameBuilder.tcp(cport, port, flags: 0x02))
                if chance(0.8) {
                    frame("scan", src: server, dst: client, inbound: false, proto: 6, transport: FrameBuilder.tcp(port, cport, flags: 0x14, ack: 2))
                } else {
                    frame("scan", src: server, dst: client, inbound: false, proto: 6, transport: FrameBuilder.tcp(port, cport, flags: 0x12, ack: 2))
                }
            }
        }

        /// RSTs (with and without ACK) both ways, and RST+FIN segments.
        mutating func rstStorm() {
            let v6 = chance(0.3)
            for _ in 0..<(5 + below(40)) {
                let a = local(v6: v6), b = remote(v6: v6)
                let outbound = chance(0.5)
                let flags: UInt8 = pick([0x04, 0x14, 0x05, 0x15, 0x1C])
                let (src, dst) = outbound ? (a, b) : (b, a)
                let (sp, dp) = outbound ? (UInt16(443), ephemeral()) : (ephemeral(), UInt16(443))
                frame("rst storm", src: src, dst: dst, inbound: !outbound, proto: 6, transport: FrameBuilder.tcp(sp, dp, flags: flags, seq: 9))
            }
        }

        /// Flag combinations a stack never sends on its own: SYN+FIN, SYN+RST, SYN+ACK+RST,
        /// Xmas, none, URG+PSH+FIN, ECE/CWR with SYN.
        mutating func oddFlags() {
            let v6 = chance(0.3)
            let client = remote(v6: v6), server = local(v6: v6)
            for flags in [0x03, 0x06, 0x16, 0x3F, 0x00, 0x29, 0xC2, 0xD2, 0x07, 0xFF] as [UInt8] where chance(0.6) {
                let inbound = chance(0.5)
                let (src, dst) = inbound ? (client, server) : (server, client)
                frame("odd flags", src: src, dst: dst, inbound: inbound, proto: 6, transport: FrameBuilder.tcp(ephemeral(), 80, flags: flags))
            }
        }

        /// Segments the capture cut short: before the flags byte (right after the ports, or
        /// anywhere before byte 13 of the header), just after it, in the options or the
        /// payload; and, rarely, before the ports (a malformed frame).
        mutating func cutSegments() {
            let v6 = chance(0.3)
            let client = remote(v6: v6), server = local(v6: v6)
            for _ in 0..<(3 + below(8)) {
                let inbound = chance(0.5)
                let (src, dst) = inbound ? (client, server) : (server, client)
                let flags: UInt8 = pick([0x02, 0x12, 0x04, 0x11, 0x10, 0x18])
                let options = chance(0.5) ? Self.synOptions : []
                let data = payload(wire: wireSize(), overhead: 14 + (v6 ? 40 : 20) + 20 + options.count)
                let segment = FrameBuilder.tcp(ephemeral(), 443, flags: flags, options: options, payload: data)
                let cut = below(10)
                let keep: (Int) -> Int = switch cut {
                case 0..<4: { $0 + 4 + cut * 3 }       // ports kept, flags byte not (t+4 ... t+13)
                case 4: { $0 + 12 }                    // through the data offset byte
                case 5: { $0 + 14 }                    // the flags byte is the last one kept
                case 6: { $0 + 17 }                    // inside the rest of the header
                case 7: { $0 + 20 + options.count / 2 } // inside the options, or just after the header
                case 8: { $0 + 2 }                     // before the ports: malformed
                default: { $0 + 40 + cut }            // in the payload
                }
                frame("cut tcp", src: src, dst: dst, inbound: inbound, proto: 6, transport: segment, keep: keep)
            }
        }

        /// A TCP header whose data offset claims fewer than 20 bytes (2, 3 or 4 words).
        mutating func bogusHeaderLength() {
            let client = remote(v6: false), server = local(v6: false)
            frame("bogus tcp header length", src: client, dst: server, inbound: true, proto: 6,
                  transport: FrameBuilder.tcp(ephemeral(), 80, flags: pick([0x02, 0x04, 0x01]), headerWords: 2 + below(3)))
        }

        /// UDP data of every size (jumbo frames too), not DNS, to a port no dissector claims.
        mutating func udpData() {
            let v6 = chance(0.3)
            let inbound = chance(0.5)
            let a = local(v6: v6), b = remote(v6: v6)
            let (src, dst) = inbound ? (b, a) : (a, b)
            let data = payload(wire: wireSize(), overhead: 14 + (v6 ? 40 : 20) + 8)
            frame("udp data", src: src, dst: dst, inbound: inbound, proto: 17, transport: FrameBuilder.udp(ephemeral(), 40000, payload: data))
        }

        // MARK: DNS messages

        mutating func name(labels: Int? = nil) -> [UInt8] {
            var out: [UInt8] = []
            for _ in 0..<(labels ?? (1 + below(4))) {
                let length = 1 + below(12)
                out.append(UInt8(length))
                for _ in 0..<length { out.append(UInt8(0x61 + below(26))) }
            }
            return out + [0]
        }

        mutating func qtype() -> UInt16 {
            chance(0.8) ? pick(Array(SyntheticProtocols.queryTypes.keys).sorted()) : pick(SyntheticProtocols.otherQueryTypes)
        }

        /// A query for `qtype`; with `pointer`, the first question's name is one label and a
        /// compression pointer to the rest, written after the question.
        mutating func query(_ qtype: UInt16, pointer: Bool = false) -> Message {
            var m = FrameBuilder.dnsHeader(id: UInt16(truncatingIfNeeded: rng.next()), flags: 0x0100, qd: 1)
            if pointer {
                let first = name(labels: 1).dropLast()
                let target = 12 + first.count + 2 + 4
                m += first + [0xC0 | UInt8(target >> 8), UInt8(target & 0xFF)]
            } else {
                m += name()
            }
            m += FrameBuilder.be16(qtype) + FrameBuilder.be16(1)
            let needed = m.count - 2
            if pointer { m += name() }
            return Message(bytes: m, kind: .query(SyntheticProtocols.queryLabel(qtype)), needed: needed)
        }

        /// A response with `rcode` (extended codes beyond 15 live in EDNS; the header has
        /// four bits), its answers' names compressed against the question.
        mutating func response(_ rcode: UInt8) -> Message {
            let qtype = self.qtype()
            let answers = rcode == 0 ? 1 + below(3) : 0
            let withQuestion = rcode != 1 || chance(0.5)
            var m = FrameBuilder.dnsHeader(id: UInt16(truncatingIfNeeded: rng.next()), flags: 0x8180 | UInt16(rcode), qd: withQuestion ? 1 : 0, an: UInt16(answers))
            if withQuestion { m += name() + FrameBuilder.be16(qtype) + FrameBuilder.be16(1) }
            for _ in 0..<answers {
                let rdata: [UInt8] = qtype == 28 ? [UInt8](repeating: 0x20, count: 16) : [192, 0, 2, UInt8(below(256))]
                m += [0xC0, 0x0C] + FrameBuilder.be16(qtype == 28 ? 28 : 1) + FrameBuilder.be16(1) + FrameBuilder.be32(300)
                m += FrameBuilder.be16(UInt16(rdata.count)) + rdata
            }
            return Message(bytes: m, kind: .response(SyntheticProtocols.responseLabel(rcode)), needed: 12)
        }

        /// A message no reader can take as a query or response: too short, no question,
        /// a label past the end, a 0x40 or 0x80 label type, no terminator, no type, a name
        /// over 255 bytes.
        mutating func malformedMessage() -> Message {
            let id = UInt16(truncatingIfNeeded: rng.next())
            switch below(8) {
            case 0:
                let n = below(12)
                return Message(bytes: (0..<n).map { _ in UInt8(below(256)) }, kind: .malformed, needed: 0)
            case 1:
                return Message(bytes: FrameBuilder.dnsHeader(id: id, flags: 0x0100, qd: 0) + name() + [0, 1, 0, 1], kind: .malformed, needed: 12)
            case 2:
                // The first label claims more bytes than the message has left.
                let m = FrameBuilder.dnsHeader(id: id, flags: 0x0100, qd: 1) + [UInt8(20 + below(40)), 0x61, 0x62]
                return Message(bytes: m, kind: .malformed, needed: 13)
            case 3, 4:
                // A label type other than a length or a pointer (0x40 extended, 0x80 reserved),
                // after a normal label or first.
                let lead: [UInt8] = chance(0.5) ? [3, 0x77, 0x77, 0x77] : []
                let bad = UInt8(below(2) == 0 ? 0x40 : 0x80) | UInt8(below(64))
                let m = FrameBuilder.dnsHeader(id: id, flags: 0x0100, qd: 1) + lead + [bad] + name() + [0, 1, 0, 1]
                return Message(bytes: m, kind: .malformed, needed: 12 + lead.count + 1)
            case 5:
                // Labels to the last byte, no zero: telling needs the last label's length byte.
                let n = Array(name().dropLast())
                var last = 0
                while last + 1 + Int(n[last]) < n.count { last += 1 + Int(n[last]) }
                return Message(bytes: FrameBuilder.dnsHeader(id: id, flags: 0x0100, qd: 1) + n, kind: .malformed, needed: 12 + last + 1)
            case 6:
                // A name and then only one byte of its type.
                let n = name()
                return Message(bytes: FrameBuilder.dnsHeader(id: id, flags: 0x0100, qd: 1) + n + [0], kind: .malformed, needed: 12 + n.count)
            default:
                // 128 one-byte labels (257 bytes), or four of 63 letters (257), past the 255
                // a name may have. Telling needs the last label's length byte.
                let lengths = chance(0.5) ? [Int](repeating: 1, count: 128) : [63, 63, 63, 63]
                let labels = lengths.flatMap { [UInt8($0)] + [UInt8](repeating: 0x61, count: $0) }
                let m = FrameBuilder.dnsHeader(id: id, flags: 0x0100, qd: 1) + labels + [0, 0, 1, 0, 1]
                return Message(bytes: m, kind: .malformed, needed: 12 + labels.count - lengths[lengths.count - 1])
            }
        }

        /// A name of 127 one-byte labels (255 bytes with its terminator: the most a name may
        /// have) in an A query.
        func longestQuery() -> Message {
            let labels = [UInt8](repeating: 0, count: 127).flatMap { _ in [1, 0x62] as [UInt8] }
            let m = FrameBuilder.dnsHeader(id: 7, flags: 0x0100, qd: 1) + labels + [0, 0, 1, 0, 1]
            return Message(bytes: m, kind: .query("A"), needed: m.count - 2)
        }

        /// Bytes on port 53 that were never DNS, built so their reading is still certain:
        /// QR set is a response with the code in its low bits, QR clear a query whose first
        /// label byte has a reserved type, or too short.
        mutating func garbage() -> Message {
            var m = (0..<(12 + below(80))).map { _ in UInt8(below(256)) }
            switch below(3) {
            case 0:
                m[2] |= 0x80
                return Message(bytes: m, kind: .response(SyntheticProtocols.responseLabel(m[3] & 0x0F)), needed: 12)
            case 1:
                m[2] &= 0x7F
                m[4] = 0
                m[5] = 1 + UInt8(below(200))
                m[12] = 0x40 | UInt8(below(128))
                return Message(bytes: m, kind: .malformed, needed: 13)
            default:
                return Message(bytes: Array(m.prefix(below(12))), kind: .malformed, needed: 0)
            }
        }

        // MARK: DNS episodes

        /// A UDP/53 exchange: a remote client asks a local resolver, or a local client asks a
        /// remote one; sometimes cut by the capture after the ports.
        mutating func dnsOverUDP(_ message: Message, toResolver: Bool, episode: String, keepAfterPorts: Int? = nil) {
            let v6 = chance(0.3)
            let localSide = local(v6: v6), remoteSide = remote(v6: v6)
            let localIsResolver = chance(0.5)
            let resolver = localIsResolver ? localSide : remoteSide, client = localIsResolver ? remoteSide : localSide
            let (src, dst) = toResolver ? (client, resolver) : (resolver, client)
            let (sp, dp) = toResolver ? (ephemeral(), UInt16(53)) : (UInt16(53), ephemeral())
            let keep: ((Int) -> Int)? = keepAfterPorts.map { k in { $0 + k } }
            // The UDP length (bytes 4-5) is always needed; a message shorter than its header
            // needs nothing more.
            frame(episode, src: src, dst: dst, inbound: dst == localSide, proto: 17, transport: FrameBuilder.udp(sp, dp, payload: message.bytes),
                  dns: (message.kind, message.needed == 0 ? 6 : 8 + message.needed), keep: keep)
        }

        mutating func dnsQueries() {
            for _ in 0..<(1 + below(6)) {
                let message = query(qtype(), pointer: chance(0.2))
                dnsOverUDP(message, toResolver: true, episode: "dns query")
            }
        }

        mutating func dnsResponses() {
            for _ in 0..<(1 + below(6)) {
                let rcode = chance(0.8) ? UInt8(below(6)) : pick([6, 7, 8, 9, 10, 11, 15] as [UInt8])
                dnsOverUDP(response(rcode), toResolver: false, episode: "dns response")
            }
        }

        mutating func dnsMalformed() {
            let message: Message
            switch below(10) {
            case 0: message = longestQuery()
            case 1, 2: message = garbage()
            default: message = malformedMessage()
            }
            dnsOverUDP(message, toResolver: message.bytes.count < 3 || message.bytes[2] & 0x80 == 0, episode: "dns malformed")
        }

        /// A query or response whose frame the capture cut: in the header, the name, the type.
        mutating func dnsCut() {
            let message = chance(0.6) ? query(qtype(), pointer: chance(0.3)) : response(UInt8(below(6)))
            let keep = 4 + below(8 + message.bytes.count)
            dnsOverUDP(message, toResolver: message.bytes[2] & 0x80 == 0, episode: "dns cut", keepAfterPorts: keep)
        }

        /// A UDP length beyond the end of the IP packet: no message can be read.
        mutating func dnsBadUDPLength() {
            let message = query(1)
            let client = remote(v6: false), resolver = local(v6: false)
            let transport = FrameBuilder.udp(ephemeral(), 53, payload: message.bytes, length: UInt16(8 + message.bytes.count + 1 + below(100)))
            frame("dns bad udp length", src: client, dst: resolver, inbound: true, proto: 17, transport: transport, dns: (.malformed, 6))
        }

        /// A NOERROR response too large for one packet (DNSSEC, many records), in IP
        /// fragments: the first holds the UDP header, whose length is the whole datagram's,
        /// the DNS header and the question; later fragments hold no ports.
        mutating func dnsFragmented() {
            let v6 = chance(0.4)
            let localSide = local(v6: v6), remoteSide = remote(v6: v6)
            let localIsResolver = chance(0.5)
            let (src, dst) = localIsResolver ? (localSide, remoteSide) : (remoteSide, localSide)
            let qtype: UInt16 = v6 ? 28 : 1
            var m = FrameBuilder.dnsHeader(id: UInt16(truncatingIfNeeded: rng.next()), flags: 0x8180, qd: 1, an: UInt16(60 + below(140)))
            m += name() + FrameBuilder.be16(qtype) + FrameBuilder.be16(1)
            for _ in 0..<(Int(m[6]) << 8 | Int(m[7])) {
                let rdata = [UInt8](repeating: UInt8(below(256)), count: qtype == 28 ? 16 : 4)
                m += [0xC0, 0x0C] + FrameBuilder.be16(qtype) + FrameBuilder.be16(1) + FrameBuilder.be32(60) + FrameBuilder.be16(UInt16(rdata.count)) + rdata
            }
            let datagram = FrameBuilder.udp(53, ephemeral(), payload: m)
            // Fragment data comes in multiples of 8 bytes: 1,480 fill an Ethernet frame after
            // an IPv4 header, 1,448 after an IPv6 header and its fragment header.
            let chunk = v6 ? 1448 : 1480
            let pieces = stride(from: 0, to: datagram.count, by: chunk).map { Array(datagram[$0..<min($0 + chunk, datagram.count)]) }
            for (i, piece) in pieces.enumerated() {
                let offset = UInt16(i * chunk / 8), more = i + 1 < pieces.count
                let ip = v6
                    ? FrameBuilder.ipv6(src: src, dst: dst, proto: 17, payload: piece,
                                        extensions: [(44, FrameBuilder.fragmentHeader(offset: offset, more: more))])
                    : FrameBuilder.ipv4(src: src, dst: dst, proto: 17, payload: piece, moreFragments: more, fragmentOffset: offset)
                packet("dns fragmented", ip: ip, transportLength: piece.count, inbound: dst == localSide, ports: i == 0,
                       dns: i == 0 ? (.response("NOERROR"), 8 + 12) : nil)
            }
        }

        /// DNS over TCP/53: a handshake, then segments that each start with a 2-byte length
        /// equal to the message in them, a segment holding two messages, and a message split
        /// over two segments (neither starts with a length that matches it).
        mutating func dnsOverTCP() {
            let v6 = chance(0.3)
            let localIsResolver = chance(0.5)
            let localSide = local(v6: v6), remoteSide = remote(v6: v6)
            let (client, resolver) = localIsResolver ? (remoteSide, localSide) : (localSide, remoteSide)
            // NOP, NOP, timestamps: 12 bytes, as most segments of a stream carry them.
            let options: [UInt8] = chance(0.5) ? [1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 7] : []
            let headerBytes = 20 + options.count
            var stream = Stream(client: client, server: resolver, cport: ephemeral(), sport: 53, clientIsRemote: localIsResolver,
                                cseq: UInt32(truncatingIfNeeded: rng.next()), sseq: UInt32(truncatingIfNeeded: rng.next()))
            // The handshake: no payload, not DNS (the data offset byte is read).
            send(&stream, "dns tcp handshake", toServer: true, flags: 0x02, options: options, dns: (.none, 13))
            send(&stream, "dns tcp handshake", toServer: false, flags: 0x12, options: options, dns: (.none, 13))
            send(&stream, "dns tcp handshake", toServer: true, flags: 0x10, options: options, dns: (.none, 13))
            for _ in 0..<(1 + below(3)) {
                let toResolver = chance(0.5)
                var message: Message
                switch below(6) {
                case 0: message = malformedMessage()
                case 1, 2: message = query(qtype(), pointer: chance(0.2))
                default: message = response(UInt8(below(6)))
                }
                let framed = FrameBuilder.be16(UInt16(message.bytes.count)) + message.bytes
                switch below(5) {
                case 0:
                    // Two messages in one segment: the length is the first one's, not the payload's.
                    let second = query(1)
                    let payload = framed + FrameBuilder.be16(UInt16(second.bytes.count)) + second.bytes
                    send(&stream, "dns tcp two messages", toServer: toResolver, flags: 0x18, options: options, payload: payload,
                         dns: (.none, headerBytes + 2))
                case 1 where message.bytes.count >= 4:
                    // One message in two segments; the second must not start with bytes that
                    // happen to read as its own length.
                    var half = framed.count / 2
                    if Int(framed[half]) << 8 | Int(framed[half + 1]) == framed.count - half - 2 { half += 1 }
                    send(&stream, "dns tcp split", toServer: toResolver, flags: 0x10, options: options, payload: Array(framed.prefix(half)),
                         dns: (.none, headerBytes + 2))
                    send(&stream, "dns tcp split", toServer: toResolver, flags: 0x18, options: options, payload: Array(framed.dropFirst(half)),
                         dns: (.none, headerBytes + 2))
                default:
                    send(&stream, "dns tcp", toServer: toResolver, flags: 0x18, options: options, payload: framed,
                         dns: (message.kind, headerBytes + 2 + message.needed))
                }
            }
            send(&stream, "dns tcp fin", toServer: true, flags: 0x11, options: options, dns: (.none, 13))
            send(&stream, "dns tcp fin", toServer: false, flags: 0x11, options: options, dns: (.none, 13))
        }

        mutating func run() {
            while !done {
                switch below(100) {
                case 0..<18: handshake()
                case 18..<24: synFlood()
                case 24..<29: scan()
                case 29..<34: rstStorm()
                case 34..<37: oddFlags()
                case 37..<43: cutSegments()
                case 43: bogusHeaderLength()
                case 44..<52: udpData()
                case 52..<66: dnsQueries()
                case 66..<77: dnsResponses()
                case 77..<85: dnsMalformed()
                case 85..<89: dnsCut()
                case 89: dnsBadUDPLength()
                case 90..<92: dnsFragmented()
                default: dnsOverTCP()
                }
            }
        }
    }

    static func generate(packets: Int, seed: UInt64, start: Int64, spacing: Int64, emit: (Frame) -> Void) {
        withoutActuallyEscaping(emit) { emit in
            var g = Generator(rng: SplitMix64(seed: seed), packets: packets, start: start, spacing: spacing, emit: emit)
            g.run()
        }
    }
}
