import Foundation
import Testing

/// The dashboard's rules, checked on the JSON model itself.
@Suite("Grafana dashboard JSON")
struct DashboardTests {
    static let allowedUnits: Set<String> = ["bps", "Bps", "pps", "bytes", "short", "percentunit", "s"]
    static let instanceFilter = #"instance=~"$instance""#

    @Test("schemaVersion, uid, title")
    func header() throws {
        let dashboard = try Dashboard()
        let schema = try #require(dashboard.json["schemaVersion"] as? Int)
        #expect(schema >= 39, "schemaVersion \(schema) is older than Grafana 10.4/11's 39")
        let uid = try #require(dashboard.json["uid"] as? String)
        // Stable: links, provisioning and alert annotations refer to it.
        #expect(uid == "trafficmon-overview")
        #expect(uid.count <= 40 && uid.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
        #expect((dashboard.json["title"] as? String)?.isEmpty == false)
        // A provisioned dashboard must not carry a database id.
        #expect(dashboard.json["id"] == nil || dashboard.json["id"] is NSNull)
    }

    @Test("datasource and instance variables")
    func variables() throws {
        let dashboard = try Dashboard()
        let datasource = try #require(dashboard.variable("datasource"), "no variable named datasource")
        #expect(datasource["type"] as? String == "datasource")
        #expect(datasource["label"] as? String == "Data source")
        #expect(datasource["query"] as? String == "prometheus")

        let instance = try #require(dashboard.variable("instance"), "no variable named instance")
        #expect(instance["type"] as? String == "query")
        let query = (instance["query"] as? String) ?? ((instance["query"] as? [String: Any])?["query"] as? String)
        #expect(query == "label_values(trafficmon_build_info, instance)")
        if let definition = instance["definition"] as? String {
            #expect(definition == "label_values(trafficmon_build_info, instance)")
        }
        #expect(instance["multi"] as? Bool == true)
        #expect(instance["includeAll"] as? Bool == true)
        #expect(Panel.datasourceUID(instance["datasource"]) == "${datasource}")
        // Refreshed when the time range changes, so new sensors show up.
        #expect((instance["refresh"] as? Int ?? 0) >= 1)
    }

    @Test("rows group overview, clients, servers, services, protocols and capture health")
    func rows() throws {
        let titles = try Dashboard().rowTitles.map { $0.lowercased() }
        for wanted in ["overview", "clients", "servers", "services", "protocols", "capture health"] {
            #expect(titles.contains { $0.contains(wanted) }, "no row titled like '\(wanted)' in \(titles)")
        }
    }

    @Test("every panel: datasource, description, unit, targets")
    func panels() throws {
        let dashboard = try Dashboard()
        let panels = dashboard.dataPanels
        #expect(panels.count >= 12)
        var ids = Set<Int>()
        for panel in dashboard.allPanels {
            let id = try #require(panel["id"] as? Int, "a panel without an id")
            #expect(ids.insert(id).inserted, "panel id \(id) is used twice")
            #expect(panel["gridPos"] is [String: Any], "panel \(id) has no gridPos")
        }
        for panel in panels {
            #expect(Panel.datasourceUID(panel.json["datasource"]) == "${datasource}", "panel '\(panel.title)'")
            #expect(!panel.description.trimmingCharacters(in: .whitespaces).isEmpty, "panel '\(panel.title)' has no description")
            let unit = panel.unit
            #expect(unit.map(Self.allowedUnits.contains) == true, "panel '\(panel.title)' has unit \(unit ?? "none")")
            #expect(!panel.targets.isEmpty, "panel '\(panel.title)' has no query")
            for target in panel.targets {
                #expect(!((target["expr"] as? String) ?? "").isEmpty, "panel '\(panel.title)' has a target without expr")
                if target["datasource"] != nil {
                    #expect(Panel.datasourceUID(target["datasource"]) == "${datasource}", "a target of '\(panel.title)'")
                }
            }
        }
    }

