import TrafficCore

/// The Prometheus series of named networks, countries and ASes, rendered as text once per
/// closed window under `TrafficMetrics`' lock:
/// - `trafficmon_network_info{network,...labels}`: 1 per network with counters;
/// - `trafficmon_network_packets_total` / `_bytes_total{network,side,direction}`: the first
///   `maxNetworkSeries` networks of the file, `unknown` and `other` (every other network
///   and the parties past `--max-clients`), all from the start;
/// - `trafficmon_window_network_packets` / `_bytes{network,side,direction}`: the record's
///   networks (its top `--top` per side, `unknown`, `other`);
/// - `trafficmon_country_packets_total` / `_bytes_total{country,direction}`: each country
///   seen (two letters A-Z, so at most 676), `unknown` and `other`;
/// - `trafficmon_window_asn_packets` / `_bytes{asn,as_org,direction}`: the record's ASes
///   (its top `--top`, `unknown`, `other`).
///
/// Each family adds up to the IP totals by direction (per side for networks), exactly.
///
/// ```swift
/// var series = WhoSeries(networks: networks, maxNetworkSeries: 100, origins: origins)
/// series.add(folded, networkTotals: built.networkTotals)
/// text += series.text
/// ```
struct WhoSeries {
    /// Counter labels of the networks that have their own (in file order), then `unknown`, `other`.
    private let counterNames: [String]
    private let labelled: Set<String>
    private let providesCountry: Bool
    private let info: String
    /// Per (counter label, side, direction).
    private var networkCounters: [Key: Counts] = [:]
    /// Per (country, direction): the side is always `client`.
    private var countryCounters: [Key: Counts] = [:]
    /// The exposition text of the last window.
    private(set) var text = ""

    struct Key: Hashable {
        var name: String
        var side: NetworkSide
        var direction: Direction
    }

    init(networks: NamedNetworks?, maxNetworkSeries: Int, origins: (any OriginLookup)?) {
        providesCountry = origins?.providesCountry ?? false
        guard let networks else {
            counterNames = []
            labelled = []
            info = ""
            return
        }
        let own = Array(networks.names.prefix(max(0, maxNetworkSeries)))
        labelled = Set(own)
        counterNames = own + [NamedNetworks.unknown, NamedNetworks.other]
        var info = "# HELP \(WhoNames.networkInfo.name) \(WhoNames.networkInfo.help)\n# TYPE \(WhoNames.networkInfo.name) gauge\n"
        for (i, name) in own.enumerated() {
            var labels = "network=\"\(TrafficMetrics.escape(name))\""
            for label in networks.labels[i] { labels += ",\(label.name)=\"\(TrafficMetrics.escape(label.value))\"" }
            info += "\(WhoNames.networkInfo.name){\(labels)} 1\n"
        }
        self.info = own.isEmpty ? "" : info
        for name in counterNames {
            for side in NetworkSide.allCases {
                for direction in Direction.allCases { networkCounters[Key(name: name, side: side, direction: direction)] = .zero }
            }
        }
        text = render(window: nil)
    }

    /// Adds a window: `record` folded to the exposition's `--top` (the gauges), and its
    /// networks before any fold (the counters; `record.networks` when `nil`).
    mutating func add(_ record: WindowRecord, networkTotals: [NetworkCounts]?) {
        if !counterNames.isEmpty, let totals = networkTotals ?? record.networks {
            for n in totals {
                let name = n.network == NamedNetworks.unknown || labelled.contains(n.network) ? n.network : NamedNetworks.other
                networkCounters[Key(name: name, side: n.side, direction: .inbound), default: .zero] += n.in
                networkCounters[Key(name: name, side: n.side, direction: .outbound), default: .zero] += n.out
            }
        }
        if providesCountry, let countries = record.countries {
            for c in countries {
                countryCounters[Key(name: c.country, side: .client, direction: .inbound), default: .zero] += c.in
                countryCounters[Key(name: c.country, side: .client, direction: .outbound), default: .zero] += c.out
            }
        }
        text = render(window: record)
    }

