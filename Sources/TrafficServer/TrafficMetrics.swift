import Foundation
import Prometheus
import TrafficCore

/// The Prometheus side of trafficmon: cumulative counters and last-window gauges,
/// updated once per closed window, rendered by swift-prometheus.
///
/// A window's update and a scrape never interleave (one lock around both), so a
/// scrape always sees one whole window: `sum by (direction) (trafficmon_window_client_bytes)`
/// equals `trafficmon_window_bytes` exactly.
///
/// ```swift
/// let metrics = TrafficMetrics(top: 50, version: "1.0.0")
/// metrics.record(windowRecord)
/// let text = metrics.exposition(format: .prometheus)
/// ```
public final class TrafficMetrics: Sendable {
    /// How a scrape wants the text.
    public enum Format: Sendable {
        /// Prometheus text format 0.0.4.
        case prometheus
        /// OpenMetrics 1.0.0 text.
        case openMetrics

        public var contentType: String {
            switch self {
            case .prometheus: "text/plain; version=0.0.4; charset=utf-8"
            case .openMetrics: "application/openmetrics-text; version=1.0.0; charset=utf-8"
            }
        }
    }

    let registry = PrometheusCollectorRegistry()
    let top: Int
    private let lock = LockedValue<State>(State())
    private let processMetrics = ProcessMetrics()

    struct State {
        /// The counters' figures as JSON wants them (`/stats/capture`): kept beside the
        /// Prometheus counters, which do not hand their values back.
        var totals = CaptureTotals()
        /// The per-client and per-service gauges of the last window, rendered once when the
        /// window closes: a pure function of that record, so series of clients that left the
        /// top simply are not there, at no cost per series in the registry.
        var windowText: [UInt8] = []
    }

    struct SeriesKey: Hashable {
        var name: String
        var direction: Direction
    }

    // Counters.
    let packets: [Direction: Counter]
    let bytes: [Direction: Counter]
    let nonIPPackets: Counter
    let nonIPBytes: Counter
    let malformedPackets: [MalformedReason: Counter]
    let malformedBytes: Counter
    let latePackets: Counter
    let receivedPackets: Counter
    let droppedKernel: Counter
    let droppedInterface: Counter
    let windowsClosed: Counter
    let injectedPackets: Counter
    /// The service counters, labelled for the busiest services (`ServiceLabels`); updated under `lock`.
    let serviceCounters: ServiceCounters
    // Gauges of the last closed window.
    let windowPackets: [Direction: Gauge]
    let windowBytes: [Direction: Gauge]
    let windowClients: Gauge
    let windowStart: Gauge
    let windowDuration: Gauge
    let windowLate: Gauge
    let up: Gauge

    public init(top: Int, version: String) {
        self.top = max(1, top)
        let r = registry
        func counter(_ d: MetricNameDescriptor, _ labels: [(String, String)] = []) -> Counter {
            labels.isEmpty ? r.makeCounter(descriptor: d) : r.makeCounter(descriptor: d, labels: labels)
        }
        func gauge(_ d: MetricNameDescriptor, _ labels: [(String, String)] = []) -> Gauge {
            labels.isEmpty ? r.makeGauge(descriptor: d) : r.makeGauge(descriptor: d, labels: labels)
        }
        var p: [Direction: Counter] = [:], b: [Direction: Counter] = [:]
        var wp: [Direction: Gauge] = [:], wb: [Direction: Gauge] = [:]
        for d in Direction.allCases {
            p[d] = counter(Names.packets, [("direction", d.label)])
            b[d] = counter(Names.bytes, [("direction", d.label)])
            wp[d] = gauge(Names.windowPackets, [("direction", d.label)])
            wb[d] = gauge(Names.windowBytes, [("direction", d.label)])
        }
        packets = p
        bytes = b
        windowPackets = wp
        windowBytes = wb
        nonIPPackets = counter(Names.nonIPPackets)
        nonIPBytes = counter(Names.nonIPBytes)
        var m: [MalformedReason: Counter] = [:]
        for reason in MalformedReason.allCases { m[reason] = counter(Names.malformedPackets, [("reason", reason.label)]) }
        malformedPackets = m
        malformedBytes = counter(Names.malformedBytes)
        latePackets = counter(Names.latePackets)
        receivedPackets = counter(Names.receivedPackets)
        droppedKernel = counter(Names.droppedPackets, [("where", "kernel")])
        droppedInterface = counter(Names.droppedPackets, [("where", "interface")])
        windowsClosed = counter(Names.windowsClosed)
        injectedPackets = counter(Names.injectedPackets)
        serviceCounters = ServiceCounters(registry: r, capacity: self.top)
        windowClients = gauge(Names.windowClients)
        windowStart = gauge(Names.windowStart)
        windowDuration = gauge(Names.windowDuration)
        windowLate = gauge(Names.windowLatePackets)
        up = gauge(Names.up)
        up.set(1.0)
        gauge(Names.buildInfo, [("version", version)]).set(1.0)
    }

