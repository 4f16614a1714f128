import Foundation
import TrafficFlows

/// The flow inputs' families, rendered at each scrape from the collectors' published
/// figures: per collector (`source`: `netflow`, `sflow`; `listen`: its address, so two
/// inputs of one kind stay apart) its kernel receive errors and
/// buffer, per exporter (its address, or `other` past `--max-flow-exporters`) datagrams,
/// records, records left out by `--flow-direction`, decode errors by reason (a reason's
/// series appears once it counts), sequence gaps, data sets waiting for a template,
/// templates held, the sampling rate and when it was last heard from.
///
/// ```swift
/// TrafficMetrics.appendFlows(collectors.map(\.health), to: &text)
/// ```
extension TrafficMetrics {
    static func appendFlows(_ collectors: [FlowCollectorHealth], to out: inout [UInt8]) {
        guard !collectors.isEmpty else { return }
        var text = ""
        func family(_ name: String, _ type: String, _ help: String, _ samples: (inout String) -> Void) {
            text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            samples(&text)
        }
        func labels(_ c: FlowCollectorHealth, _ e: FlowExporterHealth) -> String {
            "source=\"\(escape(c.source))\",listen=\"\(escape(c.listen))\",exporter=\"\(escape(e.exporter))\""
        }
        func perExporter(_ name: String, _ type: String, _ help: String, _ value: (FlowExporterHealth) -> String) {
            family(name, type, help) { text in
                for c in collectors {
                    for e in c.exporters { text += "\(name){\(labels(c, e))} \(value(e))\n" }
                }
            }
        }
        family("trafficmon_flow_receive_errors_total", "counter",
               "Flow datagrams the kernel dropped because the collector's receive buffer was full (SO_RXQ_OVFL).") { text in
            for c in collectors { text += "trafficmon_flow_receive_errors_total{source=\"\(escape(c.source))\",listen=\"\(escape(c.listen))\"} \(c.receiveErrors)\n" }
        }
        family("trafficmon_flow_receive_buffer_bytes", "gauge", "The receive buffer the kernel granted the flow collector's socket.") { text in
            for c in collectors { text += "trafficmon_flow_receive_buffer_bytes{source=\"\(escape(c.source))\",listen=\"\(escape(c.listen))\"} \(c.receiveBuffer)\n" }
        }
        perExporter("trafficmon_flow_datagrams_total", "counter", "Flow datagrams received, by exporter.") { "\($0.datagrams)" }
        perExporter("trafficmon_flow_records_total", "counter", "Flow records (and sFlow packet samples) counted into windows, by exporter.") { "\($0.records)" }
        perExporter("trafficmon_flow_filtered_records_total", "counter", "Flow records left out by --flow-direction, by exporter.") { "\($0.filtered)" }
        family("trafficmon_flow_decode_errors_total", "counter", "Flow datagrams (or the rest of one) dropped as undecodable, by exporter and reason.") { text in
            for c in collectors {
                for e in c.exporters {
                    for (reason, count) in e.errors.sorted(by: { $0.key < $1.key }) where count > 0 {
                        text += "trafficmon_flow_decode_errors_total{\(labels(c, e)),reason=\"\(escape(reason))\"} \(count)\n"
                    }
                }
            }
        }
        perExporter("trafficmon_flow_sequence_gaps_total", "counter", "Gaps in an exporter's sequence numbers: datagrams or records lost on the way.") { "\($0.sequenceGaps)" }
        perExporter("trafficmon_flow_missing_template_total", "counter", "NetFlow v9/IPFIX data sets that arrived before their template: dropped, not guessed.") { "\($0.missingTemplate)" }
        perExporter("trafficmon_flow_templates", "gauge", "NetFlow v9/IPFIX templates held for an exporter.") { "\($0.templates)" }
        perExporter("trafficmon_flow_sampling_rate", "gauge", "The sampling rate of an exporter's last record (1: unsampled).") { "\($0.samplingRate)" }
        perExporter("trafficmon_flow_exporter_last_seen_timestamp_seconds", "gauge", "When an exporter's last datagram arrived, Unix seconds.") {
            String(format: "%.3f", Double($0.lastSeen) / 1e9)
        }
        out += Array(text.utf8)
    }
}
