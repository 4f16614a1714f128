import Foundation
import Testing
import TrafficCore
import TrafficTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The live page in a real browser: `trafficmon serve --read` on a generated capture, `/`
/// loaded in headless Chromium (Debian's `chromium`, which scripts/test installs), the DOM
/// read back and compared with what `/stats/history` says.
///
/// Screenshots go to the test's folder, which is kept (its path is printed); with
/// `TRAFFICMON_SCREENSHOT_DIR=DIR` they go to DIR instead (README's docs/live-page.png
/// comes from `scripts/screenshot-page`).
@Suite(.serialized) struct LivePageBrowserTests {
    static let hasBrowser = HeadlessChromium.executable != nil
    /// scripts/test (and so CI) sets TRAFFICMON_REQUIRE_BROWSER=1: there a missing
    /// Chromium fails these tests instead of skipping them.
    static let browserRequired = ProcessInfo.processInfo.environment["TRAFFICMON_REQUIRE_BROWSER"] == "1"
    static let runs = hasBrowser || browserRequired

    struct History: Decodable {
        var windows: [WindowRecord]
    }

    /// What the tests read off the page.
    struct PageState: Decodable, CustomStringConvertible {
        var connection: String
        var windowStart: String?
        var totalBytes: String
        var totalPackets: String
        var totalText: String
        var topIP: String?
        var topCellText: String?
        var clientRows: Int
        var serviceRows: Int
        var topService: String?
        var topServiceBytes: String?
        var received: String
        var chartPaths: Int
        var chartPathData: [String]
        var axisLabels: [String]

        var description: String {
            "connection=\(connection) start=\(windowStart ?? "-") total=\(totalBytes)/\(totalPackets) '\(totalText)' top=\(topIP ?? "-") rows=\(clientRows)"
        }

        static let script = """
            (() => {
              const q = (s) => document.querySelector(s);
              const first = q('#clients-table tbody tr[data-ip]');
              return {
                connection: q('#connection').dataset.state,
                windowStart: q('#last-window').dataset.start || null,
                totalBytes: q('#window-total').dataset.bytes,
                totalPackets: q('#window-total').dataset.packets,
                totalText: q('#window-total').textContent,
                topIP: first ? first.dataset.ip : null,
                topCellText: first ? first.cells[0].textContent : null,
                clientRows: document.querySelectorAll('#clients-table tbody tr[data-ip]').length,
                serviceRows: document.querySelectorAll('#services-table tbody tr[data-service]').length,
                topService: q('#services-table tbody tr[data-service]')?.dataset.service ?? null,
                topServiceBytes: q('#services-table tbody tr[data-service]')?.dataset.bytes ?? null,
                received: q('#h-received').textContent,
                chartPaths: document.querySelectorAll('#chart-bits path.series').length,
                chartPathData: [...document.querySelectorAll('.chart path')].map((p) => p.getAttribute('d')),
                axisLabels: [...document.querySelectorAll('.chart .axis text')].map((t) => t.textContent),
              };
            })()
            """
    }

    static func read(_ browser: HeadlessChromium) async throws -> PageState {
        try await browser.evaluate(PageState.script)
    }

    static func grouped(_ n: UInt64) -> String {
        let formatter = NumberFormatter()
        formatter.locale = Locale(identifier: "en_US")
        formatter.numberStyle = .decimal
        return formatter.string(from: NSNumber(value: n)) ?? String(n)
    }

    /// A folder for one test's files; screenshots stay, the rest is removed by `cleanUp`.
    static func folder(_ name: String) throws -> (work: URL, screenshots: URL) {
        let work = try TestProcess.temporaryDirectory(name)
        if let dir = ProcessInfo.processInfo.environment["TRAFFICMON_SCREENSHOT_DIR"], !dir.isEmpty {
            let screenshots = URL(fileURLWithPath: dir)
            try FileManager.default.createDirectory(at: screenshots, withIntermediateDirectories: true)
            return (work, screenshots)
        }
        return (work, work)
    }

    static func cleanUp(_ work: URL, keeping screenshots: URL) {
        let items = (try? FileManager.default.contentsOfDirectory(at: work, includingPropertiesForKeys: nil)) ?? []
        for item in items where item.pathExtension != "png" { try? FileManager.default.removeItem(at: item) }
        if screenshots != work { try? FileManager.default.removeItem(at: work) }
    }

