import Foundation
import TrafficCore

/// A deterministic synthetic capture with an exact oracle, written by the tests
/// themselves (the Swift counterpart of the project's gen_pcap.py): monitored
/// servers talk to a Zipf-distributed pool of IPv4 and IPv6 clients over TCP, UDP, SCTP,
/// ICMP, ICMPv6 and GRE, with VLAN and QinQ tags, IPv4 options, first and later
/// fragments, IPv6 extension headers, ARP, truncated frames and a few reordered
/// timestamps. The oracle follows from how each frame was built, not from
/// trafficmon's code.
///
/// ```swift
/// let traffic = SyntheticTraffic(packets: 20_000, seed: 7)
/// try traffic.pcap(snapLength: 64).write(to: url)
/// traffic.truth.flows[.init(client: "198.51.100.7", direction: "in", service: "TCP/443")]
/// ```
public struct SyntheticTraffic {
    public struct FlowKey: Hashable, Sendable, CustomStringConvertible {
        public var client: String
        public var direction: String
        public var service: String

        public init(client: String, direction: String, service: String) {
            self.client = client
            self.direction = direction
            self.service = service
        }

        public var description: String { "\(client) \(direction) \(service)" }
    }

    public struct Truth: Sendable {
        public var flows: [FlowKey: Counts] = [:]
        public var nonIP = Counts()
        public var malformed = Counts()
        public var total = Counts()
        public var latePackets: UInt64 = 0
        /// Window starts (nanoseconds) that hold at least one packet.
        public var windowStarts: Set<Int64> = []
    }

    public struct Frame {
        public var bytes: [UInt8]
        public var timestamp: Int64
        public var wireLength: Int
        /// What the frame must count as: a flow, or nil for the non-IP / malformed buckets.
        public var flow: FlowKey?
        public var isNonIP = false
        /// Captured bytes attribution needs (through the ports, or the whole IP header chain).
        public var bytesNeeded = 0
    }

    /// The monitored servers: pass these as `--local-net`.
    public static let localNetworks = ["10.0.0.0/29", "2001:db8::1/128"]
    public static let servers4: [IPAddress] = (1...4).map { IPAddress(ipv4: 0x0A00_0000 | UInt32($0)) }
    public static let server6 = IPAddress(ipv6High: 0x2001_0DB8_0000_0000, low: 1)

    public let frames: [Frame]
    /// The oracle for a capture written without cutting frames.
    public var truth: Truth { truth(snapLength: .max) }
    private let timing: Truth

    /// The oracle for a capture cut at `snapLength`: a frame cut before what attribution
    /// needs is malformed (DESIGN.md), its wire bytes still counted.
    public func truth(snapLength: Int) -> Truth {
        var t = timing
        for f in frames { Self.count(f, snapLength: snapLength, into: &t) }
        return t
    }

    /// - Parameters:
    ///   - windowLength: the window length the oracle counts late packets for.
    public init(
        packets: Int, clients: Int = 500, seconds: Double = 30, seed: UInt64 = 1,
        start: Int64 = 1_700_000_000 * 1_000_000_000, windowLength: Int64 = 5_000_000_000,
        reorder: Bool = true, malformed: Bool = true
    ) {
        var frames: [Frame] = []
        frames.reserveCapacity(packets)
        timing = Self.generate(
            packets: packets, clients: clients, seconds: seconds, seed: seed, start: start,
            windowLength: windowLength, reorder: reorder, malformed: malformed) { frames.append($0) }
        self.frames = frames
    }

    /// Writes a capture of `packets` frames straight to `url` without keeping them in memory
    /// (for captures of millions of packets) and returns the oracle for `snapLength`.
    public static func write(
        to url: URL, packets: Int, clients: Int = 500, seconds: Double = 30, seed: UInt64 = 1,
        snapLength: Int = 262_144, format: PcapWriter.Format = .pcapMicro, reorder: Bool = true, malformed: Bool = true
    ) throws -> Truth {
        FileManager.default.createFile(atPath: url.path, contents: nil)
        let handle = try FileHandle(forWritingTo: url)
        defer { try? handle.close() }
        var writer = PcapWriter(linkType: 1, snapLength: snapLength, format: format)
        var truth = Truth()
        var writeError: (any Error)?
        let timing = generate(
            packets: packets, clients: clients, seconds: seconds, seed: seed, start: 1_700_000_000 * 1_000_000_000,
            windowLength: 5_000_000_000, reorder: reorder, malformed: malformed
        ) { f in
            writer.append(f.bytes, timestamp: f.timestamp, wireLength: f.wireLength)
            count(f, snapLength: snapLength, into: &truth)
            if writer.data.count > 1 << 22 {
                do { try handle.write(contentsOf: writer.takeData()) } catch { writeError = error }
            }
        }
        try handle.write(contentsOf: writer.takeData())
        if let writeError { throw writeError }
        truth.latePackets = timing.latePackets
        truth.windowStarts = timing.windowStarts
        return truth
    }

