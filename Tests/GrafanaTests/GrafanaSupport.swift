import Foundation
import Testing
import TrafficTestSupport

/// Where the files under test live: the package root, found from this file's path
/// (Tests/GrafanaTests/GrafanaSupport.swift -> ../../).
enum Repo {
    static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static var grafana: URL { root.appendingPathComponent("grafana") }
    static var dashboard: URL { grafana.appendingPathComponent("dashboards/trafficmon.json") }
    static var prometheusDirectory: URL { grafana.appendingPathComponent("prometheus") }

    static func text(_ relativePath: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(relativePath), encoding: .utf8)
    }
}

struct GrafanaTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

// MARK: - The dashboard, read as plain JSON

/// The dashboard JSON model, walked the way Grafana reads it (panels, and panels nested
/// in collapsed rows).
struct Dashboard {
    let json: [String: Any]

    init(url: URL = Repo.dashboard) throws {
        let data = try Data(contentsOf: url)
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw GrafanaTestError("\(url.path) is not a JSON object")
        }
        json = object
    }

    /// Every panel, rows included, in document order.
    var allPanels: [[String: Any]] {
        func walk(_ list: [[String: Any]]) -> [[String: Any]] {
            list.flatMap { panel in [panel] + walk(panel["panels"] as? [[String: Any]] ?? []) }
        }
        return walk(json["panels"] as? [[String: Any]] ?? [])
    }

    /// Every panel that shows data (not a row).
    var dataPanels: [Panel] {
        allPanels.filter { ($0["type"] as? String) != "row" }.map(Panel.init)
    }

    /// The data panels of the row titled `title`: those after it up to the next row, or
    /// those nested in it when it is collapsed.
    func dataPanels(inRow title: String) -> [Panel] {
        var row: String?
        var found: [Panel] = []
        for panel in json["panels"] as? [[String: Any]] ?? [] {
            if (panel["type"] as? String) == "row" {
                row = panel["title"] as? String
                if row == title { found += (panel["panels"] as? [[String: Any]] ?? []).map(Panel.init) }
            } else if row == title {
                found.append(Panel(panel))
            }
        }
        return found
    }

    var rowTitles: [String] {
        allPanels.filter { ($0["type"] as? String) == "row" }.compactMap { $0["title"] as? String }
    }

    var variables: [[String: Any]] {
        (json["templating"] as? [String: Any])?["list"] as? [[String: Any]] ?? []
    }

    func variable(_ name: String) -> [String: Any]? {
        variables.first { ($0["name"] as? String) == name }
    }
}

struct Panel {
    let json: [String: Any]

    init(_ json: [String: Any]) { self.json = json }

    var id: Int { json["id"] as? Int ?? -1 }
    var title: String { json["title"] as? String ?? "<untitled>" }
    var type: String { json["type"] as? String ?? "" }
    var description: String { json["description"] as? String ?? "" }
    var unit: String? {
        ((json["fieldConfig"] as? [String: Any])?["defaults"] as? [String: Any])?["unit"] as? String
    }
    var targets: [[String: Any]] { json["targets"] as? [[String: Any]] ?? [] }
    var expressions: [String] { targets.compactMap { $0["expr"] as? String } }

    /// A deliberate top-N panel over the dashboard range: its description says so and
    /// its expressions are `topk(...)`.
    var isTopNOverRange: Bool {
        description.lowercased().contains("selected time range")
            && !expressions.isEmpty
            && expressions.allSatisfy { $0.trimmingCharacters(in: .whitespaces).hasPrefix("topk(") }
    }

    /// The datasource uid of a panel or target, whether written as an object or a string.
    static func datasourceUID(_ value: Any?) -> String? {
        if let s = value as? String { return s }
        return (value as? [String: Any])?["uid"] as? String
    }
}