    private func render(window r: WindowRecord?) -> String {
        var out = info
        if !counterNames.isEmpty {
            let order = Dictionary(uniqueKeysWithValues: counterNames.enumerated().map { ($1, $0) })
            let keys = networkCounters.keys.sorted { a, b in
                (order[a.name] ?? .max, a.side.rawValue, a.direction.rawValue) < (order[b.name] ?? .max, b.side.rawValue, b.direction.rawValue)
            }
            Self.write(WhoNames.networkPackets, WhoNames.networkBytes, type: "counter", into: &out, rows: keys.map { k in
                (Self.networkLabels(k.name, k.side, k.direction), networkCounters[k] ?? .zero)
            })
        }
        if let networks = r?.networks, !networks.isEmpty {
            Self.write(WhoNames.windowNetworkPackets, WhoNames.windowNetworkBytes, type: "gauge", into: &out, rows: networks.flatMap { n in
                [(Self.networkLabels(n.network, n.side, .inbound), n.in), (Self.networkLabels(n.network, n.side, .outbound), n.out)]
            })
        }
        if providesCountry && !countryCounters.isEmpty {
            let keys = countryCounters.keys.sorted { a, b in
                (Self.rank(a.name), a.name, a.direction.rawValue) < (Self.rank(b.name), b.name, b.direction.rawValue)
            }
            Self.write(WhoNames.countryPackets, WhoNames.countryBytes, type: "counter", into: &out, rows: keys.map { k in
                ("country=\"\(TrafficMetrics.escape(k.name))\",direction=\"\(k.direction.label)\"", countryCounters[k] ?? .zero)
            })
        }
        if let asns = r?.asns, !asns.isEmpty {
            Self.write(WhoNames.windowASNPackets, WhoNames.windowASNBytes, type: "gauge", into: &out, rows: asns.flatMap { a in
                [(Direction.inbound, a.in), (.outbound, a.out)].map { direction, counts in
                    ("asn=\"\(TrafficMetrics.escape(a.asn))\",as_org=\"\(TrafficMetrics.escape(a.asOrg))\",direction=\"\(direction.label)\"", counts)
                }
            })
        }
        return out
    }

    /// The `packets` family, then the `bytes` family, as `type`: each with its header and a
    /// line per row, its labels and the packets (or bytes) of its counts.
    private static func write(
        _ packets: WhoNames.Family, _ bytes: WhoNames.Family, type: String, into out: inout String,
        rows: [(labels: String, counts: Counts)]
    ) {
        for (family, pick) in [(packets, \Counts.packets), (bytes, \Counts.bytes)] {
            family.header(type, into: &out)
            for row in rows { out += "\(family.name){\(row.labels)} \(row.counts[keyPath: pick])\n" }
        }
    }

    private static func networkLabels(_ network: String, _ side: NetworkSide, _ direction: Direction) -> String {
        "network=\"\(TrafficMetrics.escape(network))\",side=\"\(side.rawValue)\",direction=\"\(direction.label)\""
    }

    /// Codes first, then `unknown`, then `other`.
    private static func rank(_ name: String) -> Int {
        name == ClientOrigin.other ? 2 : (name == ClientOrigin.unknown ? 1 : 0)
    }
}

/// The names and help texts of the series above.
enum WhoNames {
    struct Family {
        var name: String
        var help: String

        func header(_ type: String, into out: inout String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
    }

    static let networkInfo = Family(
        name: "trafficmon_network_info",
        help: "A named network of --networks with counters of its own, with the labels its file gives; the value is always 1.")
    static let networkPackets = Family(
        name: "trafficmon_network_packets_total",
        help: "IP packets by named network (--networks) of the client or the server side, and direction; network=\"unknown\": no network holds the address; network=\"other\": networks past --max-network-series and parties past --max-clients.")
    static let networkBytes = Family(
        name: "trafficmon_network_bytes_total",
        help: "IP wire bytes by named network (--networks) of the client or the server side, and direction; network=\"unknown\" and \"other\" as for the packets.")
    static let windowNetworkPackets = Family(name: "trafficmon_window_network_packets", help: "IP packets \(windowNetworkHelp)")
    static let windowNetworkBytes = Family(name: "trafficmon_window_network_bytes", help: "IP wire bytes \(windowNetworkHelp)")
    static let countryPackets = Family(name: "trafficmon_country_packets_total", help: "IP packets \(countryHelp)")
    static let countryBytes = Family(name: "trafficmon_country_bytes_total", help: "IP wire bytes \(countryHelp)")
    static let windowASNPackets = Family(name: "trafficmon_window_asn_packets", help: "IP packets \(windowASNHelp)")
    static let windowASNBytes = Family(name: "trafficmon_window_asn_bytes", help: "IP wire bytes \(windowASNHelp)")

    // What the packets and the bytes family of each pair count, after "IP packets" or "IP wire bytes".
    private static let windowNetworkHelp =
        "of each top named network per side in the last closed window (network=\"other\" holds the rest, network=\"unknown\" the addresses outside every network)."
    private static let countryHelp =
        "by the client's country (ISO 3166 code from --country-db; unknown: none; other: clients past --max-clients) and direction."
    private static let windowASNHelp =
        "of each top autonomous system of the clients (--asn-db) in the last closed window (asn=\"other\" holds the rest, asn=\"unknown\" the clients no AS holds)."
}
