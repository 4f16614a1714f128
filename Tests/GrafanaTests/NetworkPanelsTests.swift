import Foundation
import Testing

/// The dashboard's Networks row on the JSON model: bits/s by network and direction on both
/// sides, top networks, by site through trafficmon_network_info, top ASes, countries. (The
/// live Prometheus test runs every one of its queries against real series.)
@Suite struct NetworkPanelsTests {
    @Test("Networks row: networks by side and direction, top-N, sites, ASes, countries")
    func networksRow() throws {
        let dashboard = try Dashboard()
        let panels = dashboard.dataPanels(inRow: "Networks, AS and country")
        #expect(panels.count == 9)
        #expect(panels.allSatisfy { $0.id > 900 && $0.id < 1000 }, "\(panels.map(\.id))")
        func find(_ match: (Panel) -> Bool) -> Panel? { panels.first(where: match) }
        func queries(_ p: Panel, _ needles: String...) -> Bool {
            p.expressions.contains { e in needles.allSatisfy(e.contains) }
        }
        for side in ["client", "server"] {
            let p = find { queries($0, "trafficmon_network_bytes_total", #"side="\#(side)""#, "sum by (network, direction)", "rate(") }
            #expect(p?.unit == "bps" && p?.type == "timeseries", "bits/s by network and direction, \(side) side")
            #expect(p.map { $0.targets.contains { ($0["legendFormat"] as? String) == "{{network}} {{direction}}" } } == true)
        }
        #expect(find { $0.isTopNOverRange && queries($0, "trafficmon_network_bytes_total", "max by (network)") }?.unit == "bytes")
        #expect(find { queries($0, "trafficmon_window_network_bytes", "trafficmon_window_duration_seconds") }?.unit == "bps")
        #expect(find { queries($0, "group_left (site) trafficmon_network_info") }?.unit == "bps")
        #expect(panels.filter { queries($0, "trafficmon_window_asn_bytes", "sum by (asn, as_org)") }.map(\.type).sorted() == ["bargauge", "timeseries"])
        #expect(find { queries($0, "trafficmon_country_bytes_total", "rate(") }?.unit == "bps")
        #expect(find { $0.isTopNOverRange && queries($0, "trafficmon_country_bytes_total", "increase(") }?.unit == "bytes")
    }
}