    /// Counts an injected packet (`/debug/inject`).
    public func countInject() {
        injectedPackets.increment()
    }

    /// Adds a closed window to the counters and makes it the window the gauges describe.
    public func record(_ r: WindowRecord) {
        lock.withLock { state in
            for (d, c) in [(Direction.inbound, r.in), (.outbound, r.out)] {
                packets[d]?.increment(by: Int64(clamping: c.packets))
                bytes[d]?.increment(by: Int64(clamping: c.bytes))
                windowPackets[d]?.set(Double(c.packets))
                windowBytes[d]?.set(Double(c.bytes))
            }
            nonIPPackets.increment(by: Int64(clamping: r.nonIP.packets))
            nonIPBytes.increment(by: Int64(clamping: r.nonIP.bytes))
            for (label, count) in r.malformed.reasons {
                if let reason = MalformedReason(label: label) { malformedPackets[reason]?.increment(by: Int64(clamping: count)) }
            }
            malformedBytes.increment(by: Int64(clamping: r.malformed.bytes))
            latePackets.increment(by: Int64(clamping: r.latePackets))
            receivedPackets.increment(by: Int64(clamping: r.capture.received))
            droppedKernel.increment(by: Int64(clamping: r.capture.kernelDropped))
            droppedInterface.increment(by: Int64(clamping: r.capture.interfaceDropped))
            windowsClosed.increment()
            state.totals.add(r)
            windowClients.set(Double(UInt64(r.clients.count) &+ r.other.clients))
            windowStart.set(Double(r.start) / 1e9)
            windowDuration.set(Double(r.end - r.start) / 1e9)
            windowLate.set(Double(r.latePackets))

            // Clients: the listed ones plus "other"; series of clients that left the top go away.
            var clients: [SeriesKey: Counts] = [:]
            for c in r.clients.prefix(top) {
                clients[SeriesKey(name: c.ip.description, direction: .inbound), default: .zero] += c.in
                clients[SeriesKey(name: c.ip.description, direction: .outbound), default: .zero] += c.out
            }
            var otherIn = r.other.in, otherOut = r.other.out
            for c in r.clients.dropFirst(top) {
                otherIn += c.in
                otherOut += c.out
            }
            clients[SeriesKey(name: "other", direction: .inbound), default: .zero] += otherIn
            clients[SeriesKey(name: "other", direction: .outbound), default: .zero] += otherOut
            var text = ""
            Self.render(clients, labelName: "client", packets: Names.windowClientPackets, bytes: Names.windowClientBytes, into: &text)

            // Services of the window: the top ones plus "other".
            var services: [SeriesKey: Counts] = [:]
            var windowServiceCount = 0
            for s in r.services {
                let listed = s.service != .other && windowServiceCount < top
                if listed { windowServiceCount += 1 }
                services[SeriesKey(name: listed ? s.service.label : "other", direction: s.direction), default: .zero]
                    += Counts(packets: s.packets, bytes: s.bytes)
            }
            Self.render(services, labelName: "service", packets: Names.windowServicePackets, bytes: Names.windowServiceBytes, into: &text)
            state.windowText = Array(text.utf8)

            serviceCounters.record(r)
        }
    }

    /// Appends two gauge families (packets, bytes) for `values`, sorted by label.
    static func render(
        _ values: [SeriesKey: Counts], labelName: String, packets: MetricNameDescriptor, bytes: MetricNameDescriptor,
        into out: inout String
    ) {
        guard !values.isEmpty else { return }
        let keys = values.keys.sorted { ($0.name, $0.direction.rawValue) < ($1.name, $1.direction.rawValue) }
        for (descriptor, pick) in [(packets, { (c: Counts) in c.packets }), (bytes, { (c: Counts) in c.bytes })] {
            out += "# HELP \(descriptor.name) \(descriptor.helpText ?? "")\n# TYPE \(descriptor.name) gauge\n"
            for key in keys {
                out += "\(descriptor.name){\(labelName)=\"\(escape(key.name))\",direction=\"\(key.direction.label)\"} \(pick(values[key] ?? .zero))\n"
            }
        }
    }

    /// Label-value escaping of the text format: backslash, double quote, newline.
    static func escape(_ value: String) -> String {
        guard value.contains(where: { $0 == "\\" || $0 == "\"" || $0 == "\n" }) else { return value }
        return value.replacingOccurrences(of: "\\", with: "\\\\")
            .replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }

    /// The whole exposition: trafficmon's families, then the `process_*` family.
    public func exposition(format: Format) -> [UInt8] {
        var text = lock.withLock { state in registry.emitToBuffer() + state.windowText }
        processMetrics.append(to: &text)
        switch format {
        case .prometheus: return text
        case .openMetrics: return OpenMetrics.convert(text)
        }
    }

    /// How many series the exposition holds (for bounds checks and self-monitoring).
    /// Totals over the windows recorded since start: `metrics.totals.received`.
    public var totals: CaptureTotals { lock.withLock { $0.totals } }

    public func seriesCount() -> Int {
        let text = exposition(format: .prometheus)
        return text.split(separator: UInt8(ascii: "\n")).filter { $0.first != UInt8(ascii: "#") }.count
    }
}

/// Metric names, units and help texts in one place (swift-prometheus requires the same
/// help text every time a name is used).
enum Names {
    static func d(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    static var packets: MetricNameDescriptor { d("trafficmon_packets_total", "IP packets counted, by direction relative to the local side (in = towards it).") }
    static var bytes: MetricNameDescriptor { d("trafficmon_bytes_total", "IP wire bytes counted, by direction relative to the local side.") }
    static var servicePackets: MetricNameDescriptor { d("trafficmon_service_packets_total", "IP packets by service and direction; the --top busiest services have their own label (a port scan cannot take them), the rest are service=\"other\".") }
    static var serviceBytes: MetricNameDescriptor { d("trafficmon_service_bytes_total", "IP wire bytes by service and direction; the --top busiest services have their own label (a port scan cannot take them), the rest are service=\"other\".") }
    static var nonIPPackets: MetricNameDescriptor { d("trafficmon_non_ip_packets_total", "Frames that are not IP (ARP, LLDP, STP, ...).") }
    static var nonIPBytes: MetricNameDescriptor { d("trafficmon_non_ip_bytes_total", "Wire bytes of frames that are not IP.") }
    static var malformedPackets: MetricNameDescriptor { d("trafficmon_malformed_packets_total", "Frames that could not be decoded, by reason.") }
    static var malformedBytes: MetricNameDescriptor { d("trafficmon_malformed_bytes_total", "Wire bytes of frames that could not be decoded.") }
    static var latePackets: MetricNameDescriptor { d("trafficmon_late_packets_total", "Packets whose timestamp was older than the open window (counted in the open window).") }
    static var receivedPackets: MetricNameDescriptor { d("trafficmon_capture_received_packets_total", "Frames the capture delivered to trafficmon.") }
    static var droppedPackets: MetricNameDescriptor { d("trafficmon_capture_dropped_packets_total", "Frames lost before trafficmon saw them: where=kernel (capture buffer full) or where=interface (the NIC or driver).") }
    static var windowsClosed: MetricNameDescriptor { d("trafficmon_windows_closed_total", "Windows closed (including empty and partial ones).") }
    static var injectedPackets: MetricNameDescriptor { d("trafficmon_injected_packets_total", "Packets added through POST /debug/inject.") }
    static var windowPackets: MetricNameDescriptor { d("trafficmon_window_packets", "IP packets in the last closed window, by direction.") }
    static var windowBytes: MetricNameDescriptor { d("trafficmon_window_bytes", "IP wire bytes in the last closed window, by direction.") }
    static var windowClientPackets: MetricNameDescriptor { d("trafficmon_window_client_packets", "IP packets of each top client in the last closed window (client=\"other\" holds the rest).") }
    static var windowClientBytes: MetricNameDescriptor { d("trafficmon_window_client_bytes", "IP wire bytes of each top client in the last closed window (client=\"other\" holds the rest).") }
    static var windowServicePackets: MetricNameDescriptor { d("trafficmon_window_service_packets", "IP packets of each top service in the last closed window (service=\"other\" holds the rest).") }
    static var windowServiceBytes: MetricNameDescriptor { d("trafficmon_window_service_bytes", "IP wire bytes of each top service in the last closed window (service=\"other\" holds the rest).") }
    static var windowClients: MetricNameDescriptor { d("trafficmon_window_clients", "Distinct clients in the last closed window.") }
    static var windowStart: MetricNameDescriptor { d("trafficmon_window_start_timestamp_seconds", "Start of the last closed window, Unix seconds.") }
    static var windowDuration: MetricNameDescriptor { d("trafficmon_window_duration_seconds", "Length of the last closed window in seconds.") }
    static var windowLatePackets: MetricNameDescriptor { d("trafficmon_window_late_packets", "Late packets in the last closed window.") }
    static var up: MetricNameDescriptor { d("trafficmon_up", "1 while trafficmon is running.") }
    static var buildInfo: MetricNameDescriptor { d("trafficmon_build_info", "Build information; the value is always 1.") }
}
