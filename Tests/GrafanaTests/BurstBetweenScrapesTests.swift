import Foundation
import Testing
import TrafficCore
import TrafficTestSupport

/// A real Prometheus scraping a real `trafficmon serve` every 15 s (the shipped
/// prometheus.yml as it is) with 5 s windows: a client's burst that fits in one window
/// between two scrapes, followed by a quieter window before the next scrape, is never in
/// a last-window gauge any scrape sees, and is whole in the sticky counters.
@Suite("Live Prometheus: a burst between two scrapes")
struct BurstBetweenScrapesTests {
    static let window = 5.0
    static let scrapeInterval = 15.0
    /// A window closes this long after its end (the engine's 400 ms grace, its 100 ms poll).
    static let closeDelay = 0.5
    /// Kept between a scrape and the closes around it (a scrape late on a busy machine,
    /// an inject that takes a moment).
    static let margin = 1.5

    static let burstClient = "192.0.2.50"
    static let burstServer = "198.51.100.200"
    static let quietClient = "192.0.2.10"
    static let quietServer = "203.0.113.80"

    /// The start of the burst's window: a multiple of the window length at least `earliest`,
    /// among the next three, whose close falls furthest from the scrapes on both sides:
    /// after the scrape before it, and with the next window closed before the scrape after it.
    static func burstWindow(scrape: Double, earliest: Double) -> (start: Double, before: Double, after: Double) {
        let first = (earliest / window).rounded(.up) * window
        let candidates = (0..<3).map { k -> (start: Double, before: Double, after: Double) in
            let start = first + Double(k) * window
            let close = start + window + closeDelay
            let previous = scrape + ((close - scrape) / scrapeInterval).rounded(.down) * scrapeInterval
            return (start, close - previous, previous + scrapeInterval - (close + window))
        }
        return candidates.max { min($0.before, $0.after) < min($1.before, $1.after) } ?? candidates[0]
    }

    static func sleep(until time: Double) async throws {
        let wait = time - Date().timeIntervalSince1970
        if wait > 0 { try await Task.sleep(for: .milliseconds(Int(wait * 1000))) }
    }

    static func inject(_ address: String, client: String, server: String, direction: String, size: Int) async throws -> Int {
        let body = #"{"client_ip":"\#(client)","server_ip":"\#(server)","direction":"\#(direction)","proto":"TCP/443","size":\#(size)}"#
        return try await TestHTTP.request(
            "POST", "http://\(address)/debug/inject", headers: ["Content-Type": "application/json"], body: Data(body.utf8)).status
    }

    @Test("a burst between two 15 s scrapes: whole in increase() of the sticky counters, absent from every last-window gauge",
          .timeLimit(.minutes(TestTimeLimit.minutes)))
    func burstIsCountedThoughNoScrapeSawItsWindow() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-burst")
        defer { try? FileManager.default.removeItem(at: dir) }

        // A small replay, then windows of injects on the wall clock.
        let file = dir.appendingPathComponent("small.pcap")
        try SyntheticTraffic(packets: 300, clients: 20, seconds: 3, seed: 41).pcap().write(to: file)
        let trafficmon = try ServerProcess.serve(["--read", file.path, "--enable-debug-inject", "--window", "5s", "--no-db"], in: dir)
        defer { trafficmon.stop() }
        let address = "127.0.0.1:\(trafficmon.port)"
        _ = try await trafficmon.waitUntilServing("/readyz", timeout: 60)

        let (prometheus, api) = try startPrometheus(targets: [address], scrapeInterval: "15s", in: dir)
        defer { prometheus.stop() }
        _ = try await prometheus.waitUntilServing("/-/ready", timeout: 60)
        var quiet: Task<Void, Never>?
        defer { quiet?.cancel() }

        // A quiet client in every window from now on, so each window closes with traffic
        // and becomes the last window in its turn.
        quiet = Task {
            while !Task.isCancelled {
                _ = try? await Self.inject(address, client: Self.quietClient, server: Self.quietServer, direction: "in", size: 100)
                try? await Task.sleep(for: .milliseconds(1000))
            }
        }

