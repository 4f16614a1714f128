// synth-capture: writes a deterministic synthetic capture (and optionally its exact
// per-flow totals) for demos, benchmarks and checks, so nothing needs an outside file.
//
//   synth-capture OUT.pcap [--packets N] [--clients C] [--seconds S] [--seed X]
//                 [--snaplen L] [--format pcap|pcapng] [--truth OUT.json]
import Foundation
import TrafficTestSupport

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("synth-capture: \(message)\n".utf8))
    exit(2)
}

var arguments = Array(CommandLine.arguments.dropFirst())
guard let output = arguments.first, !output.hasPrefix("-") else {
    fail("usage: synth-capture OUT.pcap [--packets N] [--clients C] [--seconds S] [--seed X] [--snaplen L] [--format pcap|pcapng] [--truth OUT.json]")
}
arguments.removeFirst()
var packets = 100_000, clients = 2_000, seconds = 60.0, seed: UInt64 = 1, snapLength = 262_144
var format = PcapWriter.Format.pcapMicro
var truthPath: String?
while !arguments.isEmpty {
    let flag = arguments.removeFirst()
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
    default: fail("unknown option \(flag)")
    }
}
guard packets > 0, clients > 0, seconds > 0, snapLength >= 64 else { fail("values must be positive (snaplen at least 64)") }

do {
    let truth = try SyntheticTraffic.write(
        to: URL(fileURLWithPath: output), packets: packets, clients: clients, seconds: seconds, seed: seed,
        snapLength: snapLength, format: format)
    if let truthPath {
        let flows = truth.flows.sorted { ($0.key.client, $0.key.direction, $0.key.service) < ($1.key.client, $1.key.direction, $1.key.service) }
            .map { ["client": $0.key.client, "direction": $0.key.direction, "service": $0.key.service,
                    "packets": $0.value.packets, "bytes": $0.value.bytes] as [String: Any] }
        let object: [String: Any] = [
            "packets": truth.total.packets, "bytes": truth.total.bytes,
            "non_ip_packets": truth.nonIP.packets, "malformed_packets": truth.malformed.packets,
            "late_packets": truth.latePackets, "flows": flows,
        ]
        try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]).write(to: URL(fileURLWithPath: truthPath))
    }
} catch {
    fail("cannot write \(output): \(error.localizedDescription)")
}
print("wrote \(packets) packets to \(output) (local networks: \(SyntheticTraffic.localNetworks.joined(separator: " ")))")
