import Foundation
import Prometheus
import TrafficCore
import TrafficFlows

/// The Prometheus side of trafficmon: cumulative counters, last-window gauges and the
/// sticky per-party counters, updated once per closed window; the fixed families are
/// rendered by swift-prometheus, the per-party ones by hand (their series come and go).
///
/// A window's update and a scrape never interleave (one lock around both), so a
/// scrape always sees one whole window: `sum by (direction) (trafficmon_window_client_bytes)`
/// equals `trafficmon_window_bytes` exactly.
///
/// ```swift
/// let metrics = TrafficMetrics(top: 50, version: "1.0.0")
/// let built = closed.build(tracking: metrics.trackedParties())
/// metrics.record(built)
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
    private let lock: LockedValue<State>
    private let processMetrics = ProcessMetrics()

    struct State {
        /// The counters' figures as JSON wants them (`/stats/capture`): kept beside the
        /// Prometheus counters, which do not hand their values back.
        var totals = CaptureTotals()
        /// The per-party and per-service gauges of the last window and the sticky per-party
        /// counters, rendered once when the window closes: series of parties that left
        /// simply are not there, at no cost per series in the registry.
        var windowText: [UInt8] = []
        var clientSeries: PartySeries
        var serverSeries: PartySeries
        /// The packet-size histogram per direction (`in`, `out`): cumulative counts per
        /// bucket (`ProtocolCounts.sizeBounds`, then +Inf) and the bytes, rendered by hand
        /// (swift-prometheus' histograms take one observation at a time).
        var sizeBuckets = [[UInt64]](repeating: [UInt64](repeating: 0, count: ProtocolCounts.sizeBuckets), count: 2)
        var sizeSums: [UInt64] = [0, 0]
        /// `trafficmon_packets_total` and `_bytes_total` per (source, direction).
        var traffic: [SeriesKey: (packets: Counter, bytes: Counter)] = [:]
        /// Named networks, countries and ASes.
        var who: WhoSeries
    }

    struct SeriesKey: Hashable {
        var name: String
        var direction: Direction
    }

    // Counters.
    let nonIPPackets: Counter
    let nonIPBytes: Counter
    let malformedPackets: [MalformedReason: Counter]
    let malformedBytes: Counter
    let latePackets: Counter
    /// Capture figures: per interface for a live capture (an `interface` label), one set
    /// for a file (no label).
    let capture: [String: (received: Counter, kernel: Counter, interface: Counter)]
    let windowsClosed: Counter
    let injectedPackets: Counter
    let oversizedFrames: Counter
    let partySeriesRefused: [String: Counter]
    /// TCP control segments by kind (`TCPFlags.Kind`) and direction.
    let tcpPackets: [[Counter]]
    let dnsQueries: [Counter]
    let dnsResponses: [Counter]
    let dnsMalformed: Counter
    let dnsCut: Counter
    /// The service counters, labelled for the busiest services (`ServiceLabels`); updated under `lock`.
    let serviceCounters: ServiceCounters
    // Gauges of the last closed window.
    let windowPackets: [Direction: Gauge]
    let windowBytes: [Direction: Gauge]
    let windowClients: Gauge
    let windowServers: Gauge
    let partySeries: [String: Gauge]
    let windowStart: Gauge
    let windowDuration: Gauge
    let windowLate: Gauge
    let windowSampled: Gauge
    let up: Gauge
    /// The flow inputs' figures, read at each scrape.
    let flows: @Sendable () -> [FlowCollectorHealth]

    /// - Parameters:
    ///   - partyTTL: how long (nanoseconds of event time) a party keeps its sticky counters
    ///     after it was last listed in a window's top (`--party-ttl`).
    ///   - maxPartySeries: at most this many parties per side have sticky counters.
    ///   - interfaces: the live interfaces captured (each gets its own capture counters); none for a file.
    ///   - networks: the named networks (`--networks`), the first `maxNetworkSeries` of which
    ///     get counters of their own; `origins`: the AS and country lookups (`WhoSeries`).
    ///   - sources: the sources the traffic counters are labelled with from the start (others
    ///     get their series when a window names them).
    ///   - flows: the flow inputs' figures, read at each scrape.
    public init(
        top: Int, version: String, partyTTL: Int64 = 600 * 1_000_000_000, maxPartySeries: Int = 1000, interfaces: [String] = [],
        networks: NamedNetworks? = nil, maxNetworkSeries: Int = 100, origins: (any OriginLookup)? = nil,
        sources: [String] = [], flows: @escaping @Sendable () -> [FlowCollectorHealth] = { [] }
    ) {
        self.top = max(1, top)
        self.flows = flows
        lock = LockedValue(State(
            clientSeries: PartySeries(label: "client", ttl: partyTTL, limit: maxPartySeries),
            serverSeries: PartySeries(label: "server", ttl: partyTTL, limit: maxPartySeries),
            who: WhoSeries(networks: networks, maxNetworkSeries: maxNetworkSeries, origins: origins)))
        let r = registry
        func counter(_ d: MetricNameDescriptor, _ labels: [(String, String)] = []) -> Counter {
            labels.isEmpty ? r.makeCounter(descriptor: d) : r.makeCounter(descriptor: d, labels: labels)
        }
        func gauge(_ d: MetricNameDescriptor, _ labels: [(String, String)] = []) -> Gauge {
            labels.isEmpty ? r.makeGauge(descriptor: d) : r.makeGauge(descriptor: d, labels: labels)
        }
        var wp: [Direction: Gauge] = [:], wb: [Direction: Gauge] = [:]
        for d in Direction.allCases {
            wp[d] = gauge(Names.windowPackets, [("direction", d.label)])
            wb[d] = gauge(Names.windowBytes, [("direction", d.label)])
        }
        windowPackets = wp
        windowBytes = wb
        nonIPPackets = counter(Names.nonIPPackets)
        nonIPBytes = counter(Names.nonIPBytes)
        var m: [MalformedReason: Counter] = [:]
        for reason in MalformedReason.allCases { m[reason] = counter(Names.malformedPackets, [("reason", reason.label)]) }
        malformedPackets = m
        malformedBytes = counter(Names.malformedBytes)
        latePackets = counter(Names.latePackets)
        var capture: [String: (received: Counter, kernel: Counter, interface: Counter)] = [:]
        for name in interfaces.isEmpty ? [""] : interfaces {
            let label: [(String, String)] = name.isEmpty ? [] : [("interface", name)]
            capture[name] = (
                counter(Names.receivedPackets, label),
                counter(Names.droppedPackets, label + [("where", "kernel")]),
                counter(Names.droppedPackets, label + [("where", "interface")]))
        }
        self.capture = capture
        windowsClosed = counter(Names.windowsClosed)
        injectedPackets = counter(Names.injectedPackets)
        oversizedFrames = counter(Names.oversizedFrames)
        partySeriesRefused = [
            "client": counter(Names.partySeriesRefused, [("side", "client")]),
            "server": counter(Names.partySeriesRefused, [("side", "server")]),
        ]
        partySeries = [
            "client": gauge(Names.partySeries, [("side", "client")]),
            "server": gauge(Names.partySeries, [("side", "server")]),
        ]
        tcpPackets = TCPFlags.Kind.allCases.map { kind in
            Direction.allCases.map { counter(Names.tcpPackets, [("flags", kind.label), ("direction", $0.label)]) }
        }
        dnsQueries = DNSFacts.queryTypes.map { counter(Names.dnsQueries, [("qtype", $0)]) }
        dnsResponses = DNSFacts.responseCodes.map { counter(Names.dnsResponses, [("rcode", $0)]) }
        dnsMalformed = counter(Names.dnsMalformed)
        dnsCut = counter(Names.dnsCut)
        serviceCounters = ServiceCounters(registry: r, capacity: self.top)
        windowClients = gauge(Names.windowClients)
        windowServers = gauge(Names.windowServers)
        windowStart = gauge(Names.windowStart)
        windowDuration = gauge(Names.windowDuration)
        windowLate = gauge(Names.windowLatePackets)
        windowSampled = gauge(Names.windowSampled)
        up = gauge(Names.up)
        up.set(1.0)
        gauge(Names.buildInfo, [("version", version)]).set(1.0)
        lock.withLock { state in
            for source in sources { _ = Self.trafficCounters(source: source, direction: .inbound, registry: r, in: &state) }
            for source in sources { _ = Self.trafficCounters(source: source, direction: .outbound, registry: r, in: &state) }
        }
    }

    /// The traffic counters of one source and direction, made on first use.
    static func trafficCounters(
        source: String, direction: Direction, registry: PrometheusCollectorRegistry, in state: inout State
    ) -> (packets: Counter, bytes: Counter) {
        let key = SeriesKey(name: source, direction: direction)
        if let pair = state.traffic[key] { return pair }
        let labels = [("source", source), ("direction", direction.label)]
        let pair = (registry.makeCounter(descriptor: Names.packets, labels: labels), registry.makeCounter(descriptor: Names.bytes, labels: labels))
        state.traffic[key] = pair
        return pair
    }

    /// Counts an injected packet (`/debug/inject`).
    public func countInject() {
        injectedPackets.increment()
    }

    /// The parties whose exact totals the next window's build must report (`ClosedWindow.build(tracking:)`).
    public func trackedParties() -> TrackedParties {
        lock.withLock { TrackedParties(clients: $0.clientSeries.addresses, servers: $0.serverSeries.addresses) }
    }

    /// Adds a closed window (built with `trackedParties()`) to the counters and makes it
    /// the window the gauges describe.
    public func record(_ built: BuiltWindow) {
        record(built.record, clientTotals: built.clientTotals, serverTotals: built.serverTotals, networkTotals: built.networkTotals)
    }

    /// Adds a record whose lists hold every party (an inject test, a record read back):
    /// the sticky counters take tracked parties' totals from the lists.
    public func record(_ r: WindowRecord) {
        let tracked = trackedParties()
        func totals(_ addresses: [IPAddress], _ parties: [PartyRecord]) -> [PartyTotals?] {
            let byAddress = Dictionary(parties.map { ($0.ip, PartyTotals(in: $0.in, out: $0.out)) }, uniquingKeysWith: { a, _ in a })
            return addresses.map { byAddress[$0] ?? PartyTotals() }
        }
        record(r, clientTotals: totals(tracked.clients, r.clients), serverTotals: totals(tracked.servers, r.servers))
    }

    private func record(
        _ whole: WindowRecord, clientTotals: [PartyTotals?], serverTotals: [PartyTotals?], networkTotals: [NetworkCounts]? = nil
    ) {
        // Series for this exposition's top (records built by `serve` are folded to it already).
        let r = whole.folded(top: top)
        lock.withLock { state in
            for (d, c) in [(Direction.inbound, r.in), (.outbound, r.out)] {
                windowPackets[d]?.set(Double(c.packets))
                windowBytes[d]?.set(Double(c.bytes))
            }
            // Per source; a record that names none (made by hand, or stored before sources
            // were recorded) counts as source="unknown", so no traffic goes uncounted.
            let sources = r.sources.isEmpty ? [SourceCounts(name: "unknown", in: r.in, out: r.out)] : r.sources
            for source in sources {
                for (d, c) in [(Direction.inbound, source.in), (.outbound, source.out)] {
                    let pair = Self.trafficCounters(source: source.name, direction: d, registry: registry, in: &state)
                    pair.packets.increment(by: Int64(clamping: c.packets))
                    pair.bytes.increment(by: Int64(clamping: c.bytes))
                }
            }
            windowSampled.set(r.sampled ? 1.0 : 0.0)
            nonIPPackets.increment(by: Int64(clamping: r.nonIP.packets))
            nonIPBytes.increment(by: Int64(clamping: r.nonIP.bytes))
            for (label, count) in r.malformed.reasons {
                if let reason = MalformedReason(label: label) { malformedPackets[reason]?.increment(by: Int64(clamping: count)) }
            }
            malformedBytes.increment(by: Int64(clamping: r.malformed.bytes))
            latePackets.increment(by: Int64(clamping: r.latePackets))
            if let all = capture[""] {
                all.received.increment(by: Int64(clamping: r.capture.received))
                all.kernel.increment(by: Int64(clamping: r.capture.kernelDropped))
                all.interface.increment(by: Int64(clamping: r.capture.interfaceDropped))
            }
            for input in r.capture.interfaces {
                guard let counters = capture[input.name] else { continue }
                counters.received.increment(by: Int64(clamping: input.received))
                counters.kernel.increment(by: Int64(clamping: input.kernelDropped))
                counters.interface.increment(by: Int64(clamping: input.interfaceDropped))
            }
            oversizedFrames.increment(by: Int64(clamping: r.capture.oversized))
            let p = r.protocols
            for kind in TCPFlags.Kind.allCases {
                tcpPackets[kind.rawValue][Int(Direction.inbound.rawValue)].increment(by: Int64(clamping: p.tcpIn[kind]))
                tcpPackets[kind.rawValue][Int(Direction.outbound.rawValue)].increment(by: Int64(clamping: p.tcpOut[kind]))
            }
            for (counter, n) in zip(dnsQueries, p.dnsQueries) { counter.increment(by: Int64(clamping: n)) }
            for (counter, n) in zip(dnsResponses, p.dnsResponses) { counter.increment(by: Int64(clamping: n)) }
            dnsMalformed.increment(by: Int64(clamping: p.dnsMalformed))
            dnsCut.increment(by: Int64(clamping: p.dnsCut))
            for (d, sizes, c) in [(0, p.sizesIn, r.in), (1, p.sizesOut, r.out)] {
                for b in 0..<ProtocolCounts.sizeBuckets { state.sizeBuckets[d][b] &+= sizes[b] }
                state.sizeSums[d] &+= c.bytes
            }
            windowsClosed.increment()
            state.totals.add(r)
            windowClients.set(Double(UInt64(r.clients.count) &+ r.other.clients))
            windowServers.set(Double(UInt64(r.servers.count) &+ r.otherServers.servers))
            windowStart.set(Double(r.start) / 1e9)
            windowDuration.set(Double(r.end - r.start) / 1e9)
            windowLate.set(Double(r.latePackets))

            // Per-window gauges of the record's lists (already folded to `top`) plus "other".
            var text = ""
            for (parties, other, label, packetsName, bytesName) in [
                (r.clients, r.other, "client", Names.windowClientPackets, Names.windowClientBytes),
                (r.servers, r.otherServers, "server", Names.windowServerPackets, Names.windowServerBytes),
            ] {
                var values: [SeriesKey: Counts] = [:]
                for p in parties {
                    values[SeriesKey(name: p.ip.description, direction: .inbound), default: .zero] += p.in
                    values[SeriesKey(name: p.ip.description, direction: .outbound), default: .zero] += p.out
                }
                values[SeriesKey(name: "other", direction: .inbound), default: .zero] += other.in
                values[SeriesKey(name: "other", direction: .outbound), default: .zero] += other.out
                Self.render(values, labelName: label, packets: packetsName, bytes: bytesName, into: &text)
            }

            // Services of the window: the listed ones plus "other".
            var services: [SeriesKey: Counts] = [:]
            for s in r.services {
                services[SeriesKey(name: s.service.label, direction: s.direction), default: .zero] += Counts(packets: s.packets, bytes: s.bytes)
            }
            Self.render(services, labelName: "service", packets: Names.windowServicePackets, bytes: Names.windowServiceBytes, into: &text)

            // The clients whose SYNs reached the most services (a port scan), at most `ProtocolCounts.synClientLimit`.
            if !p.synClients.isEmpty {
                let name = Names.windowClientSYNServices
                text += "# HELP \(name.name) \(name.helpText ?? "")\n# TYPE \(name.name) gauge\n"
                for c in p.synClients { text += "\(name.name){client=\"\(c.ip)\"} \(c.synServices)\n" }
            }

            // Sticky per-party counters.
            let refusedClients = state.clientSeries.add(window: r.end, listed: r.clients, totals: clientTotals)
            let refusedServers = state.serverSeries.add(window: r.end, listed: r.servers, totals: serverTotals)
            partySeriesRefused["client"]?.increment(by: Int64(refusedClients))
            partySeriesRefused["server"]?.increment(by: Int64(refusedServers))
            for series in [state.clientSeries, state.serverSeries] {
                let names = series.label == "client"
                    ? (Names.clientPackets, Names.clientBytes) : (Names.serverPackets, Names.serverBytes)
                series.render(
                    packets: names.0.name, packetsHelp: names.0.helpText ?? "", bytes: names.1.name, bytesHelp: names.1.helpText ?? "",
                    into: &text)
                partySeries[series.label]?.set(Double(series.count))
            }
            state.who.add(r, networkTotals: networkTotals ?? whole.networks)
            text += state.who.text
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

    /// `trafficmon_packet_size_bytes`: per direction, cumulative buckets whose `+Inf` (and
    /// `_count`) equals the IP packets counted and whose `_sum` equals their bytes.
    static func sizeHistogram(_ state: State) -> [UInt8] {
        let name = Names.packetSize.name
        var text = "# HELP \(name) \(Names.packetSize.helpText ?? "")\n# TYPE \(name) histogram\n"
        for d in Direction.allCases {
            let i = Int(d.rawValue)
            var cumulative: UInt64 = 0
            for (b, count) in state.sizeBuckets[i].enumerated() {
                cumulative &+= count
                let bound = b < ProtocolCounts.sizeBounds.count ? String(ProtocolCounts.sizeBounds[b]) : "+Inf"
                text += "\(name)_bucket{direction=\"\(d.label)\",le=\"\(bound)\"} \(cumulative)\n"
            }
            text += "\(name)_sum{direction=\"\(d.label)\"} \(state.sizeSums[i])\n"
            text += "\(name)_count{direction=\"\(d.label)\"} \(cumulative)\n"
        }
        return Array(text.utf8)
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
        var text = lock.withLock { state in registry.emitToBuffer() + state.windowText + Self.sizeHistogram(state) }
        Self.appendFlows(flows(), to: &text)
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

    static var packets: MetricNameDescriptor { d("trafficmon_packets_total", "IP packets counted, by source (an interface, file, netflow, sflow, inject) and direction relative to the local side (in = towards it).") }
    static var bytes: MetricNameDescriptor { d("trafficmon_bytes_total", "IP bytes counted, by source and direction relative to the local side: wire bytes for captures and sFlow, layer-3 bytes for NetFlow and IPFIX.") }
    static var servicePackets: MetricNameDescriptor { d("trafficmon_service_packets_total", "IP packets by service and direction; the --top busiest services have their own label (a port scan cannot take them), the rest are service=\"other\".") }
    static var serviceBytes: MetricNameDescriptor { d("trafficmon_service_bytes_total", "IP wire bytes by service and direction; the --top busiest services have their own label (a port scan cannot take them), the rest are service=\"other\".") }
    static var nonIPPackets: MetricNameDescriptor { d("trafficmon_non_ip_packets_total", "Frames that are not IP (ARP, LLDP, STP, ...).") }
    static var nonIPBytes: MetricNameDescriptor { d("trafficmon_non_ip_bytes_total", "Wire bytes of frames that are not IP.") }
    static var malformedPackets: MetricNameDescriptor { d("trafficmon_malformed_packets_total", "Frames that could not be decoded, by reason.") }
    static var malformedBytes: MetricNameDescriptor { d("trafficmon_malformed_bytes_total", "Wire bytes of frames that could not be decoded.") }
    static var latePackets: MetricNameDescriptor { d("trafficmon_late_packets_total", "Packets whose timestamp was older than the open window (counted in the open window).") }
    static var receivedPackets: MetricNameDescriptor { d("trafficmon_capture_received_packets_total", "Frames the capture delivered to trafficmon (by interface for a live capture).") }
    static var droppedPackets: MetricNameDescriptor { d("trafficmon_capture_dropped_packets_total", "Frames lost before trafficmon saw them: where=kernel (capture buffer full) or where=interface (the NIC or driver).") }
    static var windowsClosed: MetricNameDescriptor { d("trafficmon_windows_closed_total", "Windows closed (including empty and partial ones).") }
    static var injectedPackets: MetricNameDescriptor { d("trafficmon_injected_packets_total", "Packets added through POST /debug/inject.") }
    static var windowPackets: MetricNameDescriptor { d("trafficmon_window_packets", "IP packets in the last closed window, by direction.") }
    static var windowBytes: MetricNameDescriptor { d("trafficmon_window_bytes", "IP wire bytes in the last closed window, by direction.") }
    static var windowClientPackets: MetricNameDescriptor { d("trafficmon_window_client_packets", "IP packets of each top client in the last closed window (client=\"other\" holds the rest).") }
    static var windowClientBytes: MetricNameDescriptor { d("trafficmon_window_client_bytes", "IP wire bytes of each top client in the last closed window (client=\"other\" holds the rest).") }
    static var windowServicePackets: MetricNameDescriptor { d("trafficmon_window_service_packets", "IP packets of each top service in the last closed window (service=\"other\" holds the rest).") }
    static var windowServiceBytes: MetricNameDescriptor { d("trafficmon_window_service_bytes", "IP wire bytes of each top service in the last closed window (service=\"other\" holds the rest).") }
    static var windowServerPackets: MetricNameDescriptor { d("trafficmon_window_server_packets", "IP packets of each top server in the last closed window (server=\"other\" holds the rest).") }
    static var windowServerBytes: MetricNameDescriptor { d("trafficmon_window_server_bytes", "IP wire bytes of each top server in the last closed window (server=\"other\" holds the rest).") }
    static var windowClients: MetricNameDescriptor { d("trafficmon_window_clients", "Distinct clients in the last closed window.") }
    static var windowServers: MetricNameDescriptor { d("trafficmon_window_servers", "Distinct servers in the last closed window.") }
    static var clientPackets: MetricNameDescriptor { d("trafficmon_client_packets_total", "IP packets of each client that was in some window's top within --party-ttl, counted in every window since it entered (a counter reset when it comes back).") }
    static var clientBytes: MetricNameDescriptor { d("trafficmon_client_bytes_total", "IP wire bytes of each client that was in some window's top within --party-ttl, counted in every window since it entered (a counter reset when it comes back).") }
    static var serverPackets: MetricNameDescriptor { d("trafficmon_server_packets_total", "IP packets of each server that was in some window's top within --party-ttl, counted in every window since it entered (a counter reset when it comes back).") }
    static var serverBytes: MetricNameDescriptor { d("trafficmon_server_bytes_total", "IP wire bytes of each server that was in some window's top within --party-ttl, counted in every window since it entered (a counter reset when it comes back).") }
    static var partySeries: MetricNameDescriptor { d("trafficmon_party_series", "Parties with sticky counters (trafficmon_client_*_total, trafficmon_server_*_total), by side; at most --max-party-series.") }
    static var partySeriesRefused: MetricNameDescriptor { d("trafficmon_party_series_refused_total", "Parties listed in a window's top but refused sticky counters because --max-party-series were tracked.") }
    static var oversizedFrames: MetricNameDescriptor { d("trafficmon_capture_oversized_frames_total", "Captured frames longer than the interface MTU plus link header: merged by GRO/LRO/TSO before the capture (turn offloads off with ethtool -K).") }
    static var tcpPackets: MetricNameDescriptor { d("trafficmon_tcp_packets_total", "TCP segments by control flags (syn: SYN without ACK, synack, rst, fin; a segment counts under each that applies; unknown: cut before its flags) and direction.") }
    static var packetSize: MetricNameDescriptor { d("trafficmon_packet_size_bytes", "IP packets by wire length and direction; _count equals trafficmon_packets_total, _sum trafficmon_bytes_total.") }
    static var dnsQueries: MetricNameDescriptor { d("trafficmon_dns_queries_total", "DNS queries (UDP or TCP port 53) by the type of their first question.") }
    static var dnsResponses: MetricNameDescriptor { d("trafficmon_dns_responses_total", "DNS responses (UDP or TCP port 53) by response code.") }
    static var dnsMalformed: MetricNameDescriptor { d("trafficmon_dns_malformed_total", "Messages on port 53 that are not readable DNS (shorter than the 12-byte header, or a first question past the message).") }
    static var dnsCut: MetricNameDescriptor { d("trafficmon_dns_cut_total", "DNS messages the capture's snapshot length cut before their first question could be read.") }
    static var windowClientSYNServices: MetricNameDescriptor { d("trafficmon_window_client_syn_services", "Services reached by each client's SYNs in the last closed window, for the clients that reached the most (at most 10): a port scan.") }
    static var windowStart: MetricNameDescriptor { d("trafficmon_window_start_timestamp_seconds", "Start of the last closed window, Unix seconds.") }
    static var windowDuration: MetricNameDescriptor { d("trafficmon_window_duration_seconds", "Length of the last closed window in seconds.") }
    static var windowLatePackets: MetricNameDescriptor { d("trafficmon_window_late_packets", "Late packets in the last closed window.") }
    static var windowSampled: MetricNameDescriptor { d("trafficmon_window_sampled", "1 when the last closed window holds figures scaled up from sampled flows (estimates), else 0.") }
    static var up: MetricNameDescriptor { d("trafficmon_up", "1 while trafficmon is running.") }
    static var buildInfo: MetricNameDescriptor { d("trafficmon_build_info", "Build information; the value is always 1.") }
}
