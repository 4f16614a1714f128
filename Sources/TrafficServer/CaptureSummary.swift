import Foundation
import TrafficCapture
import TrafficCore
import TrafficFlows

/// Running totals over the windows closed since start (what the live page's capture
/// health panel shows): kept by `TrafficMetrics` beside the counters of the same names.
///
/// ```swift
/// let dropped = state.metrics.totals.kernelDropped
/// ```
public struct CaptureTotals: Sendable, Equatable {
    public var windowsClosed: UInt64 = 0
    public var received: UInt64 = 0
    public var kernelDropped: UInt64 = 0
    public var interfaceDropped: UInt64 = 0
    public var malformed: UInt64 = 0
    public var nonIP: UInt64 = 0
    public var latePackets: UInt64 = 0
    /// Per live interface, in the order first seen: received and dropped frames.
    public var interfaces: [InterfaceCounts] = []

    public init() {}

    mutating func add(_ record: WindowRecord) {
        for input in record.capture.interfaces {
            if let i = interfaces.firstIndex(where: { $0.name == input.name }) {
                interfaces[i].received &+= input.received
                interfaces[i].kernelDropped &+= input.kernelDropped
                interfaces[i].interfaceDropped &+= input.interfaceDropped
            } else {
                interfaces.append(input)
            }
        }
        windowsClosed &+= 1
        received &+= record.capture.received
        kernelDropped &+= record.capture.kernelDropped
        interfaceDropped &+= record.capture.interfaceDropped
        malformed &+= record.malformed.packets
        nonIP &+= record.nonIP.packets
        latePackets &+= record.latePackets
    }
}

/// `GET /stats/capture`: what is captured and how healthy it is, as JSON.
///
/// ```swift
/// router.get("/stats/capture") { _, _ in .json(CaptureSummary(state: state, now: now).jsonBytes()) }
/// ```
/// answers
/// ```json
/// {"version":"1.0.0","status":"capturing","source":{"kind":"interface","name":"eth0"},
///  "started":"2026-11-25T10:00:00Z","uptime_seconds":3600.5,"window_seconds":5,
///  "windows_closed":720,"received":1200000,"dropped":{"kernel":0,"interface":0},
///  "malformed":3,"non_ip":120,"late_packets":0,"top":50,"history_size":720,
///  "local_networks":["192.168.1.0/24","2001:db8:1::/64"],"service_ports":["UDP/50000"]}
/// ```
/// `local_networks` are the networks whose parties are local (`--local-net`, plus a live
/// interface's own addresses); empty when none is set, which the live page reads as "no
/// side of the traffic is mine" (top clients and servers rather than local machines and
/// remote servers). `service_ports` are the `--service-port` values. A live capture also
/// lists each interface (`"interfaces":[{"name":"eth0","received":...,"dropped":{...}}]`,
/// `source.name` naming them all, comma-separated). Flow inputs are listed under `flows`,
/// each with its listen address, receive buffer and errors, and its exporters' figures
/// (`datagrams`, `records`, `errors` by reason, `sequence_gaps`, `missing_template`,
/// `templates`, `sampling_rate`, `last_seen_ns`); `source.kind` is `flows` when only flow
/// inputs run.
struct CaptureSummary: Encodable {
    struct Interface: Encodable {
        var name: String
        var received: UInt64
        var dropped: Dropped
    }

    struct Source: Encodable {
        var kind: String
        var name: String
    }

    struct Dropped: Encodable {
        var kernel: UInt64
        var interface: UInt64
    }

    var version: String
    var status: String
    var error: String?
    var source: Source
    var started: String
    var uptimeSeconds: Double
    var windowSeconds: Double
    var windowsClosed: UInt64
    var received: UInt64
    var dropped: Dropped
    var malformed: UInt64
    var nonIP: UInt64
    var latePackets: UInt64
    var top: Int
    var historySize: Int
    var localNetworks: [String]
    var servicePorts: [String]
    var interfaces: [Interface]
    var flows: [FlowCollectorHealth]

    enum CodingKeys: String, CodingKey {
        case version, status, error, source, started, received, dropped, malformed, top
        case uptimeSeconds = "uptime_seconds", windowSeconds = "window_seconds", windowsClosed = "windows_closed"
        case nonIP = "non_ip", latePackets = "late_packets", historySize = "history_size"
        case localNetworks = "local_networks", servicePorts = "service_ports", interfaces, flows
    }

    init(state: TrafficState, now: Int64) {
        let status = state.engine.status
        let totals = state.metrics.totals
        let kind: String
        switch state.engine.origin {
        case .file: kind = "file"
        case .interface: kind = "interface"
        case nil: kind = "flows"
        }
        version = state.configuration.version
        self.status = status.label
        error = status.failure
        let names = state.engine.interfaces
        let flowNames = state.engine.counting.map(\.sourceName)
        source = Source(
            kind: kind, name: names.isEmpty ? state.engine.origin?.name ?? flowNames.joined(separator: ",") : names.joined(separator: ","))
        started = Timestamp.rfc3339(state.startedAt / 1_000_000 * 1_000_000)
        uptimeSeconds = (Double(max(0, now - state.startedAt)) / 1e6).rounded() / 1e3
        windowSeconds = Double(state.windowLength) / 1e9
        windowsClosed = totals.windowsClosed
        received = totals.received
        dropped = Dropped(kernel: totals.kernelDropped, interface: totals.interfaceDropped)
        malformed = totals.malformed
        nonIP = totals.nonIP
        latePackets = totals.latePackets
        top = state.configuration.top
        historySize = state.configuration.historySize
        localNetworks = state.engine.configuration.localNetworks.prefixes.map(\.description)
        servicePorts = state.engine.configuration.servicePorts.labels
        interfaces = names.map { name in
            let counts = totals.interfaces.first { $0.name == name } ?? InterfaceCounts(name: name)
            return Interface(
                name: name, received: counts.received,
                dropped: Dropped(kernel: counts.kernelDropped, interface: counts.interfaceDropped))
        }
        flows = state.collectors.map(\.health)
    }

    func jsonBytes() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)).map { [UInt8]($0) } ?? Array("{}".utf8)
    }
}