    static func count(_ f: Frame, snapLength: Int, into t: inout Truth) {
        t.total.add(bytes: UInt64(f.wireLength))
        if f.isNonIP {
            t.nonIP.add(bytes: UInt64(f.wireLength))
        } else if let flow = f.flow, f.bytesNeeded <= min(snapLength, f.bytes.count) {
            t.flows[flow, default: .zero].add(bytes: UInt64(f.wireLength))
        } else {
            t.malformed.add(bytes: UInt64(f.wireLength))
        }
    }

    /// The generator: calls `emit` for every frame in order and returns the timing oracle
    /// (late packets, window starts).
    static func generate(
        packets: Int, clients: Int, seconds: Double, seed: UInt64, start: Int64, windowLength: Int64,
        reorder: Bool, malformed: Bool, emit: (Frame) -> Void
    ) -> Truth {
        var timing = Truth()
        var rng = SplitMix64(seed: seed)
        var pool: [IPAddress] = []
        for i in 0..<max(1, clients) {
            if i % 7 == 6 {
                pool.append(IPAddress(ipv6High: 0x2001_0db8_1000_0000 | (rng.next() & 0xFFFF), low: rng.next() | 1))
            } else {
                let bases: [UInt32] = [0xC633_6400, 0xCB00_7100, 0x6440_0000, 0x0B00_0000]
                pool.append(IPAddress(ipv4: bases[Int(rng.next() % 4)] | UInt32(truncatingIfNeeded: rng.next() & 0xFFFF) | 1))
            }
        }
        // Zipf popularity (s = 1.1), the usual model of who talks how much: a few clients
        // carry most packets, a long tail appears now and then.
        var cumulative = [Double](repeating: 0, count: pool.count)
        var sum = 0.0
        for i in pool.indices {
            sum += 1.0 / pow(Double(i + 1), 1.1)
            cumulative[i] = sum
        }
        func zipf(_ u: Double) -> Int {
            let target = u * sum
            var low = 0, high = cumulative.count - 1
            while low < high {
                let mid = (low + high) / 2
                if cumulative[mid] < target { low = mid + 1 } else { high = mid }
            }
            return low
        }
        let step = Int64(seconds * 1e9) / Int64(max(packets, 1))
        var openWindow = Int64.min
        for n in 0..<packets {
            var timestamp = start + Int64(n) * step
            if reorder && n % 997 == 500 { timestamp -= windowLength }  // an old packet: late if its window is closed
            let window = Timestamp.floorDiv(timestamp, windowLength)
            if window > openWindow { openWindow = window }
            let late = window < openWindow
            timing.windowStarts.insert((late ? openWindow : window) * windowLength)
            if late { timing.latePackets += 1 }

            let r = rng.unit()
            let client = pool[zipf(rng.unit())]
            let vlans: [UInt16] = r < 0.1 ? [100] : (r < 0.13 ? [10, 20] : [])
            var frame: [UInt8]
            var wire: Int
            var flow: FlowKey?
            var needed = 0
            var isNonIP = false
            if r > 0.995 {
                frame = FrameBuilder.arp
                wire = 60
                isNonIP = true
            } else if malformed && r > 0.99 {
                // An IPv4 header cut after 10 bytes: malformed (truncated), wire length kept.
                frame = Array(FrameBuilder.ethernet(ip: FrameBuilder.ipv4(src: client, dst: Self.servers4[0], proto: 6, payload: FrameBuilder.ports(1, 2, headerLength: 20))).prefix(14 + 10))
                wire = 60
            } else {
                let inbound = rng.unit() < 0.45
                let server = client.isIPv6 ? Self.server6 : Self.servers4[Int(rng.next() % 4)]
                let (src, dst) = inbound ? (client, server) : (server, client)
                let kind = Int(rng.next() % 100)
                let size = 40 + Int(rng.next() % 1400)
                let clientPort = UInt16(1024 + rng.next() % 60000)
                var l4: [UInt8]
                var proto: UInt8
                var service: String
                var laterFragment = false
                var firstFragment = false
                switch kind {
                case 0..<45:
                    let port: UInt16 = [443, 80, 22, 8000][Int(rng.next() % 4)]
                    proto = 6; service = "TCP/\(port)"
                    l4 = inbound ? FrameBuilder.ports(clientPort, port, headerLength: 20, payload: size) : FrameBuilder.ports(port, clientPort, headerLength: 20, payload: size)
                case 45..<70:
                    let port: UInt16 = [53, 123, 4789][Int(rng.next() % 3)]
                    proto = 17; service = "UDP/\(port)"
                    l4 = inbound ? FrameBuilder.ports(clientPort, port, payload: size) : FrameBuilder.ports(port, clientPort, payload: size)
                    if !client.isIPv6 && kind % 9 == 0 { firstFragment = true }
                case 70..<75:
                    proto = 132; service = "SCTP/2905"
                    l4 = inbound ? FrameBuilder.ports(clientPort, 2905, headerLength: 12, payload: size) : FrameBuilder.ports(2905, clientPort, headerLength: 12, payload: size)
                case 75..<85:
                    proto = client.isIPv6 ? 58 : 1
                    service = client.isIPv6 ? "ICMPv6" : "ICMP"
                    l4 = FrameBuilder.icmpEcho(payload: size % 200)
                case 85..<90:
                    proto = 47; service = "GRE"
                    l4 = [0, 0, 0x08, 0] + [UInt8](repeating: 0, count: size)
                case 90..<95:
                    // A later fragment: no ports, the service is the protocol alone.
                    proto = 17; service = "UDP"; laterFragment = true
                    l4 = [UInt8](repeating: 0xEE, count: size)
                default:
                    proto = 89; service = "IP/89"
                    l4 = [UInt8](repeating: 0, count: size % 300)
                }
                var ip: [UInt8]
                var extensionBytes = 0
                if client.isIPv6 {
                    var extensions: [(UInt8, [UInt8])] = []
                    if kind % 5 == 1 { extensions.append((0, FrameBuilder.optionsHeader())) }
                    if laterFragment { extensions.append((44, FrameBuilder.fragmentHeader(offset: 185, more: false))) }
                    ip = FrameBuilder.ipv6(src: src, dst: dst, proto: proto, payload: l4, extensions: extensions)
                    extensionBytes = extensions.reduce(0) { $0 + $1.1.count }
                } else {
                    let options: [UInt8] = kind % 6 == 2 ? [0x94, 0x04, 0, 0] : []  // router alert
                    ip = FrameBuilder.ipv4(
                        src: src, dst: dst, proto: proto, payload: l4, options: options,
                        moreFragments: firstFragment, fragmentOffset: laterFragment ? 185 : 0)
                }
                frame = FrameBuilder.ethernet(vlans: vlans, ip: ip)
                let transportOffset = frame.count - l4.count
                let hasPorts = [6, 17, 132].contains(proto) && !laterFragment
                if hasPorts {
                    needed = transportOffset + 4
                } else if extensionBytes > 0 {
                    // The protocol number sits in the last extension header's first bytes
                    // (its next-header byte and, for a fragment header, the offset).
                    needed = transportOffset - 8 + (laterFragment ? 4 : 2)
                } else {
                    needed = transportOffset
                }
                wire = max(60, frame.count)
                if frame.count < wire { frame += [UInt8](repeating: 0, count: wire - frame.count) }
                flow = FlowKey(client: client.description, direction: inbound ? "in" : "out", service: service)
            }
            emit(Frame(bytes: frame, timestamp: timestamp, wireLength: wire, flow: flow, isNonIP: isNonIP, bytesNeeded: needed))
        }
            return timing
    }

    /// The frames as a capture file image.
    public func pcap(snapLength: Int = 262_144, format: PcapWriter.Format = .pcapMicro) -> PcapWriter {
        var writer = PcapWriter(linkType: 1, snapLength: snapLength, format: format)
        for f in frames { writer.append(f.bytes, timestamp: f.timestamp, wireLength: f.wireLength) }
        return writer
    }
}

/// SplitMix64: a small, fast, deterministic generator for test data.
public struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A double in [0, 1).
    public mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