/// Range selectors (`[...]`) of a PromQL expression, e.g. `$__rate_interval`.
func rangeSelectors(in expr: String) -> [String] {
    matches(of: #"\[([^\]]*)\]"#, in: expr)
}

/// Label matcher blocks (`{...}`) of a PromQL expression.
func labelMatcherBlocks(in expr: String) -> [String] {
    matches(of: #"\{([^}]*)\}"#, in: expr)
}

/// Metric-like identifiers of the families trafficmon exports, found in a text.
func trafficmonMetricNames(in text: String) -> Set<String> {
    Set(matches(of: #"(?<![A-Za-z0-9_:])((?:trafficmon|process)_[a-z0-9_]+)"#, in: text))
}

func matches(of pattern: String, in text: String) -> [String] {
    guard let regex = try? NSRegularExpression(pattern: pattern) else { return [] }
    let range = NSRange(text.startIndex..., in: text)
    return regex.matches(in: text, range: range).compactMap { match in
        Range(match.range(at: 1), in: text).map { String(text[$0]) }
    }
}

// MARK: - Programs

/// An executable on PATH (or nil).
func findExecutable(_ name: String, preferred: String? = nil) -> URL? {
    if let preferred, FileManager.default.isExecutableFile(atPath: preferred) { return URL(fileURLWithPath: preferred) }
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
    for directory in path.split(separator: ":") {
        let candidate = "\(directory)/\(name)"
        if FileManager.default.isExecutableFile(atPath: candidate) { return URL(fileURLWithPath: candidate) }
    }
    return nil
}

// MARK: - Prometheus

/// The Prometheus HTTP API of one server.
struct PrometheusAPI: Sendable {
    /// `http://127.0.0.1:PORT`.
    let base: String

    struct Response {
        var status: String
        var resultType: String
        var result: [[String: Any]]
        var raw: String
    }

    /// POST for the query endpoints, GET (fields in the URL) for those that only take GET.
    func call(_ path: String, _ fields: [(String, String)], method: String = "POST") async throws -> Response {
        let reply: TestHTTP.Response
        if method == "GET" {
            let query = String(decoding: Self.form(fields), as: UTF8.self)
            reply = try await TestHTTP.get("\(base)/\(path)" + (query.isEmpty ? "" : "?" + query))
        } else {
            reply = try await TestHTTP.request(
                method, "\(base)/\(path)", headers: ["Content-Type": "application/x-www-form-urlencoded"], body: Self.form(fields))
        }
        guard let object = try? JSONSerialization.jsonObject(with: reply.body) as? [String: Any] else {
            throw GrafanaTestError("\(path): HTTP \(reply.status), not JSON: \(reply.text.prefix(300))")
        }
        let data = object["data"] as? [String: Any]
        let result: [[String: Any]]
        if let list = data?["result"] as? [[String: Any]] {
            result = list
        } else if let list = object["data"] as? [Any] {
            // /api/v1/series and /api/v1/label/.../values answer a bare list.
            result = list.map { ($0 as? [String: Any]) ?? ["value": $0] }
        } else {
            result = []
        }
        return Response(
            status: object["status"] as? String ?? "?", resultType: data?["resultType"] as? String ?? "",
            result: result, raw: reply.text)
    }

    /// `application/x-www-form-urlencoded`, escaping everything but unreserved characters
    /// (PromQL's `+` must not turn into a space).
    static func form(_ fields: [(String, String)]) -> Data {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let text = fields.map { key, value in
            "\(key.addingPercentEncoding(withAllowedCharacters: allowed) ?? key)=\(value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value)"
        }.joined(separator: "&")
        return Data(text.utf8)
    }

    func query(_ expr: String) async throws -> Response {
        try await call("api/v1/query", [("query", expr)])
    }

    /// An instant query evaluated at `time` (Unix seconds; Prometheus keeps milliseconds).
    func query(_ expr: String, at time: Double) async throws -> Response {
        try await call("api/v1/query", [("query", expr), ("time", String(format: "%.3f", time))])
    }

    /// The samples of a range-vector query (`metric{...}[3m]`) as (time, value) pairs, per series.
    func samples(_ expr: String) async throws -> [[(time: Double, value: Double)]] {
        try await query(expr).result.map { series in
            ((series["values"] as? [[Any]]) ?? []).compactMap { pair in
                guard pair.count == 2, let time = (pair[0] as? NSNumber)?.doubleValue,
                      let text = pair[1] as? String, let value = Double(text) else { return nil }
                return (time, value)
            }
        }
    }

    /// The values of an instant-vector answer, by the value of `label` in each series.
    static func values(_ response: Response, by label: String) -> [String: Double] {
        var out: [String: Double] = [:]
        for sample in response.result {
            guard let key = (sample["metric"] as? [String: Any])?[label] as? String,
                  let pair = sample["value"] as? [Any], pair.count == 2,
                  let text = pair[1] as? String, let value = Double(text) else { continue }
            out[key] = value
        }
        return out
    }

    func queryRange(_ expr: String, seconds: Int, step: Int = 1) async throws -> Response {
        let end = Date().timeIntervalSince1970
        return try await call("api/v1/query_range", [
            ("query", expr), ("start", String(format: "%.3f", end - Double(seconds))),
            ("end", String(format: "%.3f", end)), ("step", "\(step)"),
        ])
    }

    /// `{instance: value}` of an instant vector query.
    func valuesByInstance(_ expr: String) async throws -> [String: Double] {
        Self.values(try await query(expr), by: "instance")
    }
}

// MARK: - Prometheus and trafficmon processes

/// The shipped prometheus.yml with `scrapeInterval` for scrapes and rule evaluations, the
/// test's targets and absolute rule paths.
func shippedPrometheusConfig(targets: [String], prometheusAddress: String, scrapeInterval: String) throws -> String {
    var text = try Repo.text("grafana/prometheus/prometheus.yml")
    func replace(_ old: String, _ new: String) throws {
        guard text.contains(old) else { throw GrafanaTestError("prometheus.yml has no '\(old)' to adapt for the test") }
        text = text.replacingOccurrences(of: old, with: new)
    }
    try replace("scrape_interval: 15s", "scrape_interval: \(scrapeInterval)")
    try replace("evaluation_interval: 15s", "evaluation_interval: \(scrapeInterval)")
    try replace("- targets: ['127.0.0.1:9000']", "- targets: [\(targets.map { "'\($0)'" }.joined(separator: ", "))]")
    try replace("- targets: ['127.0.0.1:9090']", "- targets: ['\(prometheusAddress)']")
    let rules = Repo.prometheusDirectory
    try replace("  - alerts.yml", "  - \(rules.appendingPathComponent("alerts.yml").path)")
    try replace("  - recording_rules.yml", "  - \(rules.appendingPathComponent("recording_rules.yml").path)")
    return text
}

/// Starts Debian's Prometheus on a free port of 127.0.0.1 with the shipped configuration
/// (scraping `targets` every `scrapeInterval`, the shipped rules loaded), its data in `dir`.
func startPrometheus(targets: [String], scrapeInterval: String, in dir: URL) throws -> (ServerProcess, PrometheusAPI) {
    let binary = try #require(
        findExecutable("prometheus", preferred: "/usr/bin/prometheus"), "prometheus not found: install Debian's prometheus package")
    let port = try TestProcess.freePort()
    let configURL = dir.appendingPathComponent("prometheus.yml")
    try shippedPrometheusConfig(targets: targets, prometheusAddress: "127.0.0.1:\(port)", scrapeInterval: scrapeInterval)
        .write(to: configURL, atomically: true, encoding: .utf8)
    let process = try ServerProcess(
        name: "prometheus", executable: binary,
        arguments: [
            "--config.file=\(configURL.path)",
            "--storage.tsdb.path=\(dir.appendingPathComponent("tsdb").path)",
            "--web.listen-address=127.0.0.1:\(port)",
            "--log.level=warn",
        ],
        port: port, in: dir)
    return (process, PrometheusAPI(base: process.baseURL))
}