        // The scrape phase: Prometheus scrapes a target every 15 s from a fixed offset.
        var firstScrape = 0.0
        try await prometheus.waitUntil("the first scrape of trafficmon", timeout: 40) {
            let up = try? await api.query(#"timestamp(up{job="trafficmon"})"#)
            firstScrape = up.map { PrometheusAPI.values($0, by: "job")["trafficmon"] ?? 0 } ?? 0
            return firstScrape > 0
        }
        let now = Date().timeIntervalSince1970
        // One window (of the same phase) 15 s before the burst admits the client to the
        // sticky counters with a small packet, so its counters exist at the scrape before
        // the burst and increase() sees them go up.
        let plan = Self.burstWindow(scrape: firstScrape, earliest: now + Self.scrapeInterval + 1)
        #expect(plan.before >= Self.margin && plan.after >= Self.margin, "no window fits between the scrapes: \(plan)")
        let burstStart = plan.start
        let admissionStart = burstStart - Self.scrapeInterval

        try await Self.sleep(until: admissionStart + 1)
        let admitted = try await Self.inject(address, client: Self.burstClient, server: Self.burstServer, direction: "out", size: 100)
        #expect(admitted == 202)

        // The burst: ten packets over the window, all inside it.
        var burstBytes = 0.0
        for k in 0..<10 {
            try await Self.sleep(until: burstStart + 0.3 + Double(k) * 0.45)
            let size = 150_000 + k * 1_000
            let status = try await Self.inject(address, client: Self.burstClient, server: Self.burstServer, direction: "in", size: size)
            #expect(status == 202)
            burstBytes += Double(size)
        }
        let burstEnded = Date().timeIntervalSince1970
        #expect(burstEnded < burstStart + Self.window - 0.2, "the burst ran past its window (ended \(burstEnded - burstStart) s in)")

        // Until the burst is in a scrape (the first after the next window closed).
        let inSeries = #"trafficmon_client_bytes_total{client="\#(Self.burstClient)", direction="in"}"#
        var samples: [(time: Double, value: Double)] = []
        try await prometheus.waitUntil("a scrape holding the burst", timeout: 45) {
            samples = (try? await api.samples(inSeries + "[3m]"))?.first ?? []
            return samples.contains { $0.value > 0 }
        }
        quiet?.cancel()

        // trafficmon's own history: the burst is in one window, the next window holds the
        // quiet client only.
        let history = try JSONDecoder().decode(HistoryReply.self, from: try await trafficmon.get("/stats/history?limit=20").body).windows
        let burstWindow = try #require(history.first { Double($0.start) / 1e9 == burstStart }, "no window starts at the burst")
        let burstRecord = try #require(burstWindow.clients.first { $0.ip.description == Self.burstClient })
        #expect(Double(burstRecord.in.bytes) == burstBytes && burstRecord.out.bytes == 0)
        let next = try #require(history.first { Double($0.start) / 1e9 == burstStart + Self.window }, "no window after the burst")
        #expect(next.clients.map(\.ip.description) == [Self.quietClient])

        // The scrapes around it: 0 before the burst, then all of it.
        let after = try #require(samples.firstIndex { $0.value > 0 })
        #expect(after >= 1, "the client's counter has no sample before the burst: \(samples)")
        let before = samples[max(0, after - 1)], burst = samples[after]
        #expect(before.value == 0 && burst.value == burstBytes, "samples \(samples), burst \(burstBytes)")
        #expect(abs(burst.time - before.time - Self.scrapeInterval) < 0.1, "scrapes \(burst.time - before.time) s apart")
        #expect(before.time < burstStart + Self.window + Self.closeDelay && burst.time > burstStart + 2 * Self.window,
                "scrapes at \(before.time - burstStart) and \(burst.time - burstStart) s from the burst window's start")

