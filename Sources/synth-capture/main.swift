// synth-capture: writes a deterministic synthetic capture (and optionally its exact
// per-flow totals) for demos, benchmarks and checks, so nothing needs an outside file.
//
//   synth-capture OUT.pcap [--packets N] [--clients C] [--seconds S] [--seed X]
//                 [--snaplen L] [--format pcap|pcapng] [--truth OUT.json]
//                 [--frame-size B] [--spoofed] [--uplink] [--protocols]
//
// The default is the mixed traffic of SyntheticTraffic (the tests' oracle): local servers
// and remote clients, or with --uplink local machines using remote servers. With
// --frame-size B every frame is a B-byte UDP datagram to 10.0.0.1 (for line-rate and
// small-packet tests); with --spoofed every frame also comes from a new source address
// (a cardinality attack: N packets, N distinct clients). With --protocols the frames are
// SyntheticProtocols's instead: TCP handshakes, SYN floods, RST storms, cut TCP headers, DNS
// of every counted type and code, malformed DNS and DNS over TCP, in every size bucket; its
// truth then holds the record's "tcp", "sizes" and "dns" figures (local networks:
// 10.1.0.0/16 and 2001:db8:53::/48).
import Foundation
import TrafficCore
import TrafficTestSupport

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("synth-capture: \(message)\n".utf8))
    exit(2)
}

var arguments = Array(CommandLine.arguments.dropFirst())
guard let output = arguments.first, !output.hasPrefix("-") else {
    fail("usage: synth-capture OUT.pcap [--packets N] [--clients C] [--seconds S] [--seed X] [--snaplen L] [--format pcap|pcapng] [--truth OUT.json] [--frame-size B] [--spoofed] [--uplink] [--protocols]")
}
arguments.removeFirst()
var packets = 100_000, clients = 2_000, seconds = 60.0, seed: UInt64 = 1, snapLength = 262_144
var format = PcapWriter.Format.pcapMicro
var truthPath: String?
var frameSize: Int?
var spoofed = false
var protocols = false
var layout = SyntheticTraffic.Layout.servers
while !arguments.isEmpty {
    let flag = arguments.removeFirst()
    if flag == "--spoofed" {
        spoofed = true
        continue
    }
    if flag == "--uplink" {
        layout = .uplink
        continue
    }
    if flag == "--protocols" {
        protocols = true
        continue
    }
    guard let value = arguments.first else { fail("\(flag) needs a value") }
    arguments.removeFirst()
    func number<T: LosslessStringConvertible>(_ type: T.Type) -> T {
        guard let parsed = T(value) else { fail("\(flag) must be a number, not '\(value)'") }
        return parsed
    }
    switch flag {
    case "--packets": packets = number(Int.self)
    case "--clients": clients = number(Int.self)
    case "--seconds": seconds = number(Double.self)
    case "--seed": seed = number(UInt64.self)
    case "--snaplen": snapLength = number(Int.self)
    case "--format": format = value == "pcapng" ? .pcapng : .pcapMicro
    case "--truth": truthPath = value
    case "--frame-size": frameSize = number(Int.self)
    default: fail("unknown option \(flag)")
    }
}
guard packets > 0, clients > 0, seconds > 0, snapLength >= 64 else { fail("values must be positive (snaplen at least 64)") }

/// Uniform frames: B-byte UDP datagrams from `clients` sources (or a new source each, spoofed).
@MainActor func writeUniform(size: Int) throws {
    FileManager.default.createFile(atPath: output, contents: nil)
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
    defer { try? handle.close() }
    var writer = PcapWriter(linkType: 1, snapLength: snapLength, format: format)
    let server = IPAddress(ipv4: 0x0A00_0001)
    let step = Int64(seconds * 1e9) / Int64(packets)
    let start: Int64 = 1_700_000_000 * 1_000_000_000
    let udpPayload = max(0, size - 14 - 20 - 8)
    var rng = SplitMix64(seed: seed)
    for n in 0..<packets {
        let index = spoofed ? UInt32(n) : UInt32(truncatingIfNeeded: rng.next() % UInt64(clients))
        // Sources from 11.0.0.0 up, one per index (spoofed: 16.7 million before wrapping).
        let client = IPAddress(ipv4: 0x0B00_0000 &+ index)
        let frame = FrameBuilder.ethernet(ip: FrameBuilder.ipv4(
            src: client, dst: server, proto: 17,
            payload: FrameBuilder.ports(UInt16(1024 + n % 60000), 53, payload: udpPayload)))
        writer.append(frame, timestamp: start + Int64(n) * step, wireLength: max(60, frame.count))
        if writer.data.count > 1 << 22 { try handle.write(contentsOf: writer.takeData()) }
    }
    try handle.write(contentsOf: writer.takeData())
}

if let frameSize {
    guard frameSize >= 60, frameSize <= 9000 else { fail("--frame-size must be from 60 to 9000") }
    do {
        try writeUniform(size: frameSize)
    } catch {
        fail("cannot write \(output): \(error.localizedDescription)")
    }
    print("wrote \(packets) frames of \(frameSize) bytes to \(output)\(spoofed ? " from \(packets) distinct sources" : "")")
    exit(0)
}

if protocols {
    do {
        let spacing = max(1, Int64(seconds * 1e9) / Int64(packets))
        let truth = try SyntheticProtocols.write(
            to: URL(fileURLWithPath: output), packets: packets, seed: seed, spacing: spacing, snapLength: snapLength, format: format)
        if let truthPath {
            let object: [String: Any] = [
                "packets": truth.packets, "bytes": truth.bytes, "malformed_packets": truth.malformedFrames,
                "tcp": ["in": truth.tcpIn, "out": truth.tcpOut],
                "sizes": ["in": truth.sizesIn, "out": truth.sizesOut],
                "dns": ["queries": truth.queries, "responses": truth.responses, "malformed": truth.dnsMalformed, "cut": truth.dnsCut],
                "local_networks": SyntheticProtocols.localNetworks,
            ]
            try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]).write(to: URL(fileURLWithPath: truthPath))
        }
    } catch {
        fail("cannot write \(output): \(error.localizedDescription)")
    }
    print("wrote \(packets) packets to \(output) (local networks: \(SyntheticProtocols.localNetworks.joined(separator: " ")))")
    exit(0)
}

do {
    let truth = try SyntheticTraffic.write(
        to: URL(fileURLWithPath: output), packets: packets, clients: clients, seconds: seconds, seed: seed,
        snapLength: snapLength, format: format, layout: layout)
    if let truthPath {
        func rows(_ flows: [SyntheticTraffic.FlowKey: Counts], party: String) -> [[String: Any]] {
            flows.sorted { ($0.key.client, $0.key.direction, $0.key.service) < ($1.key.client, $1.key.direction, $1.key.service) }
                .map { [party: $0.key.client, "direction": $0.key.direction, "service": $0.key.service,
                        "packets": $0.value.packets, "bytes": $0.value.bytes] as [String: Any] }
        }
        let object: [String: Any] = [
            "packets": truth.total.packets, "bytes": truth.total.bytes,
            "non_ip_packets": truth.nonIP.packets, "malformed_packets": truth.malformed.packets,
            "late_packets": truth.latePackets, "flows": rows(truth.flows, party: "client"),
            "server_flows": rows(truth.serverFlows, party: "server"),
            "local_networks": layout.localNetworks,
        ]
        try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]).write(to: URL(fileURLWithPath: truthPath))
    }
} catch {
    fail("cannot write \(output): \(error.localizedDescription)")
}
print("wrote \(packets) packets to \(output) (local networks: \(layout.localNetworks.joined(separator: " ")))")
