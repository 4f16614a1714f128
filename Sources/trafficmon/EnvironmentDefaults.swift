import Foundation

/// Fills command-line options from `TRAFFICMON_<FLAG>` environment variables, as
/// node_exporter-style exporters do, so a unit file or a container can configure
/// trafficmon without a command line. The command line wins over the environment.
///
/// ```swift
/// // TRAFFICMON_WINDOW=10s trafficmon report x.pcap  ==  trafficmon report x.pcap --window 10s
/// let args = EnvironmentDefaults.apply(to: ["report", "x.pcap"], environment: ["TRAFFICMON_WINDOW": "10s"])
/// ```
enum EnvironmentDefaults {
    enum Kind {
        /// `--flag value`
        case value
        /// `--flag value` repeatable; the variable holds a comma- or space-separated list.
        case list
        /// `--flag` with no value; the variable holds 1/true/yes or 0/false/no.
        case flag
    }

    /// The options each subcommand reads from the environment.
    static let options: [String: [(name: String, kind: Kind)]] = [
        "report": [
            ("window", .value), ("local-net", .list), ("service-port", .list), ("filter", .value), ("format", .value),
            ("top", .value), ("max-clients", .value), ("threads", .value),
            ("networks", .value), ("asn-db", .value), ("country-db", .value),
        ],
        "serve": [
            ("interface", .list), ("capture-threads", .value), ("read", .value), ("filter", .value), ("window", .value),
            ("listen", .value), ("local-net", .list), ("service-port", .list), ("party-ttl", .value), ("max-party-series", .value),
            ("history", .value), ("db", .value), ("no-db", .flag),
            ("retention", .value), ("top", .value), ("max-clients", .value), ("auth-token-file", .value),
            ("tls-cert", .value), ("tls-key", .value), ("enable-debug-inject", .flag), ("user", .value),
            ("snaplen", .value), ("buffer-size", .value), ("immediate-mode", .flag), ("log-level", .value),
            ("max-connections", .value), ("allowed-host", .list),
            ("networks", .value), ("asn-db", .value), ("country-db", .value), ("max-network-series", .value),
            ("netflow", .list), ("sflow", .list), ("flow-direction", .value), ("flow-buffer-size", .value),
            ("max-flow-exporters", .value),
        ],
    ]

    static func variableName(for option: String) -> String {
        "TRAFFICMON_" + option.uppercased().replacingOccurrences(of: "-", with: "_")
    }

    static func apply(to arguments: [String], environment: [String: String]) -> [String] {
        guard let subcommand = arguments.first, let specs = options[subcommand] else { return arguments }
        // Options after "--" are positional: stop looking there.
        let explicit = arguments.prefix { $0 != "--" }
        var extra: [String] = []
        for (name, kind) in specs {
            guard let value = environment[variableName(for: name)] else { continue }
            let flag = "--" + name
            if explicit.contains(where: { $0 == flag || $0.hasPrefix(flag + "=") }) { continue }
            switch kind {
            case .value:
                extra += [flag, value]
            case .list:
                for item in value.split(whereSeparator: { $0 == "," || $0 == " " }) { extra += [flag, String(item)] }
            case .flag:
                if ["1", "true", "yes", "on"].contains(value.lowercased()) { extra.append(flag) }
            }
        }
        guard !extra.isEmpty else { return arguments }
        var result = [subcommand] + extra
        result += arguments.dropFirst()
        return result
    }
}
