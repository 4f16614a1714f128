import TrafficCore

extension ReportWriter {
    /// The table lines of a record's named networks (per side), countries and ASes, each
    /// only when the record carries them; empty otherwise.
    ///
    /// ```swift
    /// lines += whoTable(record)
    /// ```
    static func whoTable(_ r: WindowRecord) -> [String] {
        var lines: [String] = []
        if let networks = r.networks {
            for side in NetworkSide.allCases {
                let rows = networks.filter { $0.side == side }.map { ($0.network, $0.in, $0.out) }
                whoRows(rows, title: "network (\(side.rawValue)s)", into: &lines)
            }
        }
        if let countries = r.countries {
            whoRows(countries.map { ($0.country, $0.in, $0.out) }, title: "country (clients)", into: &lines)
        }
        if let asns = r.asns {
            whoRows(asns.map { ($0.asOrg.isEmpty ? $0.asn : "\($0.asn) \($0.asOrg)", $0.in, $0.out) }, title: "AS (clients)", into: &lines)
        }
        return lines
    }

    private static func whoRows(_ rows: [(String, Counts, Counts)], title: String, into lines: inout [String]) {
        guard !rows.isEmpty else { return }
        lines.append("  " + pad(title, 42) + countsHeader)
        for (name, inbound, outbound) in rows {
            lines.append("  " + pad("  " + name, 42) + countColumns(inbound, outbound))
        }
    }
}
