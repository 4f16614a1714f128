import TrafficCore
import TrafficTestSupport
@testable import TrafficFlows

/// Decodes datagrams as a collector would and keeps what came out.
struct Decoded {
    var records: [FlowRecord] = []
    let table: ExporterTable

    init(table: ExporterTable = ExporterTable()) {
        self.table = table
    }

    mutating func netflow(_ datagram: [UInt8], from exporter: String = "192.0.2.1", at now: Int64 = 1_700_000_100_000_000_000) {
        let decoder = NetFlowDecoder(exporters: table)
        var out: [FlowRecord] = []
        datagram.withUnsafeBytes { decoder.decode($0, from: IPAddress(exporter)!, at: now) { out.append($0) } }
        records += out
    }

    mutating func sflow(_ datagram: [UInt8], from exporter: String = "192.0.2.1", at now: Int64 = 1_700_000_100_000_000_000) {
        let decoder = SFlowDecoder(exporters: table)
        var out: [FlowRecord] = []
        datagram.withUnsafeBytes { decoder.decode($0, from: IPAddress(exporter)!, at: now) { out.append($0) } }
        records += out
    }

    func health(_ exporter: String = "192.0.2.1") -> FlowExporterHealth? {
        table.health.first { $0.exporter == exporter }
    }

    func errors(_ exporter: String = "192.0.2.1") -> [String: UInt64] {
        (health(exporter)?.errors ?? [:]).filter { $0.value > 0 }
    }
}

func addr(_ text: String) -> IPAddress { IPAddress(text)! }

extension FlowRecord {
    /// (source, destination, protocol, source port, destination port) as text, for comparisons.
    var tuple: String {
        "\(packet.source) \(packet.destination) \(packet.ipProtocol) \(packet.sourcePort) \(packet.destinationPort)"
    }
}
