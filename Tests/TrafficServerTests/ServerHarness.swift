import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Testing
import TrafficCapture
import TrafficCore
import TrafficServer
import TrafficTestSupport

/// Builds in-process `TrafficServer`s over capture files the tests write, and waits
/// for their replays.
enum HTTPHarness {
    static let nanos: Int64 = 1_000_000_000

    /// `--local-net` for `SyntheticTraffic`'s servers.
    static func localNetworks() throws -> LocalNetworks {
        LocalNetworks(try SyntheticTraffic.localNetworks.map { try NetworkPrefix(parsing: $0) })
    }

    static var quietLogger: Logger {
        var logger = Logger(label: "trafficmon-test")
        logger.logLevel = .warning
        return logger
    }

    /// A server replaying `capture`; `configure` changes its settings (limits, listen
    /// address, allowed hosts), `options` its store and tokens.
    static func server(
        capture: URL, top: Int = 50, windowLength: Int64 = 5_000_000_000, maxClients: Int = 100_000,
        historySize: Int = 720, enableDebugInject: Bool = false, options: TrafficServer.Options = .init(),
        configure: (inout ServerConfiguration) -> Void = { _ in }
    ) async throws -> TrafficServer {
        let aggregation = WindowAggregator.Configuration(
            windowLength: windowLength, localNetworks: try localNetworks(), maxClients: maxClients, top: top)
        var settings = configuration(top: top, historySize: historySize, enableDebugInject: enableDebugInject)
        configure(&settings)
        return try await TrafficServer(
            configuration: settings, source: try PacketSource.openFile(capture.path), aggregation: aggregation, options: options,
            logger: quietLogger)
    }

    /// The server settings of the test servers (version 9.9.9-test).
    static func configuration(top: Int, historySize: Int, enableDebugInject: Bool) -> ServerConfiguration {
        var configuration = ServerConfiguration()
        configuration.top = top
        configuration.historySize = historySize
        configuration.enableDebugInject = enableDebugInject
        configuration.version = "9.9.9-test"
        return configuration
    }

    /// Writes `traffic` as a pcap file in `directory`.
    static func write(_ traffic: SyntheticTraffic, in directory: URL, name: String = "capture.pcap") throws -> URL {
        let url = directory.appendingPathComponent(name)
        try traffic.pcap().write(to: url)
        return url
    }

    struct Timeout: Error, CustomStringConvertible {
        var what: String
        var description: String { "timed out waiting for \(what)" }
    }

    /// Polls `condition` every 20 ms until it holds or `timeout` passes.
    static func waitUntil(
        _ what: String, timeout: Duration = .seconds(30), _ condition: () async throws -> Bool
    ) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while true {
            if try await condition() { return }
            if clock.now >= deadline { throw Timeout(what: what) }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Waits until the file has been read to its end and `windows` closed windows reached the history.
    static func waitForReplay(_ server: TrafficServer, windows: Int, timeout: Duration = .seconds(60)) async throws {
        try await waitUntil("the replay to finish with \(windows) windows in the history", timeout: timeout) {
            server.state.engine.status == .replayed && server.state.history(limit: 10_000).count >= windows
        }
    }

    // MARK: HTTP helpers

    static func get(_ client: some TestClientProtocol, _ uri: String, headers: HTTPFields = [:]) async throws -> TestResponse {
        try await client.execute(uri: uri, method: .get, headers: headers, body: nil)
    }

    static func text(_ response: TestResponse) -> String {
        String(decoding: response.body.readableBytesView, as: UTF8.self)
    }

    static func bytes(_ response: TestResponse) -> [UInt8] {
        Array(response.body.readableBytesView)
    }

    /// `/metrics` as parsed samples (Prometheus text format).
    static func metrics(_ client: some TestClientProtocol) async throws -> PromExposition {
        let response = try await get(client, "/metrics")
        #expect(response.status == .ok)
        return try PromExposition.parse(text(response))
    }

    struct History: Decodable {
        var windows: [WindowRecord]
    }

    /// `/stats/history?limit=N`, decoded.
    static func history(_ client: some TestClientProtocol, limit: Int = 10_000) async throws -> [WindowRecord] {
        let response = try await get(client, "/stats/history?limit=\(limit)")
        #expect(response.status == .ok)
        return try JSONDecoder().decode(History.self, from: Data(bytes(response))).windows
    }

    /// `/stats/current`, decoded.
    static func current(_ client: some TestClientProtocol) async throws -> WindowRecord {
        let response = try await get(client, "/stats/current")
        #expect(response.status == .ok)
        return try JSONDecoder().decode(WindowRecord.self, from: Data(bytes(response)))
    }

    /// Runs `program` with `input` on stdin; returns status, stdout and stderr.
    static func run(_ program: String, _ arguments: [String], input: Data) throws -> (status: Int32, stdout: Data, stderr: Data) {
        let result = try TestProcess.run(URL(fileURLWithPath: program), arguments, input: input)
        return (result.status, result.stdout, Data(result.stderr.utf8))
    }

    /// The first existing path of `name` on PATH (or the usual system directories).
    static func which(_ name: String) -> String? { TestProcess.which(name) }
}

// MARK: - Prometheus text format

/// One parsed sample: `name{labels} value`.
struct PromSample: Hashable, CustomStringConvertible {
    var name: String
    var labels: [String: String]
    var value: Double

