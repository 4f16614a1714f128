import Foundation
import TrafficCore

/// A deterministic synthetic capture with an exact oracle, written by the tests
/// themselves (the Swift counterpart of the project's gen_pcap.py), in one of two places
/// trafficmon is put (`Layout`): watching servers (local servers talk to a
/// Zipf-distributed pool of remote IPv4 and IPv6 clients) or watching an uplink (a
/// Zipf-distributed pool of local machines uses remote servers). Clients use ephemeral
/// ports (32768-60999) to reach TCP, UDP and SCTP services, and ICMP, ICMPv6 (requests to
/// the server, replies from it) and GRE; with VLAN and QinQ tags, IPv4 options, first and
/// later fragments, IPv6 extension headers, ARP, truncated frames and a few reordered
/// timestamps. The oracle follows from how each frame was built, not from trafficmon's
/// code: the client and server sides are the ones the frame was built between, except for
/// frames without ports (GRE, a later fragment, IP/89), whose server side is their
/// destination, as the attribution rule says.
///
/// ```swift
/// let traffic = SyntheticTraffic(packets: 20_000, seed: 7)
/// try traffic.pcap(snapLength: 64).write(to: url)
/// traffic.truth.flows[.init(client: "198.51.100.7", direction: "in", service: "TCP/443")]
/// traffic.truth.serverFlows[.init(client: "10.0.0.1", direction: "in", service: "TCP/443")]
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

    /// Where the capture is taken.
    public enum Layout: Sendable {
        /// Local servers (`localNetworks`), remote clients.
        case servers
        /// Local machines (`uplinkLocalNetworks`) using remote servers (web, DNS, NTP, ...).
        case uplink

        /// The `--local-net` values of the layout.
        public var localNetworks: [String] {
            self == .servers ? SyntheticTraffic.localNetworks : SyntheticTraffic.uplinkLocalNetworks
        }
    }

    public struct Truth: Sendable {
        /// Per (client, direction, service).
        public var flows: [FlowKey: Counts] = [:]
        /// Per (server, direction, service): the server's address in `FlowKey.client`.
        public var serverFlows: [FlowKey: Counts] = [:]
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
        /// The same frame per (server, direction, service).
        public var serverFlow: FlowKey?
        /// An ICMP reply's type byte sits at this offset: cut before it, the frame counts as
        /// a request (its destination the server side), under `cutFlows`.
        public var typeOffset = Int.max
        public var cutFlows: (client: FlowKey, server: FlowKey)?
        public var isNonIP = false
        /// Captured bytes attribution needs (through the ports, or the whole IP header chain).
        public var bytesNeeded = 0
    }

    /// The monitored servers: pass these as `--local-net`.
    public static let localNetworks = ["10.0.0.0/29", "2001:db8::1/128"]
    /// The office behind the uplink: pass these as `--local-net` for `Layout.uplink`.
    public static let uplinkLocalNetworks = ["192.168.1.0/24", "2001:db8:1::/64"]
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
        reorder: Bool = true, malformed: Bool = true, layout: Layout = .servers
    ) {
        var frames: [Frame] = []
        frames.reserveCapacity(packets)
        timing = Self.generate(
            packets: packets, clients: clients, seconds: seconds, seed: seed, start: start,
            windowLength: windowLength, reorder: reorder, malformed: malformed, layout: layout) { frames.append($0) }
        self.frames = frames
    }

    /// Writes a capture of `packets` frames straight to `url` without keeping them in memory
    /// (for captures of millions of packets) and returns the oracle for `snapLength`.
    public static func write(
        to url: URL, packets: Int, clients: Int = 500, seconds: Double = 30, seed: UInt64 = 1,
        snapLength: Int = 262_144, format: PcapWriter.Format = .pcapMicro, reorder: Bool = true, malformed: Bool = true,
        layout: Layout = .servers
    ) throws -> Truth {
        FileManager.default.createFile(atPath: url.path, contents: nil)
        let handle = try FileHandle(forWritingTo: url)
        defer { try? handle.close() }
        var writer = PcapWriter(linkType: 1, snapLength: snapLength, format: format)
        var truth = Truth()
        var writeError: (any Error)?
        let timing = generate(
            packets: packets, clients: clients, seconds: seconds, seed: seed, start: 1_700_000_000 * 1_000_000_000,
            windowLength: 5_000_000_000, reorder: reorder, malformed: malformed, layout: layout
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
        } else if var flow = f.flow, f.bytesNeeded <= min(snapLength, f.bytes.count) {
            var serverFlow = f.serverFlow
            if let cut = f.cutFlows, min(snapLength, f.bytes.count) <= f.typeOffset {
                flow = cut.client
                serverFlow = cut.server
            }
            t.flows[flow, default: .zero].add(bytes: UInt64(f.wireLength))
            if let serverFlow { t.serverFlows[serverFlow, default: .zero].add(bytes: UInt64(f.wireLength)) }
        } else {
            t.malformed.add(bytes: UInt64(f.wireLength))
        }
    }

    /// The generator: calls `emit` for every frame in order and returns the timing oracle
    /// (late packets, window starts).
    static func generate(
        packets: Int, clients: Int, seconds: Double, seed: UInt64, start: Int64, windowLength: Int64,
        reorder: Bool, malformed: Bool, layout: Layout, emit: (Frame) -> Void
    ) -> Truth {
        var timing = Truth()
        var rng = SplitMix64(seed: seed)
        var pool: [IPAddress] = []
        // Servers: the local ones, or a pool of remote ones for an uplink.
        var servers4 = Self.servers4
        var servers6 = [Self.server6]
        switch layout {
        case .servers:
            for i in 0..<max(1, clients) {
                if i % 7 == 6 {
                    pool.append(IPAddress(ipv6High: 0x2001_0db8_1000_0000 | (rng.next() & 0xFFFF), low: rng.next() | 1))
                } else {
                    let bases: [UInt32] = [0xC633_6400, 0xCB00_7100, 0x6440_0000, 0x0B00_0000]
                    pool.append(IPAddress(ipv4: bases[Int(rng.next() % 4)] | UInt32(truncatingIfNeeded: rng.next() & 0xFFFF) | 1))
                }
            }
        case .uplink:
            // Up to 254 IPv4 machines in 192.168.1.0/24, IPv6 ones in 2001:db8:1::/64.
            for i in 0..<max(1, clients) {
                if i % 7 == 6 || i >= 254 {
                    pool.append(IPAddress(ipv6High: 0x2001_0db8_0001_0000, low: rng.next() | 1))
                } else {
                    pool.append(IPAddress(ipv4: 0xC0A8_0100 | UInt32(i + 1)))
                }
            }
            let bases: [UInt32] = [0x8EFA_0000, 0x9765_0000, 0x6810_0000, 0x0808_0000]
            servers4 = (0..<max(4, clients / 4)).map { _ in
                IPAddress(ipv4: bases[Int(rng.next() % 4)] | UInt32(truncatingIfNeeded: rng.next() & 0xFFFF) | 1)
            }
            servers6 = (0..<max(2, clients / 16)).map { _ in IPAddress(ipv6High: 0x2A00_1450_4001_0800, low: rng.next() | 1) }
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
            var serverFlow: FlowKey?
            var typeOffset = Int.max
            var cutFlows: (client: FlowKey, server: FlowKey)?
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
                let towardsServer = rng.unit() < 0.45
                let server = client.isIPv6 ? servers6[Int(rng.next() % UInt64(servers6.count))] : servers4[Int(rng.next() % UInt64(servers4.count))]
                let (src, dst) = towardsServer ? (client, server) : (server, client)
                // Exactly one side is local: the direction says whether the frame goes to it.
                let inbound = (layout == .servers) == towardsServer
                let kind = Int(rng.next() % 100)
                let size = 40 + Int(rng.next() % 1400)
                let clientPort = UInt16(32768 + rng.next() % 28232)
                var l4: [UInt8]
                var proto: UInt8
                var service: String
                var laterFragment = false
                var firstFragment = false
                switch kind {
                case 0..<45:
                    let port: UInt16 = [443, 80, 22, 8000][Int(rng.next() % 4)]
                    proto = 6; service = "TCP/\(port)"
                    l4 = towardsServer ? FrameBuilder.ports(clientPort, port, headerLength: 20, payload: size) : FrameBuilder.ports(port, clientPort, headerLength: 20, payload: size)
                case 45..<70:
                    let port: UInt16 = [53, 123, 4789][Int(rng.next() % 3)]
                    proto = 17; service = "UDP/\(port)"
                    l4 = towardsServer ? FrameBuilder.ports(clientPort, port, payload: size) : FrameBuilder.ports(port, clientPort, payload: size)
                    if !client.isIPv6 && kind % 9 == 0 { firstFragment = true }
                case 70..<75:
                    proto = 132; service = "SCTP/2905"
                    l4 = towardsServer ? FrameBuilder.ports(clientPort, 2905, headerLength: 12, payload: size) : FrameBuilder.ports(2905, clientPort, headerLength: 12, payload: size)
                case 75..<85:
                    proto = client.isIPv6 ? 58 : 1
                    service = client.isIPv6 ? "ICMPv6" : "ICMP"
                    // A request to the server, a reply from it.
                    let type: UInt8 = client.isIPv6 ? (towardsServer ? 128 : 129) : (towardsServer ? 8 : 0)
                    l4 = FrameBuilder.icmpEcho(payload: size % 200, type: type)
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
                // Without ports (GRE, IP/89, a later fragment) the destination is the server side.
                let hasServerSide = hasPorts || proto == 1 || proto == 58
                let (clientSide, serverSide) = hasServerSide ? (client, server) : (src, dst)
                let direction = inbound ? "in" : "out"
                flow = FlowKey(client: clientSide.description, direction: direction, service: service)
                serverFlow = FlowKey(client: serverSide.description, direction: direction, service: service)
                if (proto == 1 || proto == 58) && !towardsServer {
                    typeOffset = transportOffset
                    cutFlows = (FlowKey(client: src.description, direction: direction, service: service),
                                FlowKey(client: dst.description, direction: direction, service: service))
                }
            }
            emit(Frame(
                bytes: frame, timestamp: timestamp, wireLength: wire, flow: flow, serverFlow: serverFlow,
                typeOffset: typeOffset, cutFlows: cutFlows, isNonIP: isNonIP, bytesNeeded: needed))
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
