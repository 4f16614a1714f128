import Foundation
import Testing
import TrafficCore
import TrafficTestSupport

/// The live page's Networks panel in a real browser, in the serialized suite of the other
/// page tests (one Chromium at a time).
extension LivePageBrowserTests {
    /// What the panel shows: each table's rows as (name, bytes in, bytes out).
    struct NetworksPanel: Decodable, CustomStringConvertible {
        struct Row: Decodable, Equatable, CustomStringConvertible {
            var name: String
            var detail: String
            var `in`: String
            var out: String
            var description: String { "\(name)\(detail.isEmpty ? "" : " (\(detail))") \(`in`)/\(out)" }
        }

        var hidden: Bool
        var window: String
        var clientNetworks: [Row]
        var serverNetworks: [Row]
        var countries: [Row]
        var asns: [Row]
        var partsHidden: [Bool]

        var description: String {
            "hidden=\(hidden) '\(window)' clients=\(clientNetworks) servers=\(serverNetworks) countries=\(countries) asns=\(asns)"
        }

        static let script = """
            (() => {
              const rows = (id, key) => [...document.querySelectorAll('#' + id + ' tbody tr[' + key + ']')].map((tr) => ({
                name: tr.getAttribute(key),
                detail: tr.querySelector('th .detail')?.textContent ?? '',
                in: tr.dataset.in, out: tr.dataset.out,
              }));
              return {
                hidden: document.getElementById('panel-networks').hidden,
                window: document.getElementById('networks-window').textContent,
                clientNetworks: rows('networks-client-table', 'data-network'),
                serverNetworks: rows('networks-server-table', 'data-network'),
                countries: rows('countries-table', 'data-country'),
                asns: rows('asns-table', 'data-asn'),
                partsHidden: ['networks-client-part', 'networks-server-part', 'countries-part', 'asns-part']
                  .map((id) => document.getElementById(id).hidden),
              };
            })()
            """
    }

    @Test(.enabled(if: runs, "needs Debian's chromium (scripts/test installs it)"), .timeLimit(.minutes(TestTimeLimit.minutes)))
    func pageShowsNetworksCountriesAndASesOfTheLastWindow() async throws {
        try #require(Self.hasBrowser, "TRAFFICMON_REQUIRE_BROWSER=1 but no chromium on PATH")
        let (dir, shots) = try Self.folder("live-page-networks")
        defer { Self.cleanUp(dir, keeping: shots) }
        let capture = try Self.writeCapture(in: dir)
        try WhoFixtures.networksYAML(WhoFixtures.networkBlocks(.servers))
            .write(to: dir.appendingPathComponent("networks.yaml"), atomically: true, encoding: .utf8)
        try WhoFixtures.asnDatabase().write(to: dir.appendingPathComponent("asn.mmdb"))
        try WhoFixtures.countryDatabase().write(to: dir.appendingPathComponent("country.mmdb"))
        let port = try TestProcess.freePort()
        let server = try ServerProcess.trafficmon(
            Self.serveArguments(capture: capture, port: port, extra: [
                "--networks", "networks.yaml", "--asn-db", "asn.mmdb", "--country-db", "country.mmdb", "--top", "4",
            ]), port: port, in: dir)
        defer { server.stop() }
        try await Self.waitForReplay(server)
        let last = try #require(try await Self.history(server).last)
        let networks = try #require(last.networks)
        #expect(networks.contains { $0.network == "other" }, "--top 4 folds some networks: \(networks)")

        let browser = try await HeadlessChromium.launch(profile: dir.appendingPathComponent("profile"))
        defer { browser.close() }
        try await browser.navigate("http://127.0.0.1:\(port)/")
        let shown = try await browser.wait(
            until: "document.querySelector('#connection').dataset.state === 'live' && document.querySelector('#asns-table tbody tr[data-asn]') !== null",
            timeout: .seconds(20))
        let panel: NetworksPanel = try await browser.evaluate(NetworksPanel.script)
        #expect(shown, "\(panel)")
        #expect(!panel.hidden && panel.partsHidden == [false, false, false, false], "\(panel)")
        #expect(panel.window.hasSuffix("(partial)."), "'\(panel.window)'")
        func rows<E>(_ list: [E], _ name: (E) -> String, _ detail: (E) -> String = { _ in "" }, _ io: (E) -> (Counts, Counts)) -> [NetworksPanel.Row] {
            list.map { NetworksPanel.Row(name: name($0), detail: detail($0), in: String(io($0).0.bytes), out: String(io($0).1.bytes)) }
        }
        // Every list of the newest window, in the record's order.
        #expect(panel.clientNetworks == rows(networks.filter { $0.side == .client }, \.network) { ($0.in, $0.out) }, "\(panel)")
        #expect(panel.serverNetworks == rows(networks.filter { $0.side == .server }, \.network) { ($0.in, $0.out) }, "\(panel)")
        #expect(panel.countries == rows(try #require(last.countries), \.country) { ($0.in, $0.out) }, "\(panel)")
        #expect(panel.asns == rows(try #require(last.asns), \.asn, \.asOrg) { ($0.in, $0.out) }, "\(panel)")
        #expect(panel.asns.contains { $0.detail == "Doc \"Net\" \\ Paris" }, "the organisation is shown as written: \(panel.asns)")
        #expect(browser.exceptions.isEmpty, "JavaScript exceptions: \(browser.exceptions)")
        #expect(browser.logErrors.isEmpty, "console/log errors: \(browser.logErrors)")
        Self.expectPNG(try await browser.screenshot(to: shots.appendingPathComponent("live-page-networks.png"), of: "#panel-networks"), "the panel's screenshot")

        // On a phone nothing is wider than the screen.
        try await browser.emulateViewport(width: 390, height: 844, scale: 2, mobile: true)
        try await Task.sleep(for: .milliseconds(400))
        let overflow: Int = try await browser.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        #expect(overflow <= 0, "the page is \(overflow) px wider than a phone's screen")
        try await browser.clearViewport()

        // A server started without the files keeps the panel hidden.
        let plainPort = try TestProcess.freePort()
        let plain = try ServerProcess.trafficmon(Self.serveArguments(capture: capture, port: plainPort), port: plainPort, in: dir)
        defer { plain.stop() }
        try await Self.waitForReplay(plain)
        try await browser.navigate("http://127.0.0.1:\(plainPort)/")
        let live = try await browser.wait(
            until: "document.querySelector('#connection').dataset.state === 'live' && document.querySelector('#clients-table tbody tr[data-ip]') !== null",
            timeout: .seconds(20))
        let hidden: NetworksPanel = try await browser.evaluate(NetworksPanel.script)
        #expect(live && hidden.hidden, "\(hidden)")
        #expect(browser.exceptions.isEmpty, "JavaScript exceptions: \(browser.exceptions)")
    }
}