    var description: String {
        "\(name){\(labels.sorted { $0.key < $1.key }.map { "\($0.key)=\"\($0.value)\"" }.joined(separator: ","))} \(value)"
    }
}

/// A small parser for the Prometheus text exposition format (0.0.4) and the
/// OpenMetrics text format: comments, `name{label="value",...} value [timestamp]`,
/// with `\\`, `\"` and `\n` escapes in label values. Throws on any line it cannot read.
struct PromExposition {
    var samples: [PromSample] = []
    /// `# HELP` text per family name, in the order met.
    var help: [String: String] = [:]
    /// `# TYPE` per family name.
    var types: [String: String] = [:]
    /// Family names in the order their `# TYPE` lines appear.
    var typeOrder: [String] = []
    /// PromSample names that appeared before their family's `# TYPE` line.
    var samplesBeforeType: [String] = []
    /// Comment lines other than HELP / TYPE (for example `# EOF`).
    var otherComments: [String] = []
    /// The number of non-comment, non-empty lines.
    var seriesLines = 0

    struct ParseError: Error, CustomStringConvertible {
        var line: String
        var reason: String
        var description: String { "cannot parse metrics line '\(line)': \(reason)" }
    }

    static func parse(_ text: String) throws -> PromExposition {
        var e = PromExposition()
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = String(raw)
            if line.isEmpty { continue }
            if line.hasPrefix("#") {
                let parts = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false).map(String.init)
                if parts.count >= 3 && parts[1] == "HELP" {
                    e.help[parts[2]] = parts.count == 4 ? parts[3] : ""
                } else if parts.count == 4 && parts[1] == "TYPE" {
                    if e.types[parts[2]] != nil { throw ParseError(line: line, reason: "second TYPE line for \(parts[2])") }
                    e.types[parts[2]] = parts[3]
                    e.typeOrder.append(parts[2])
                } else {
                    e.otherComments.append(line)
                }
                continue
            }
            let sample = try parseSample(line)
            e.seriesLines += 1
            if e.family(of: sample.name) == nil { e.samplesBeforeType.append(sample.name) }
            e.samples.append(sample)
        }
        return e
    }

    static func isNameStart(_ c: Character) -> Bool { c == "_" || c == ":" || (c.isASCII && c.isLetter) }
    static func isNameChar(_ c: Character) -> Bool { isNameStart(c) || (c.isASCII && c.isNumber) }

    static func parseSample(_ line: String) throws -> PromSample {
        let chars = Array(line)
        var i = 0
        func fail(_ reason: String) -> ParseError { ParseError(line: line, reason: reason) }
        guard i < chars.count, isNameStart(chars[i]) else { throw fail("no metric name") }
        var name = ""
        while i < chars.count, isNameChar(chars[i]) { name.append(chars[i]); i += 1 }
        var labels: [String: String] = [:]
        if i < chars.count, chars[i] == "{" {
            i += 1
            while true {
                guard i < chars.count else { throw fail("unterminated labels") }
                if chars[i] == "}" { i += 1; break }
                guard isNameStart(chars[i]), chars[i] != ":" else { throw fail("bad label name") }
                var label = ""
                while i < chars.count, isNameChar(chars[i]), chars[i] != ":" { label.append(chars[i]); i += 1 }
                guard i + 1 < chars.count, chars[i] == "=", chars[i + 1] == "\"" else { throw fail("expected =\" after \(label)") }
                i += 2
                var value = ""
                while true {
                    guard i < chars.count else { throw fail("unterminated label value") }
                    let c = chars[i]
                    if c == "\"" { i += 1; break }
                    if c == "\\" {
                        guard i + 1 < chars.count else { throw fail("dangling escape") }
                        switch chars[i + 1] {
                        case "\\": value.append("\\")
                        case "\"": value.append("\"")
                        case "n": value.append("\n")
                        default: throw fail("bad escape \\\(chars[i + 1])")
                        }
                        i += 2
                        continue
                    }
                    value.append(c)
                    i += 1
                }
                guard labels[label] == nil else { throw fail("label \(label) twice") }
                labels[label] = value
                guard i < chars.count else { throw fail("unterminated labels") }
                if chars[i] == "," { i += 1 } else if chars[i] != "}" { throw fail("expected , or }") }
            }
        }
        guard i < chars.count, chars[i] == " " else { throw fail("expected a space before the value") }
        let rest = String(chars[(i + 1)...]).split(separator: " ", omittingEmptySubsequences: false)
        guard (1...2).contains(rest.count) else { throw fail("expected a value and an optional timestamp") }
        guard let value = parseValue(String(rest[0])) else { throw fail("bad value '\(rest[0])'") }
        if rest.count == 2 { guard Int64(rest[1]) != nil || Double(rest[1]) != nil else { throw fail("bad timestamp") } }
        return PromSample(name: name, labels: labels, value: value)
    }

    static func parseValue(_ text: String) -> Double? {
        switch text {
        case "+Inf": return .infinity
        case "-Inf": return -.infinity
        case "NaN": return .nan
        default:
            // Only plain decimal / exponent forms (Swift's Double(String) also takes "inf", "0x1p3").
            guard text.allSatisfy({ $0.isASCII && ($0.isNumber || "+-.eE".contains($0)) }) else { return nil }
            return Double(text)
        }
    }

    /// The family a sample name belongs to: its own name (text format 0.0.4), or the
    /// name without `_total` for an OpenMetrics counter.
    func family(of sampleName: String) -> String? {
        if types[sampleName] != nil { return sampleName }
        if sampleName.hasSuffix("_total") {
            let base = String(sampleName.dropLast(6))
            if types[base] == "counter" { return base }
        }
        return nil
    }

    /// Samples named `name` whose labels include `matching`.
    func samples(_ name: String, _ matching: [String: String] = [:]) -> [PromSample] {
        samples.filter { s in s.name == name && matching.allSatisfy { s.labels[$0.key] == $0.value } }
    }

    /// `sum(name{matching})`.
    func sum(_ name: String, _ matching: [String: String] = [:]) -> Double {
        samples(name, matching).reduce(0) { $0 + $1.value }
    }

    /// The single sample `name{matching}`, or nil when there is none or more than one.
    func value(_ name: String, _ matching: [String: String] = [:]) -> Double? {
        let found = samples(name, matching)
        return found.count == 1 ? found[0].value : nil
    }

    /// `sum by (label) (name)`.
    func sum(_ name: String, by label: String) -> [String: Double] {
        var out: [String: Double] = [:]
        for s in samples(name) { out[s.labels[label] ?? "", default: 0] += s.value }
        return out
    }

    /// Distinct values of `label` among the samples of `name`.
    func labelValues(_ name: String, _ label: String) -> Set<String> {
        Set(samples(name).compactMap { $0.labels[label] })
    }
}

extension Double {
    /// The value as an exact unsigned integer (nil when it is not one).
    var promExactUInt: UInt64? {
        guard self >= 0, self == rounded(), self < 1.8e19 else { return nil }
        return UInt64(self)
    }
}
