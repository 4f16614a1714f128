import Testing
import TrafficCore

/// `WindowRecord.folded(top:)` (`/stats/history?top=K`): at most K services named, in the
/// window's list and in each listed client's, the rest under `other`, whatever the count.
@Suite struct WindowFoldingTests {
    /// A window holding `services` distinct services of one client.
    static func record(services: Int) -> WindowRecord {
        var closed: [WindowRecord] = []
        let aggregator = WindowAggregator(configuration: .init(windowLength: 1_000_000_000)) { (r: WindowRecord) in closed.append(r) }
        for port in 0..<services {
            aggregator.add(
                Attribution(client: IPAddress("198.51.100.7")!, direction: .inbound, service: Service(label: "TCP/\(8000 + port)")!),
                timestamp: 1_000_000_000, wireLength: 100 + port)
        }
        aggregator.finish()
        return closed[0]
    }

    @Test(arguments: [1, 2, 5])
    func noServiceIsNamedPastTop(services: Int) throws {
        let full = Self.record(services: services)
        #expect(full.services.count == services)
        for top in 0...services {
            let folded = full.folded(top: top)
            let named = folded.services.filter { $0.service != .other }
            #expect(named.count == min(top, services), "top \(top) of \(services): \(folded.services.map(\.service.label))")
            #expect(folded.services.reduce(0) { $0 + $1.bytes } == full.bytes)
            for client in folded.clients {
                #expect(client.services.filter { $0.service != .other }.count <= top)
                #expect(client.services.reduce(0) { $0 + $1.bytes } == client.total.bytes)
            }
        }
    }
}