        // At that scrape the last window is a quiet one after the burst, and no scrape in
        // the last 2 minutes saw the client or its server in a last-window gauge.
        let lastStart = try await api.query("trafficmon_window_start_timestamp_seconds", at: burst.time)
        let scrapedStart = PrometheusAPI.values(lastStart, by: "job")["trafficmon"] ?? 0
        #expect(scrapedStart >= burstStart + Self.window, "the scrape after the burst shows the window of \(scrapedStart), the burst's is \(burstStart)")
        for gauge in [
            #"trafficmon_window_client_bytes{client="\#(Self.burstClient)"}"#, #"trafficmon_window_server_bytes{server="\#(Self.burstServer)"}"#,
        ] {
            let seen = try await api.query("max_over_time(\(gauge)[2m])", at: burst.time)
            #expect(seen.status == "success" && seen.result.isEmpty, "\(gauge) was scraped: \(seen.raw.prefix(300))")
        }
        let quietSeen = try await api.query(#"max_over_time(trafficmon_window_client_bytes{client="\#(Self.quietClient)"}[2m])"#, at: burst.time)
        #expect(!quietSeen.result.isEmpty, "the quiet client was never in a scraped last window either")

        // increase() over the sticky counters, at the scrape that holds the burst: exactly
        // its bytes, for the client and for its server (their counters start at 0 in that
        // direction, so Prometheus extrapolates nothing).
        for (family, label, party) in [
            ("trafficmon_client_bytes_total", "client", Self.burstClient), ("trafficmon_server_bytes_total", "server", Self.burstServer),
        ] {
            let increase = try await api.query(#"sum by (\#(label)) (increase(\#(family){\#(label)="\#(party)"}[1m]))"#, at: burst.time)
            #expect(PrometheusAPI.values(increase, by: label)[party] == burstBytes, "\(family): \(increase.raw.prefix(300))")
        }
        // Between scrapes, Prometheus extrapolates to the end of the range:
        // (scrape interval + time since the scrape) / scrape interval of the increase.
        let between = burst.time + 7.5
        let extrapolated = try await api.query(
            #"sum by (client) (increase(trafficmon_client_bytes_total{client="\#(Self.burstClient)"}[1m]))"#, at: between)
        let expected = burstBytes * (burst.time - before.time + 7.5) / (burst.time - before.time)
        let value = PrometheusAPI.values(extrapolated, by: "client")[Self.burstClient] ?? 0
        #expect(abs(value - expected) <= 1e-6 * expected, "increase() at 7.5 s past the scrape: \(value), expected \(expected)")

        // The shipped ClientTrafficHigh measures the burst too (its threshold aside): over
        // 2 minutes, bits/s of the burst's bytes.
        let alerts = try Repo.text("grafana/prometheus/alerts.yml")
        let measure = try #require(Self.alertMeasure("ClientTrafficHigh", in: alerts))
        let measured = try await api.query(measure, at: burst.time)
        let bits = PrometheusAPI.values(measured, by: "client")[Self.burstClient] ?? 0
        #expect(abs(bits - burstBytes * 8 / 120) <= 1e-6 * bits, "ClientTrafficHigh's measure \(bits), burst \(burstBytes * 8 / 120) bit/s")
        #expect(trafficmon.isRunning, "trafficmon exited:\n\(trafficmon.stderrTail)")
    }

    /// An alert's expression without its threshold: what it compares.
    static func alertMeasure(_ name: String, in rules: String) -> String? {
        guard let start = rules.range(of: "- alert: \(name)\n"), let expr = rules.range(of: "expr: |\n", range: start.upperBound..<rules.endIndex),
              let threshold = rules.range(of: "\n            > ", range: expr.upperBound..<rules.endIndex) else { return nil }
        return String(rules[expr.upperBound..<threshold.lowerBound])
    }

    struct HistoryReply: Decodable {
        var windows: [WindowRecord]
    }
}