    /// The visible total, "693 kB in 1,000 packets": its size must be the exact byte count
    /// to the precision shown (3 significant digits), in SI units.
    static func expectTotalText(_ text: String, bytes: UInt64, packets: UInt64) {
        let parts = text.split(separator: " ")
        let units: [String: Double] = ["B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9]
        guard parts.count == 5, let value = Double(parts[0]), let unit = units[String(parts[1])], parts[2] == "in" else {
            Issue.record("the total reads '\(text)'")
            return
        }
        let shown = value * unit
        #expect(abs(shown - Double(bytes)) <= max(0.5, Double(bytes) * 0.005), "'\(text)' for \(bytes) bytes")
        #expect(parts[3] == Substring(grouped(packets)) && parts[4] == (packets == 1 ? "packet" : "packets"), "'\(text)'")
    }

    /// Both charts drawn with real numbers, and every value label with its unit.
    static func expectChartsDrawn(_ page: PageState) {
        #expect(page.chartPathData.count >= 4 && page.chartPathData.allSatisfy { !$0.isEmpty && !$0.contains("NaN") }, "\(page.chartPathData.prefix(2))")
        let values = page.axisLabels.filter { $0.hasSuffix("bit/s") || $0.hasSuffix("pkt/s") }
        #expect(values.count >= 4, "axis labels: \(page.axisLabels)")
        #expect(page.axisLabels.allSatisfy { !$0.contains("NaN") && !$0.isEmpty }, "axis labels: \(page.axisLabels)")
    }

    static func expectPNG(_ data: Data, _ what: String) {
        #expect(data.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]), "\(what) is not a PNG")
        #expect(data.count > 10_000, "\(what) is only \(data.count) bytes")
    }

    /// A capture with a few dozen windows of 2 s and a clear order of clients.
    static func writeCapture(in dir: URL) throws -> URL {
        let url = dir.appendingPathComponent("capture.pcap")
        let traffic = SyntheticTraffic(packets: 30_000, clients: 400, seconds: 60, seed: 2026, windowLength: 2_000_000_000)
        try traffic.pcap().write(to: url)
        return url
    }

    static func serveArguments(capture: URL, port: Int, extra: [String] = []) -> [String] {
        // Relative to the server's working directory (the test's folder): the page shows
        // "Replayed from capture.pcap".
        ["serve", "--read", capture.lastPathComponent, "--listen", "127.0.0.1:\(port)", "--no-db", "--window", "2s", "--enable-debug-inject"]
            + SyntheticTraffic.localNetworks.flatMap { ["--local-net", $0] } + extra
    }

    /// Waits until the file has been read to its end and its last window is in the history.
    /// (HTTP on a thread of its own and `Task.sleep`: these tests must not hold the
    /// cooperative pool, which the suite's timing-sensitive tests share.)
    static func waitForReplay(_ server: ServerProcess, token: String? = nil) async throws {
        let headers = token.map { ["Authorization": "Bearer \($0)"] } ?? [:]
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            guard server.isRunning else {
                throw HeadlessChromium.Failure(description: "trafficmon ended (\(String(describing: server.exit))): \(server.stderr)")
            }
            // Read to its end, and the file's last (partial) window published.
            let done = try await TestProcess.offload { () -> Bool in
                guard let ready = try? server.get("/readyz", headers: headers), ready.text.contains("replayed"),
                      let reply = try? server.get("/stats/history?limit=1", headers: headers),
                      let last = try? JSONDecoder().decode(History.self, from: reply.body).windows.last
                else { return false }
                return last.partial
            }
            if done { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw HeadlessChromium.Failure(description: "the replay did not end within 60 s")
    }

    static func history(_ server: ServerProcess, token: String? = nil) async throws -> [WindowRecord] {
        let headers = token.map { ["Authorization": "Bearer \($0)"] } ?? [:]
        let reply = try await TestProcess.offload { try server.get("/stats/history?limit=10000", headers: headers) }
        #expect(reply.status == 200)
        return try JSONDecoder().decode(History.self, from: reply.body).windows
    }

    /// `POST /debug/inject` off the cooperative pool.
    static func inject(port: Int, _ body: String, token: String? = nil) async throws -> TestHTTP.Response {
        let headers = token.map { ["Authorization": "Bearer \($0)"] } ?? [:]
        return try await TestHTTP.request("POST", "http://127.0.0.1:\(port)/debug/inject", headers: headers, body: Data(body.utf8))
    }

    @Test(.enabled(if: runs, "needs Debian's chromium (scripts/test installs it)"), .timeLimit(.minutes(TestTimeLimit.minutes)))
    func pageShowsTheLastWindowFollowsTheStreamAndReconnects() async throws {
        try #require(Self.hasBrowser, "TRAFFICMON_REQUIRE_BROWSER=1 but no chromium on PATH")
        let (dir, shots) = try Self.folder("live-page-browser")
        defer { Self.cleanUp(dir, keeping: shots) }
        let capture = try Self.writeCapture(in: dir)
        let port = try TestProcess.freePort()
        let arguments = Self.serveArguments(capture: capture, port: port)
        var server = try ServerProcess.trafficmon(arguments, port: port, in: dir)
        defer { server.stop() }
        try await Self.waitForReplay(server)
        let windows = try await Self.history(server)
        let last = try #require(windows.last)
        // With --local-net the clients table lists the remote clients.
        let top = try #require(last.clients.first { !$0.local }, "the last window has no remote client")

        let browser = try await HeadlessChromium.launch(profile: dir.appendingPathComponent("profile"))
        defer { browser.close() }
        try await browser.navigate("http://127.0.0.1:\(port)/")
        let shown = try await browser.wait(
            until: "document.querySelector('#connection').dataset.state === 'live' && document.querySelector('#window-total').dataset.bytes !== ''",
            timeout: .seconds(20))
        var page = try await Self.read(browser)
        #expect(shown, "the page never showed a window: \(page)")

        // 1. The last window, as /stats/history has it: its top client and its total.
        #expect(page.windowStart == Timestamp.rfc3339(last.start))
        #expect(page.topIP == top.ip.description && page.topCellText == top.ip.description, "\(page)")
        #expect(page.totalBytes == String(last.bytes) && page.totalPackets == String(last.packets), "\(page)")
        Self.expectTotalText(page.totalText, bytes: last.bytes, packets: last.packets)
        Self.expectChartsDrawn(page)
        #expect(page.clientRows == min(10, last.clients.filter { !$0.local }.count))
        // The top service: the largest of the window-wide list, both directions added up
        // (ties: any of the largest).
        var serviceTotals: [String: UInt64] = [:]
        for s in last.services { serviceTotals[s.service.label, default: 0] += s.bytes }
        let largest = serviceTotals.values.max() ?? 0
        #expect(page.serviceRows == min(10, serviceTotals.count))
        #expect(page.topServiceBytes == String(largest), "\(page.topService ?? "-") \(page.topServiceBytes ?? "-"), largest \(largest)")
        #expect(page.topService.flatMap { serviceTotals[$0] } == largest, "\(page.topService ?? "-")")
        #expect(page.chartPaths == 2, "in and out lines")
        let received = windows.reduce(0) { $0 + $1.capture.received }
        #expect(page.received == Self.grouped(received), "capture health: \(page.received), history: \(received)")
        #expect(browser.exceptions.isEmpty, "JavaScript exceptions: \(browser.exceptions)")
        #expect(browser.logErrors.isEmpty, "console/log errors: \(browser.logErrors)")
        Self.expectPNG(try await browser.screenshot(to: shots.appendingPathComponent("live-page.png")), "the screenshot")

        // Usable with the keyboard: the chart takes focus and arrow keys move its readout.
        _ = try await browser.evaluate("(document.getElementById('chart-bits').focus(), document.activeElement.id)", as: String.self)
        try await browser.press("ArrowLeft", code: 37)
        let readout: String = try await browser.evaluate("document.getElementById('readout').textContent")
        #expect(!readout.contains("(last window)") && readout.contains("bit/s"), "readout after ArrowLeft: \(readout)")
        try await browser.press("Escape", code: 27)
        _ = try await browser.evaluate("(document.activeElement.blur(), true)", as: Bool.self)

        // Dark by prefers-color-scheme.
        let lightBackground: String = try await browser.evaluate("getComputedStyle(document.body).backgroundColor")
        try await browser.emulateColorScheme("dark")
        let darkBackground: String = try await browser.evaluate("getComputedStyle(document.body).backgroundColor")
        #expect(lightBackground != darkBackground, "light \(lightBackground), dark \(darkBackground)")
        Self.expectPNG(try await browser.screenshot(to: shots.appendingPathComponent("live-page-dark.png")), "the dark screenshot")
        try await browser.emulateColorScheme("")

        // A phone: nothing wider than the screen.
        try await browser.emulateViewport(width: 390, height: 844, scale: 2, mobile: true)
        try await Task.sleep(for: .milliseconds(400))
        let overflow: Int = try await browser.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        #expect(overflow <= 0, "the page is \(overflow) px wider than a phone's screen")
        Self.expectPNG(try await browser.screenshot(to: shots.appendingPathComponent("live-page-phone.png")), "the phone screenshot")
        try await browser.clearViewport()

        // 2. An inject: a new window reaches the page over the stream, without a reload.
        _ = try await browser.evaluate("(window.__loadedOnce = 'yes')", as: String.self)
        let inject = try await Self.inject(port: port, #"{"client_ip":"10.10.10.10","direction":"in","proto":"TCP/8000","size":200000}"#)
        #expect(inject.status == 202, "inject: \(inject.status) \(inject.text)")
        let updated = try await browser.wait(
            until: "document.querySelector('#clients-table tbody tr[data-ip]')?.dataset.ip === '10.10.10.10'", timeout: .seconds(20))
        page = try await Self.read(browser)
        #expect(updated, "the injected window never showed: \(page)")
        #expect(page.totalBytes == "200000" && page.totalPackets == "1", "\(page)")
        Self.expectTotalText(page.totalText, bytes: 200_000, packets: 1)
        Self.expectChartsDrawn(page)
        #expect(page.windowStart != Timestamp.rfc3339(last.start))
        let marker: String? = try await browser.evaluate("window.__loadedOnce || null")
        #expect(marker == "yes", "the page was reloaded")
        #expect(browser.exceptions.isEmpty, "JavaScript exceptions: \(browser.exceptions)")
        #expect(browser.logErrors.isEmpty, "console/log errors: \(browser.logErrors)")
        Self.expectPNG(try await browser.screenshot(to: shots.appendingPathComponent("live-page-after-inject.png")), "the screenshot")

        // 3. A restart: the page says it is disconnected, then reconnects by itself and
        // reloads the history of the new process (which never saw the inject).
        server.signal(SIGTERM)
        let exited = try await server.waitForExit(timeout: 10) != nil
        #expect(exited)
        let disconnected = try await browser.wait(
            until: "document.querySelector('#connection').dataset.state === 'disconnected' && !document.getElementById('banner').hidden",
            timeout: .seconds(10))
        let whileAway = try await Self.read(browser)
        #expect(disconnected, "no disconnected state: \(whileAway)")
        server = try ServerProcess.trafficmon(arguments, port: port, in: dir)
        try await Self.waitForReplay(server)
        let back = try await browser.wait(
            until: "document.querySelector('#connection').dataset.state === 'live' && document.getElementById('banner').hidden", timeout: .seconds(45))
        page = try await Self.read(browser)
        #expect(back, "the page did not reconnect: \(page)")
        #expect(page.windowStart == Timestamp.rfc3339(last.start) && page.topIP == top.ip.description, "\(page)")
        #expect(browser.exceptions.isEmpty, "JavaScript exceptions: \(browser.exceptions)")
        // While the server was away the browser logs refused connections; nothing else.
        let unexpected = browser.logErrors.filter { !$0.contains("ERR_CONNECTION_REFUSED") && !$0.contains("WebSocket") }
        #expect(unexpected.isEmpty, "console/log errors: \(unexpected)")
        if shots == dir { print("live page screenshots: \(shots.path)") }
    }

    /// A replay that starts while the page is open pushes its windows over the stream in a
    /// burst (a FIFO holds the capture back until the page is live): the page ends on the
    /// file's last window, but draws and asks for `/stats/capture` a few times, not per window.
    @Test(.enabled(if: runs, "needs Debian's chromium (scripts/test installs it)"), .timeLimit(.minutes(TestTimeLimit.minutes)))
    func pageDrawsABurstOfWindowsAFewTimesNotPerWindow() async throws {
        try #require(Self.hasBrowser, "TRAFFICMON_REQUIRE_BROWSER=1 but no chromium on PATH")
        let (dir, shots) = try Self.folder("live-page-burst")
        defer { Self.cleanUp(dir, keeping: shots) }
        let traffic = SyntheticTraffic(packets: 30_000, clients: 400, seconds: 60, seed: 99, windowLength: 2_000_000_000)
        // The file header at once (trafficmon reads it at start), the packets when released.
        let feeder = try FIFOFeeder(at: dir.appendingPathComponent("capture.pcap"), bytes: traffic.pcap().data, firstPart: 24)
        defer { feeder.release() }
        let fifo = feeder.url
        let port = try TestProcess.freePort()
        let server = try ServerProcess.trafficmon(Self.serveArguments(capture: fifo, port: port), port: port, in: dir)
        defer { server.stop() }
        _ = try await server.waitUntilServing("/readyz")

        let browser = try await HeadlessChromium.launch(profile: dir.appendingPathComponent("profile"))
        defer { browser.close() }
        try await browser.navigate("http://127.0.0.1:\(port)/")
        let live = try await browser.wait(until: "document.querySelector('#connection').dataset.state === 'live'", timeout: .seconds(20))
        #expect(live)
        let before: Int = try await browser.evaluate("""
            (() => {
              window.__renders = 0;
              new MutationObserver(() => { window.__renders += 1; })
                .observe(document.getElementById('window-total'), { childList: true, characterData: true, subtree: true });
              return performance.getEntriesByType('resource').filter((e) => e.name.includes('/stats/capture')).length;
            })()
            """)
        feeder.release()
        let written = try await TestProcess.offload { feeder.waitUntilWritten(timeout: 60) }
        #expect(written, "the capture was not written")
        try await Self.waitForReplay(server)
        let windows = try await Self.history(server)
        let last = try #require(windows.last)
        let shown = try await browser.wait(
            until: "document.querySelector('#last-window').dataset.start === '\(Timestamp.rfc3339(last.start))'", timeout: .seconds(20))
        // Let any trailing timer run, then count.
        try await Task.sleep(for: .milliseconds(1500))
        let page = try await Self.read(browser)
        #expect(shown, "the page never reached the file's last window: \(page)")
        #expect(page.totalBytes == String(last.bytes) && page.topIP == last.clients.first { !$0.local }?.ip.description, "\(page)")
        let renders: Int = try await browser.evaluate("window.__renders")
        let captureRequests: Int = try await browser.evaluate(
            "performance.getEntriesByType('resource').filter((e) => e.name.includes('/stats/capture')).length")
        #expect(windows.count >= 25, "only \(windows.count) windows")
        #expect(renders >= 1 && renders <= 6, "\(renders) redraws for \(windows.count) windows")
        #expect(captureRequests - before <= 4, "\(captureRequests - before) /stats/capture requests for \(windows.count) windows")
        #expect(browser.exceptions.isEmpty, "JavaScript exceptions: \(browser.exceptions)")
        #expect(browser.logErrors.isEmpty, "console/log errors: \(browser.logErrors)")
    }

    /// What the party panels show: each table's rows, and the headings in page order.
    struct PartyPanels: Decodable, CustomStringConvertible {
        struct Row: Decodable {
            var ip: String
            var bytes: String
            var local: String
        }

        var localHidden: Bool
        var headings: [String]
        var localNets: String
        var local: [Row]
        var servers: [Row]
        var clients: [Row]

        var description: String {
            "\(headings) local=\(local.map(\.ip)) servers=\(servers.map(\.ip)) clients=\(clients.map(\.ip))"
        }

        static let script = """
            (() => {
              const rows = (id) => [...document.querySelectorAll('#' + id + ' tbody tr[data-ip]')]
                .map((tr) => ({ ip: tr.dataset.ip, bytes: tr.dataset.bytes, local: tr.dataset.local }));
              return {
                localHidden: document.getElementById('panel-local').hidden,
                headings: [...document.querySelectorAll('#parties > section:not([hidden]) h2')].map((h) => h.textContent),
                localNets: document.getElementById('local-nets').textContent,
                local: rows('local-table'), servers: rows('servers-table'), clients: rows('clients-table'),
              };
            })()
            """
    }

    /// An uplink (local machines using remote servers): with its `--local-net`, the page shows
    /// the local machines (local clients and local servers, one row per address, both roles
    /// added up), the remote servers and the remote clients, each as the last window of
    /// `/stats/history` has them; the same capture served without `--local-net` shows top
    /// clients and top servers instead, and no local machines.
    @Test(.enabled(if: runs, "needs Debian's chromium (scripts/test installs it)"), .timeLimit(.minutes(TestTimeLimit.minutes)))
    func pageShowsLocalMachinesAndRemoteServersOfAnUplink() async throws {
        try #require(Self.hasBrowser, "TRAFFICMON_REQUIRE_BROWSER=1 but no chromium on PATH")
        let (dir, shots) = try Self.folder("live-page-uplink")
        defer { Self.cleanUp(dir, keeping: shots) }
        let capture = dir.appendingPathComponent("uplink.pcap")
        let traffic = SyntheticTraffic(packets: 20_000, clients: 120, seconds: 40, seed: 31, windowLength: 2_000_000_000, layout: .uplink)
        try traffic.pcap().write(to: capture)
        let networks = try SyntheticTraffic.uplinkLocalNetworks.map { try NetworkPrefix(parsing: $0) }
        func isLocal(_ ip: String) -> Bool { IPAddress(ip).map { address in networks.contains { $0.contains(address) } } ?? false }
        let base = ["serve", "--read", capture.lastPathComponent, "--no-db", "--window", "2s"]

        // 1. With the uplink's local networks.
        var port = try TestProcess.freePort()
        var server = try ServerProcess.trafficmon(
            base + ["--listen", "127.0.0.1:\(port)"] + SyntheticTraffic.uplinkLocalNetworks.flatMap { ["--local-net", $0] },
            port: port, in: dir)
        defer { server.stop() }
        try await Self.waitForReplay(server)
        let last = try #require(try await Self.history(server).last)
        for party in last.clients + last.servers {
            #expect(party.local == isLocal(party.ip.description), "\(party.ip) marked local=\(party.local)")
        }
        var machines: [String: UInt64] = [:]
        for party in last.clients + last.servers where party.local { machines[party.ip.description, default: 0] += party.total.bytes }
        let remoteServers = last.servers.filter { !$0.local }.prefix(10).map(\.ip.description)
        let remoteClients = last.clients.filter { !$0.local }.prefix(10).map(\.ip.description)
        #expect(machines.count > 10 && remoteServers.count == 10, "the capture's last window is too small to show much")

        let browser = try await HeadlessChromium.launch(profile: dir.appendingPathComponent("profile"))
        defer { browser.close() }
        try await browser.navigate("http://127.0.0.1:\(port)/")
        let shown = try await browser.wait(
            until: "document.querySelector('#connection').dataset.state === 'live' && document.querySelector('#local-table tbody tr[data-ip]') !== null",
            timeout: .seconds(20))
        var panels: PartyPanels = try await browser.evaluate(PartyPanels.script)
        #expect(shown, "no local machine shown: \(panels)")
        #expect(!panels.localHidden)
        #expect(panels.headings == ["Local machines", "Remote servers", "Remote clients", "Top services"], "\(panels.headings)")
        #expect(SyntheticTraffic.uplinkLocalNetworks.allSatisfy { panels.localNets.contains($0) }, "'\(panels.localNets)'")
        // Local machines: local addresses only, each with its bytes as client and as server,
        // the largest first.
        #expect(panels.local.count == 10)
        for row in panels.local {
            #expect(isLocal(row.ip) && row.local == "true", "\(row.ip) in Local machines")
            #expect(machines[row.ip].map(String.init) == row.bytes, "\(row.ip): \(row.bytes) bytes shown, \(machines[row.ip] ?? 0) in the record")
        }
        #expect(panels.local.contains { $0.ip.hasPrefix("192.168.1.") }, "\(panels)")
        let shownBytes = panels.local.compactMap { UInt64($0.bytes) }
        #expect(shownBytes == shownBytes.sorted(by: >) && shownBytes.first == machines.values.max(), "\(shownBytes)")
        // Remote servers and remote clients: the record's, in its order; nothing local.
        #expect(panels.servers.map(\.ip) == remoteServers, "\(panels)")
        #expect(panels.clients.map(\.ip) == remoteClients, "\(panels)")
        #expect((panels.servers + panels.clients).allSatisfy { !isLocal($0.ip) && $0.local == "false" }, "\(panels)")
        #expect(browser.exceptions.isEmpty, "JavaScript exceptions: \(browser.exceptions)")
        #expect(browser.logErrors.isEmpty, "console/log errors: \(browser.logErrors)")
        Self.expectPNG(try await browser.screenshot(to: shots.appendingPathComponent("live-page-uplink.png")), "the uplink screenshot")

        // 2. The same capture without --local-net: nothing is local. (The page leaves first, so
        // it does not log the old server's refused connections.)
        try await browser.navigate("about:blank")
        server.stop()
        port = try TestProcess.freePort()
        server = try ServerProcess.trafficmon(base + ["--listen", "127.0.0.1:\(port)"], port: port, in: dir)
        try await Self.waitForReplay(server)
        let plain = try #require(try await Self.history(server).last)
        #expect(plain.start == last.start)
        #expect((plain.clients + plain.servers).allSatisfy { !$0.local })
        try await browser.navigate("http://127.0.0.1:\(port)/")
        let shownPlain = try await browser.wait(
            until: "document.querySelector('#connection').dataset.state === 'live' && document.querySelector('#servers-table tbody tr[data-ip]') !== null",
            timeout: .seconds(20))
        panels = try await browser.evaluate(PartyPanels.script)
        #expect(shownPlain, "no server shown: \(panels)")
        #expect(panels.localHidden)
        #expect(panels.headings == ["Top clients", "Top servers", "Top services"], "\(panels.headings)")
        #expect(panels.clients.map(\.ip) == plain.clients.prefix(10).map(\.ip.description), "\(panels)")
        #expect(panels.servers.map(\.ip) == plain.servers.prefix(10).map(\.ip.description), "\(panels)")
        #expect(panels.clients.first?.ip.hasPrefix("192.168.1.") == true, "an uplink's top client is a local machine: \(panels)")
        #expect(browser.exceptions.isEmpty, "JavaScript exceptions: \(browser.exceptions)")
        #expect(browser.logErrors.isEmpty, "console/log errors: \(browser.logErrors)")
    }

    /// What the TCP, DNS and sizes panel shows, read from its tables' data attributes.
    struct ProtocolPanel: Decodable, CustomStringConvertible {
        struct Kind: Decodable, Equatable { var kind: String; var `in`: String; var out: String }
        struct SYNClient: Decodable, Equatable { var ip: String; var services: String; var syn: String }
        struct Count: Decodable, Equatable { var name: String; var count: String; var error: Bool }
        struct Size: Decodable, Equatable { var bucket: String; var `in`: String; var out: String }

        var window: String
        var tcp: [Kind]
        var ratio: String
        var synClients: [SYNClient]
        var synEmpty: String?
        var responses: [Count]
        var responsesEmpty: String?
        var queries: [Count]
        var dnsNote: String
        var sizes: [Size]

        var description: String {
            "tcp=\(tcp.map { "\($0.kind) \($0.in)/\($0.out)" }) '\(ratio)' syn=\(synClients.map(\.ip)) responses=\(responses.map { "\($0.name) \($0.count)" }) queries=\(queries.map { "\($0.name) \($0.count)" })"
        }

        static let script = """
            (() => {
              const rows = (id) => [...document.querySelectorAll('#' + id + ' tbody tr')].filter((tr) => Object.keys(tr.dataset).length);
              const empty = (id) => { const td = document.querySelector('#' + id + ' tbody td[colspan]'); return td ? td.textContent : null; };
              return {
                window: document.getElementById('protocols-window').textContent,
                tcp: rows('tcp-table').map((tr) => ({ kind: tr.dataset.kind, in: tr.dataset.in, out: tr.dataset.out })),
                ratio: document.getElementById('tcp-ratio').textContent,
                synClients: rows('syn-table').map((tr) => ({ ip: tr.dataset.ip, services: tr.dataset.services, syn: tr.dataset.syn })),
                synEmpty: empty('syn-table'),
                responses: rows('dns-responses-table').map((tr) => ({ name: tr.dataset.rcode, count: tr.dataset.count, error: tr.classList.contains('bad') })),
                responsesEmpty: empty('dns-responses-table'),
                queries: rows('dns-queries-table').map((tr) => ({ name: tr.dataset.qtype, count: tr.dataset.count, error: tr.classList.contains('bad') })),
                dnsNote: document.getElementById('dns-note').textContent,
                sizes: rows('sizes-table').map((tr) => ({ bucket: tr.dataset.bucket, in: tr.dataset.in, out: tr.dataset.out })),
              };
            })()
            """
    }

    /// A capture with a port scan, a SYN flood, handshakes, a segment cut before its flags,
    /// DNS answered with errors and packets of every size: the TCP, DNS and sizes panel shows
    /// the last window's figures as `/stats/history` has them (SYN clients in the record's
    /// order, error codes marked, queries by count), fits a phone's width, and after an
    /// inject of a window without TCP or DNS says there is none.
    @Test(.enabled(if: runs, "needs Debian's chromium (scripts/test installs it)"), .timeLimit(.minutes(TestTimeLimit.minutes)))
    func pageShowsTCPDNSAndSizesOfTheLastWindow() async throws {
        try #require(Self.hasBrowser, "TRAFFICMON_REQUIRE_BROWSER=1 but no chromium on PATH")
        let (dir, shots) = try Self.folder("live-page-protocols")
        defer { Self.cleanUp(dir, keeping: shots) }
        let capture = dir.appendingPathComponent("protocols.pcap")
        // 2 s windows of 5 rounds each; the file's last window (partial) holds 3.
        try ProtocolTraffic.capture(rounds: 23, start: 1_700_000_000 * 1_000_000_000, spacing: 400_000_000).write(to: capture)
        let port = try TestProcess.freePort()
        let server = try ServerProcess.trafficmon(
            ["serve", "--read", capture.lastPathComponent, "--listen", "127.0.0.1:\(port)", "--no-db", "--window", "2s",
             "--enable-debug-inject", "--local-net", ProtocolTraffic.localNetwork],
            port: port, in: dir)
        defer { server.stop() }
        try await Self.waitForReplay(server)
        let last = try #require(try await Self.history(server).last)
        let p = last.protocols
        #expect(p.tcpIn.syn == 3 * ProtocolTraffic.perRound.synIn, "the last window does not hold 3 rounds")

        let browser = try await HeadlessChromium.launch(profile: dir.appendingPathComponent("profile"))
        defer { browser.close() }
        try await browser.navigate("http://127.0.0.1:\(port)/")
        let shown = try await browser.wait(
            until: "document.querySelector('#connection').dataset.state === 'live' && document.querySelector('#syn-table tbody tr[data-ip]') !== null",
            timeout: .seconds(20))
        var panel: ProtocolPanel = try await browser.evaluate(ProtocolPanel.script)
        #expect(shown, "no SYN client shown: \(panel)")
        #expect(panel.window.hasSuffix("(partial)."), "'\(panel.window)'")

        // TCP: every kind by direction, and SYN-ACK / SYN of both directions.
        #expect(panel.tcp == TCPFlags.Kind.allCases.map { .init(kind: $0.label, in: String(p.tcpIn[$0]), out: String(p.tcpOut[$0])) }, "\(panel)")
        let syn = p.tcpIn.syn + p.tcpOut.syn, synack = p.tcpIn.synack + p.tcpOut.synack
        let percent = String(format: "%.1f %%", 100 * Double(synack) / Double(syn))
        #expect(panel.ratio.contains("SYN-ACK / SYN: \(percent) (\(Self.grouped(synack)) of \(Self.grouped(syn))"), "'\(panel.ratio)'")
        // SYN clients: the record's list, the scanner first with every port it reached.
        #expect(panel.synClients == p.synClients.map { .init(ip: $0.ip.description, services: String($0.synServices), syn: String($0.syn)) }, "\(panel)")
        #expect(panel.synClients.first == .init(ip: ProtocolTraffic.scanner, services: String(ProtocolTraffic.scannedPorts), syn: String(3 * ProtocolTraffic.scannedPorts)))
        // DNS: responses with a count in code order, the failures marked; queries by count.
        let errors: Set<String> = ["FORMERR", "SERVFAIL", "NOTIMP", "REFUSED", "other"]
        let responses: [ProtocolPanel.Count] = zip(DNSFacts.responseCodes, p.dnsResponses).compactMap { code, n in
            n > 0 ? ProtocolPanel.Count(name: code, count: String(n), error: errors.contains(code)) : nil
        }
        #expect(panel.responses == responses, "\(panel)")
        #expect(panel.responses.filter(\.error).map(\.name) == ["SERVFAIL", "REFUSED"])
        let queries: [(String, UInt64)] = zip(DNSFacts.queryTypes, p.dnsQueries).filter { $0.1 > 0 }
            .sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }
        #expect(panel.queries == queries.map { ProtocolPanel.Count(name: $0.0, count: String($0.1), error: false) }, "\(panel)")
        #expect(panel.queries.first?.name == "A")
        #expect(panel.dnsNote.isEmpty, "'\(panel.dnsNote)'")
        // Sizes: all eight buckets by direction.
        #expect(panel.sizes == (0..<8).map { .init(bucket: String($0), in: String(p.sizesIn[$0]), out: String(p.sizesOut[$0])) }, "\(panel)")
        #expect(browser.exceptions.isEmpty, "JavaScript exceptions: \(browser.exceptions)")
        #expect(browser.logErrors.isEmpty, "console/log errors: \(browser.logErrors)")
        Self.expectPNG(try await browser.screenshot(to: shots.appendingPathComponent("live-page-protocols.png"), of: "#panel-protocols"), "the panel's screenshot")

        // On a phone the panel's tables stack and nothing is wider than the screen.
        try await browser.emulateViewport(width: 390, height: 844, scale: 2, mobile: true)
        try await Task.sleep(for: .milliseconds(400))
        let overflow: Int = try await browser.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        #expect(overflow <= 0, "the page is \(overflow) px wider than a phone's screen")
        try await browser.clearViewport()

        // An injected window has neither TCP nor DNS: the panel says so.
        let inject = try await Self.inject(port: port, #"{"client_ip":"198.51.100.20","server_ip":"10.0.0.1","direction":"in","proto":"UDP/123","size":90}"#)
        #expect(inject.status == 202)
        let updated = try await browser.wait(
            until: "document.querySelector('#syn-table tbody tr[data-ip]') === null && !document.getElementById('protocols-window').textContent.includes('partial')",
            timeout: .seconds(20))
        panel = try await browser.evaluate(ProtocolPanel.script)
        #expect(updated, "the injected window never reached the panel: \(panel)")
        #expect(panel.tcp.allSatisfy { $0.in == "0" && $0.out == "0" } && panel.tcp.count == 5, "\(panel)")
        #expect(panel.ratio == "No SYN in this window.")
        #expect(panel.synEmpty == "No SYN in this window." && panel.responsesEmpty == "No DNS response in this window.", "\(panel)")
        #expect(panel.sizes.map(\.in) == ["0", "1", "0", "0", "0", "0", "0", "0"], "\(panel)")
        #expect(browser.exceptions.isEmpty, "JavaScript exceptions: \(browser.exceptions)")
        #expect(browser.logErrors.isEmpty, "console/log errors: \(browser.logErrors)")
    }

    /// With `--auth-token-file`: the page asks for the token (keyboard only), refuses a
    /// wrong one, keeps the right one for the tab (a reload does not ask again), and the
    /// stream works with it.
    @Test(.enabled(if: runs, "needs Debian's chromium (scripts/test installs it)"), .timeLimit(.minutes(TestTimeLimit.minutes)))
    func pageAsksForTheTokenOnceAndKeepsItForTheTab() async throws {
        try #require(Self.hasBrowser, "TRAFFICMON_REQUIRE_BROWSER=1 but no chromium on PATH")
        let (dir, shots) = try Self.folder("live-page-auth")
        defer { Self.cleanUp(dir, keeping: shots) }
        let capture = try Self.writeCapture(in: dir)
        let token = "page-token-\(UInt32.random(in: 0...UInt32.max))"
        let tokenFile = dir.appendingPathComponent("tokens")
        try "\(token)\n".write(to: tokenFile, atomically: true, encoding: .utf8)
        let port = try TestProcess.freePort()
        let server = try ServerProcess.trafficmon(
            Self.serveArguments(capture: capture, port: port, extra: ["--auth-token-file", tokenFile.path]), port: port, in: dir)
        defer { server.stop() }
        try await Self.waitForReplay(server, token: token)
        let windows = try await Self.history(server, token: token)
        let last = try #require(windows.last)

        let browser = try await HeadlessChromium.launch(profile: dir.appendingPathComponent("profile"))
        defer { browser.close() }
        try await browser.navigate("http://127.0.0.1:\(port)/")
        let asked = try await browser.wait(
            until: "document.getElementById('auth').open && document.activeElement.id === 'auth-token'", timeout: .seconds(10))
        #expect(asked, "no token dialog with the focus in it")
        #expect(browser.logErrors.isEmpty, "the page made requests before it had a token: \(browser.logErrors)")
        Self.expectPNG(try await browser.screenshot(to: shots.appendingPathComponent("live-page-token.png")), "the screenshot")

        // A wrong token: asked again, with the reason.
        try await browser.type("not-the-token")
        try await browser.press("Enter", code: 13)
        let askedAgain = try await browser.wait(
            until: "document.getElementById('auth').open && document.getElementById('auth-reason').textContent.includes('not accepted')",
            timeout: .seconds(10))
        #expect(askedAgain, "a wrong token was not refused on the page")

        // The right one, typed.
        try await browser.type(token)
        try await browser.press("Enter", code: 13)
        let live = try await browser.wait(
            until: "document.querySelector('#connection').dataset.state === 'live' && document.querySelector('#window-total').dataset.bytes !== ''",
            timeout: .seconds(20))
        var page = try await Self.read(browser)
        #expect(live, "the page did not go live with the token: \(page)")
        #expect(page.windowStart == Timestamp.rfc3339(last.start) && page.totalBytes == String(last.bytes), "\(page)")
        let kept: String? = try await browser.evaluate("sessionStorage.getItem('trafficmon.token')")
        #expect(kept == token)

        // A reload in the same tab: no question, straight to live.
        try await browser.reload()
        let liveAgain = try await browser.wait(
            until: "document.querySelector('#connection').dataset.state === 'live' && document.querySelector('#window-total').dataset.bytes !== ''",
            timeout: .seconds(20))
        #expect(liveAgain)
        let openedAgain: Bool = try await browser.evaluate("document.getElementById('auth').open")
        #expect(!openedAgain, "the token was asked for again after a reload")

        // The stream runs on the token too: an inject reaches the page.
        let inject = try await Self.inject(port: port, #"{"client_ip":"10.10.10.11","direction":"out","proto":"UDP/53","size":4321}"#, token: token)
        #expect(inject.status == 202)
        let updated = try await browser.wait(
            until: "document.querySelector('#clients-table tbody tr[data-ip]')?.dataset.ip === '10.10.10.11'", timeout: .seconds(20))
        page = try await Self.read(browser)
        #expect(updated && page.totalBytes == "4321", "\(page)")
        #expect(browser.exceptions.isEmpty, "JavaScript exceptions: \(browser.exceptions)")
        // The one refused request is the wrong token's.
        let unexpected = browser.logErrors.filter { !$0.contains("401") }
        #expect(unexpected.isEmpty, "console/log errors: \(unexpected)")
    }

    /// A collector of flows only: the "Flow inputs" panel lists each input's exporters with
    /// their datagrams, records and errors (flagged), from /stats/capture.
    @Test(.enabled(if: runs, "needs Debian's chromium (scripts/test installs it)"), .timeLimit(.minutes(TestTimeLimit.minutes)))
    func flowInputsAreListedByExporter() async throws {
        try #require(Self.hasBrowser, "TRAFFICMON_REQUIRE_BROWSER=1 but no chromium on PATH")
        let (dir, shots) = try Self.folder("live-page-flows")
        defer { Self.cleanUp(dir, keeping: shots) }
        let port = try TestProcess.freePort()
        let server = try ServerProcess.trafficmon(
            ["serve", "--netflow", "127.0.0.1:0", "--sflow", "127.0.0.1:0", "--listen", "127.0.0.1:\(port)", "--no-db", "--window", "2s"]
                + SyntheticTraffic.localNetworks.flatMap { ["--local-net", $0] }, port: port, in: dir)
        defer { server.stop() }
        // On a thread of its own: other suites may hold the cooperative pool for a while.
        _ = try await TestProcess.offload { try server.waitUntilServing("/readyz", timeout: 90) }
        var netflow: UInt16?
        try await server.waitUntil("the NetFlow port in the log") {
            netflow = server.stderr.firstMatch(of: /collecting netflow on \S+ \(port (\d+)\)/).flatMap { UInt16($0.1) }
            return netflow != nil
        }
        let target = try #require(netflow)
        let exporter = try UDPSender(from: "127.0.0.2")
        let seconds = UInt32(Date().timeIntervalSince1970)
        for sequence in 0..<3 {
            let record = FlowDatagrams.V5Record(source: "198.51.100.7", destination: "10.0.0.1", sourcePort: 40000, destinationPort: 443, packets: 2, bytes: 900)
            #expect(exporter.send(FlowDatagrams.netflowV5([record], sequence: UInt32(sequence), unixSeconds: seconds), to: "127.0.0.1", port: target))
        }
        #expect(exporter.send([0, 5, 0, 1], to: "127.0.0.1", port: target))

        let browser = try await HeadlessChromium.launch(profile: dir.appendingPathComponent("profile"))
        defer { browser.close() }
        try await browser.navigate("http://127.0.0.1:\(port)/")
        let row = "document.querySelector('#flows-table tbody tr[data-exporter=\"127.0.0.2\"]')"
        let listed = try await browser.wait(
            until: "!document.getElementById('panel-flows').hidden && \(row) !== null && \(row).cells[2].textContent === '4'", timeout: .seconds(20))
        #expect(listed, "the flow panel does not list the exporter")
        let cells: [String] = try await browser.evaluate("Array.from(\(row).cells).map((c) => c.textContent)")
        #expect(cells.count == 9 && cells[0].hasPrefix("netflow 127.0.0.1:") && cells[1] == "127.0.0.2", "\(cells)")
        #expect(cells[3] == "3" && cells[4] == "1" && cells[7] == "none", "\(cells)")
        let flagged: Bool = try await browser.evaluate("\(row).cells[4].classList.contains('bad')")
        #expect(flagged, "the decode error is not flagged")
        let source: String = try await browser.evaluate("document.getElementById('source').textContent")
        #expect(source.hasPrefix("Collecting flows on netflow 127.0.0.1:") && source.contains(", sflow 127.0.0.1:"), "\(source)")
        // The sFlow input is listed too, with no exporter yet.
        let inputs: Int = try await browser.evaluate("document.querySelectorAll('#flows-table tbody tr').length")
        #expect(inputs == 2)
        Self.expectPNG(try await browser.screenshot(to: shots.appendingPathComponent("live-page-flows.png")), "the screenshot")
        #expect(browser.exceptions.isEmpty, "JavaScript exceptions: \(browser.exceptions)")
    }
}