    @Test("rates use $__rate_interval (top-N range panels use $__range)")
    func rateIntervals() throws {
        var topNPanels = 0
        for panel in try Dashboard().dataPanels {
            if panel.isTopNOverRange { topNPanels += 1 }
            for expr in panel.expressions {
                let ranges = rangeSelectors(in: expr)
                let takesRate = expr.contains("rate(") || expr.contains("increase(")
                if takesRate { #expect(!ranges.isEmpty, "'\(panel.title)': \(expr)") }
                for range in ranges {
                    if panel.isTopNOverRange {
                        #expect(range == "$__range" || range == "$__rate_interval", "'\(panel.title)': [\(range)] in \(expr)")
                    } else {
                        #expect(range == "$__rate_interval", "'\(panel.title)' uses [\(range)]: \(expr)")
                    }
                }
            }
        }
        #expect(topNPanels >= 1, "expected a top-N panel over the selected time range")
    }

    @Test("every query filters on instance=~\"$instance\"")
    func instanceFilters() throws {
        for panel in try Dashboard().dataPanels {
            for expr in panel.expressions {
                #expect(expr.contains(Self.instanceFilter), "'\(panel.title)': \(expr)")
                for block in labelMatcherBlocks(in: expr) {
                    #expect(block.contains(Self.instanceFilter), "'\(panel.title)': selector {\(block)} in \(expr)")
                }
            }
        }
    }

    @Test("every exported family has a panel, with throughput, top clients, top services and the drop ratio")
    func coverage() throws {
        let dashboard = try Dashboard()
        let panels = dashboard.dataPanels
        let all = panels.flatMap(\.expressions).joined(separator: "\n")
        for metric in [
            "trafficmon_bytes_total", "trafficmon_packets_total", "trafficmon_window_client_bytes",
            "trafficmon_service_bytes_total", "trafficmon_window_service_bytes", "trafficmon_non_ip_packets_total",
            "trafficmon_malformed_packets_total", "trafficmon_capture_dropped_packets_total",
            "trafficmon_capture_received_packets_total", "trafficmon_late_packets_total",
            "trafficmon_windows_closed_total", "trafficmon_build_info", "process_resident_memory_bytes",
            "process_cpu_seconds_total", "up{", "trafficmon_client_bytes_total", "trafficmon_server_bytes_total",
            "trafficmon_window_server_bytes", "trafficmon_window_servers", "trafficmon_party_series",
            "trafficmon_party_series_refused_total", "trafficmon_capture_oversized_frames_total",
            "trafficmon_tcp_packets_total", "trafficmon_packet_size_bytes_bucket", "trafficmon_packet_size_bytes_sum",
            "trafficmon_packet_size_bytes_count", "trafficmon_dns_queries_total", "trafficmon_dns_responses_total",
            "trafficmon_dns_malformed_total", "trafficmon_dns_cut_total", "trafficmon_window_client_syn_services",
            "trafficmon_flow_records_total", "trafficmon_flow_datagrams_total", "trafficmon_flow_decode_errors_total",
            "trafficmon_flow_sequence_gaps_total", "trafficmon_flow_missing_template_total",
            "trafficmon_flow_receive_errors_total", "trafficmon_flow_exporter_last_seen_timestamp_seconds",
            "trafficmon_flow_sampling_rate", "trafficmon_window_sampled",
        ] {
            #expect(all.contains(metric), "no panel queries \(metric)")
        }
        // Flow inputs by exporter.
        #expect(panels.contains { $0.expressions.contains { $0.contains("sum by (instance, source, exporter) (rate(trafficmon_flow_records_total{") } })
        // Throughput in bits/s, in and out.
        let throughput = panels.filter { $0.unit == "bps" && $0.expressions.contains { $0.contains("trafficmon_bytes_total") } }
        #expect(throughput.contains { p in p.expressions.contains { $0.contains(#"direction="in""#) } && p.expressions.contains { $0.contains(#"direction="out""#) } })
        // Packets per second, in and out.
        #expect(panels.contains { $0.unit == "pps" && $0.expressions.contains { $0.contains("trafficmon_packets_total") } })
        // Top clients of the last window as a bar gauge or table.
        #expect(panels.contains { ["bargauge", "table"].contains($0.type) && $0.expressions.contains { $0.contains("topk(") && $0.contains("trafficmon_window_client_bytes") } })
        // Top services.
        #expect(panels.contains { ["bargauge", "table"].contains($0.type) && $0.expressions.contains { $0.contains("topk(") && $0.contains("service") } })
        // The drop ratio as a percentage.
        #expect(panels.contains { $0.unit == "percentunit" && $0.expressions.contains { $0.contains("trafficmon_capture_dropped_packets_total") } })
    }

    /// Per party, both sides alike: bits/s over time from `rate()` of the sticky counters
    /// (what a burst between two scrapes still reaches), a top-N over the selected time
    /// range from the same counters, and the last window's top from the per-window gauges.
    @Test("clients and servers: rate() of the sticky counters, top-N over the range, the last window", arguments: ["client", "server"])
    func partyPanels(side: String) throws {
        let panels = try Dashboard().dataPanels
        let counter = "trafficmon_\(side)_bytes_total{"
        let rated = panels.filter { panel in
            panel.type == "timeseries" && panel.unit == "bps" && panel.expressions.contains {
                $0.hasPrefix("topk(") && $0.contains("sum by (\(side)) (rate(\(counter)") && $0.contains("[$__rate_interval]") && $0.hasSuffix("* 8)")
            }
        }
        #expect(rated.count == 1, "no single bits/s panel over rate(\(counter)...): \(rated.map(\.title))")
        #expect(panels.contains { $0.isTopNOverRange && $0.unit == "bytes" && $0.expressions.contains { $0.contains("increase(\(counter)") && $0.contains("[$__range]") } },
                "no top-N \(side) panel over the selected time range")
        let gauge = "trafficmon_window_\(side)_bytes{"
        #expect(panels.contains { $0.type == "bargauge" && $0.unit == "bps" && $0.expressions.contains { $0.contains("topk(") && $0.contains(gauge) && $0.contains("\(side)!=\"other\"") } },
                "no last-window \(side) bar gauge")
        #expect(panels.contains { $0.type == "table" && $0.unit == "bytes" && $0.expressions.contains { $0.contains(gauge) } }, "no last-window \(side) table")
        // The counter panels say where their figures come from and what they do not hold.
        for panel in rated {
            #expect(panel.description.contains("trafficmon_\(side)_bytes_total") && panel.description.contains("--party-ttl"),
                    "'\(panel.title)': \(panel.description)")
        }
    }

    /// The Protocols row: TCP segments by flags and direction, the SYN-ACK/SYN ratio, the
    /// size histogram as a heatmap and as a distribution, DNS by code and by type, the
    /// SERVFAIL and error shares, and the SYN clients by services reached.
    @Test("Protocols row: TCP flags, SYN-ACK/SYN, sizes, DNS codes and types, failure shares, SYN clients")
    func protocolPanels() throws {
        let panels = try Dashboard().dataPanels(inRow: "Protocols")
        func find(_ what: String, _ match: (Panel) -> Bool) -> Panel? {
            let found = panels.filter(match)
            #expect(found.count == 1, "\(found.count) panels for \(what) in the Protocols row: \(found.map(\.title))")
            return found.first
        }
        func queries(_ panel: Panel, _ needles: String...) -> Bool {
            panel.expressions.contains { expr in needles.allSatisfy { expr.contains($0) } }
        }
        _ = find("TCP segments by flags and direction") {
            $0.type == "timeseries" && $0.unit == "pps" && queries($0, "sum by (flags, direction) (rate(trafficmon_tcp_packets_total{")
        }
        _ = find("SYN-ACK per SYN") {
            $0.unit == "percentunit" && queries($0, #"flags="synack""#, "/", #"flags="syn""#, "> 0)")
        }
        let heatmap = find("the size histogram over time") { $0.type == "heatmap" && queries($0, "sum by (le) (rate(trafficmon_packet_size_bytes_bucket{") }
        let distribution = find("the size distribution") { $0.type == "bargauge" && queries($0, "sum by (le) (rate(trafficmon_packet_size_bytes_bucket{") }
        for panel in [heatmap, distribution].compactMap({ $0 }) {
            // Grafana turns cumulative buckets into per-bucket counts only for this format.
            #expect(panel.targets.allSatisfy { $0["format"] as? String == "heatmap" && $0["legendFormat"] as? String == "{{le}}" }, "'\(panel.title)'")
        }
        _ = find("the average packet size") {
            $0.unit == "bytes" && queries($0, "trafficmon_packet_size_bytes_sum{", "/", "trafficmon_packet_size_bytes_count{")
        }
        _ = find("DNS responses by code") { $0.unit == "pps" && queries($0, "sum by (rcode) (rate(trafficmon_dns_responses_total{") }
        _ = find("DNS queries by type") { $0.unit == "pps" && queries($0, "sum by (qtype) (rate(trafficmon_dns_queries_total{") }
        let shares = find("the SERVFAIL and error shares") { $0.unit == "percentunit" && queries($0, #"rcode="SERVFAIL""#) }
        if let shares {
            // The same error codes as the DnsErrorsHigh alert.
            let alerts = try Repo.text("grafana/prometheus/alerts.yml")
            let errorCodes = #"rcode=~"FORMERR|SERVFAIL|NOTIMP|REFUSED|other""#
            #expect(queries(shares, errorCodes) && alerts.contains(errorCodes), "'\(shares.title)': \(shares.expressions)")
        }
        _ = find("unreadable DNS") { queries($0, "trafficmon_dns_malformed_total{") && queries($0, "trafficmon_dns_cut_total{") }
        let synClients = panels.filter { queries($0, "topk(10, max by (", "client) (", "trafficmon_window_client_syn_services{") }
        #expect(synClients.contains { $0.isTopNOverRange && queries($0, "max_over_time(", "[$__range]") }, "no top SYN clients over the selected time range")
        #expect(synClients.contains { $0.type == "bargauge" && !queries($0, "[") }, "no SYN clients of the last window")
    }

    @Test("a bits/s panel over a bytes metric multiplies by 8")
    func bitsAreBytesTimesEight() throws {
        for panel in try Dashboard().dataPanels where panel.unit == "bps" {
            for expr in panel.expressions where expr.contains("_bytes") {
                #expect(expr.contains("* 8"), "'\(panel.title)': \(expr)")
            }
        }
    }

    @Test("every metric the dashboard and rules name is one trafficmon exports")
    func metricNamesExist() throws {
        // The names as written in the server's sources (TrafficMetrics.swift, ProcessMetrics.swift).
        let serverSources = Repo.root.appendingPathComponent("Sources/TrafficServer")
        let exported = try FileManager.default.contentsOfDirectory(atPath: serverSources.path)
            .filter { $0.hasSuffix(".swift") }
            .map { try String(contentsOf: serverSources.appendingPathComponent($0), encoding: .utf8) }
            .joined(separator: "\n")
        let known = trafficmonMetricNames(in: exported)
        #expect(known.contains("trafficmon_bytes_total"))
        var used = trafficmonMetricNames(in: try Dashboard().dataPanels.flatMap(\.expressions).joined(separator: "\n"))
        for file in ["grafana/prometheus/alerts.yml", "grafana/prometheus/recording_rules.yml"] {
            // Only the expressions: recording rule names (level:metric:ops) are not exported names.
            let exprs = try Repo.text(file).split(separator: "\n").filter { !$0.contains("record:") && !$0.trimmingCharacters(in: .whitespaces).hasPrefix("#") }
            used.formUnion(trafficmonMetricNames(in: exprs.joined(separator: "\n")))
        }
        // A histogram's series are its name with _bucket, _sum and _count.
        func isExported(_ name: String) -> Bool {
            known.contains(name) || ["_bucket", "_sum", "_count"].contains { name.hasSuffix($0) && known.contains(String(name.dropLast($0.count))) }
        }
        for name in used.sorted() {
            #expect(isExported(name), "\(name) is not a metric trafficmon exports")
        }
    }

    @Test("provisioning files follow Grafana's layout")
    func provisioning() throws {
        let datasource = try Repo.text("grafana/provisioning/datasources/prometheus.yaml")
        #expect(datasource.contains("apiVersion: 1"))
        #expect(datasource.contains("datasources:"))
        #expect(datasource.contains("type: prometheus"))
        #expect(datasource.contains("isDefault: true"))
        let dashboards = try Repo.text("grafana/provisioning/dashboards/trafficmon.yaml")
        #expect(dashboards.contains("apiVersion: 1"))
        #expect(dashboards.contains("providers:"))
        #expect(dashboards.contains("type: file"))
        #expect(dashboards.contains("path: /var/lib/grafana/dashboards"))
        let prometheus = try Repo.text("grafana/prometheus/prometheus.yml")
        #expect(prometheus.contains("job_name: trafficmon"))
        #expect(prometheus.contains("'127.0.0.1:9000'"))
        #expect(prometheus.contains("- alerts.yml") && prometheus.contains("- recording_rules.yml"))
    }
}
