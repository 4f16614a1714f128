import Foundation
import TrafficCore

/// A plain capture for flow exporters to read (softflowd `-r`, pmacctd's `pcap_savefile`):
/// Ethernet without VLAN tags, whole IPv4 and IPv6 packets (no fragments, no extension
/// headers), TCP, UDP, ICMP and ICMPv6 echo requests and replies between a
/// Zipf-like pool of remote clients and local servers (10.0.0.1-4 and 2001:db8::1), short
/// frames padded to Ethernet's 60 bytes. Everything a flow exporter keys flows on is in
/// every frame, so the exporter and trafficmon's packet path see the same packets; the
/// frames are cut at `snapLength` on disk, their wire length kept.
///
/// ```swift
/// try FlowCapture.write(to: url, packets: 100_000, start: now - 40 * second, seconds: 30)
/// ```
public enum FlowCapture {
    public static let localNetworks = ["10.0.0.0/29", "2001:db8::1/128"]
    static let servers4: [IPAddress] = (1...4).map { IPAddress(ipv4: 0x0A00_0000 | UInt32($0)) }
    static let server6 = IPAddress(ipv6High: 0x2001_0DB8_0000_0000, low: 1)

    /// (protocol, server port, request size, response size); port 0: ICMP echo.
    static let services: [(proto: UInt8, port: UInt16, request: Int, response: Int)] = [
        (6, 443, 120, 1400), (6, 443, 90, 900), (6, 80, 300, 1200), (6, 22, 90, 90), (17, 53, 60, 180), (17, 123, 48, 48),
        (1, 0, 56, 56),
    ]

    /// Writes `packets` frames spread evenly over `seconds` from `start` (nanoseconds); with
    /// `padded` false short frames are left unpadded, so every frame is its IP packet plus
    /// the 14-byte Ethernet header (for exporters that count the IP length).
    public static func write(
        to url: URL, packets: Int, clients: Int = 2000, start: Int64, seconds: Double = 30, seed: UInt64 = 1, snapLength: Int = 128,
        padded: Bool = true
    ) throws {
        FileManager.default.createFile(atPath: url.path, contents: nil)
        let handle = try FileHandle(forWritingTo: url)
        defer { try? handle.close() }
        var writer = PcapWriter(linkType: 1, snapLength: snapLength)
        var rng = SplitMix64(seed: seed)
        let pool: [IPAddress] = (0..<max(1, clients)).map { i in
            if i % 5 == 4 { return IPAddress(ipv6High: 0x2001_0DB8_1000_0000 | (rng.next() & 0xFFFF), low: rng.next() | 1) }
            let bases: [UInt32] = [0xC633_6400, 0xCB00_7100, 0x6440_0000, 0x0B00_0000]
            return IPAddress(ipv4: bases[Int(rng.next() % 4)] | UInt32(truncatingIfNeeded: rng.next() & 0xFFFF) | 1)
        }
        let step = seconds * 1e9 / Double(max(1, packets))
        for n in 0..<packets {
            // A few clients send most: the square of a uniform draw leans towards the first.
            let u = rng.unit()
            let client = pool[min(pool.count - 1, Int(u * u * Double(pool.count)))]
            let service = services[Int(rng.next() % UInt64(services.count))]
            let server = client.isIPv6 ? server6 : servers4[Int(rng.next() % 4)]
            let request = rng.next() % 100 < 45
            let size = max(0, (request ? service.request : service.response) + Int(rng.next() % 81) - 40)
            let clientPort = UInt16(32768 + Int((client.low &* 7 &+ UInt64(service.port)) % 28_000))
            let (source, destination) = request ? (client, server) : (server, client)
            var transport: [UInt8]
            var proto = service.proto
            switch service.proto {
            case 6:
                transport = FrameBuilder.ports(request ? clientPort : service.port, request ? service.port : clientPort, headerLength: 20, payload: size)
                transport[12] = 5 << 4
                transport[13] = 0x18
            case 17:
                transport = FrameBuilder.ports(request ? clientPort : service.port, request ? service.port : clientPort, headerLength: 8, payload: size)
                let length = UInt16(transport.count)
                transport[4] = UInt8(length >> 8)
                transport[5] = UInt8(length & 0xFF)
            default:
                if client.isIPv6 {
                    proto = IPProtocol.icmpv6
                    transport = FrameBuilder.icmpEcho(payload: size, type: request ? 128 : 129)
                } else {
                    transport = FrameBuilder.icmpEcho(payload: size, type: request ? 8 : 0)
                }
            }
            let ip = client.isIPv6
                ? FrameBuilder.ipv6(src: source, dst: destination, proto: proto, payload: transport)
                : FrameBuilder.ipv4(src: source, dst: destination, proto: proto, payload: transport)
            var frame = FrameBuilder.ethernet(ip: ip)
            if padded && frame.count < 60 { frame += [UInt8](repeating: 0, count: 60 - frame.count) }
            writer.append(frame, timestamp: start + Int64(Double(n) * step))
            if writer.data.count > 1 << 22 { try handle.write(contentsOf: writer.takeData()) }
        }
        try handle.write(contentsOf: writer.takeData())
    }
}
