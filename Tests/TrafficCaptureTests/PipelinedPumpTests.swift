import Foundation
import Testing
import TrafficCapture
import TrafficCore
import TrafficTestSupport

/// `report` reads on one thread and counts on another (`PipelinedPump`); the windows must
/// be exactly those of the one-thread `PacketPump`, through many turns of its chunk ring,
/// and a read error must come after every packet before it was counted.
@Suite("PipelinedPump: two threads, the same windows")
struct PipelinedPumpTests {
    static func configuration(maxClients: Int = 100_000, top: Int? = nil) throws -> WindowAggregator.Configuration {
        .init(localNetworks: LocalNetworks(try SyntheticTraffic.localNetworks.map { try NetworkPrefix(parsing: $0) }),
              maxClients: maxClients, top: top)
    }

    /// 50,000 packets: more than six turns of the 8 x 4,096 ring, with late packets,
    /// malformed frames and non-IP frames along the way.
    @Test(arguments: [(100_000, nil), (300, 25)] as [(Int, Int?)])
    func sameRecordsAsThePacketPump(maxClients: Int, top: Int?) throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("many.pcap")
        let truth = try SyntheticTraffic.write(to: url, packets: 50_000, clients: 2_000, seconds: 40, seed: 5, snapLength: 128)
        let configuration = try Self.configuration(maxClients: maxClients, top: top)
        let pipelined = try Pump.file(url, configuration: configuration, pipelined: true)
        let single = try Pump.file(url, configuration: configuration)
        #expect(pipelined.failure == nil)
        #expect(pipelined.records.count == single.records.count)
        #expect(pipelined.records == single.records)
        #expect(pipelined.packets == truth.total.packets)
        #expect(pipelined.bytes == truth.total.bytes)
        expectWellFormed(pipelined.records, windowLength: 5_000_000_000)
    }

    @Test func aReadErrorComesAfterEveryPacketBeforeIt() throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let whole = dir.appendingPathComponent("whole.pcap")
        _ = try SyntheticTraffic.write(to: whole, packets: 12_000, clients: 500, seconds: 20, seed: 9)
        let data = try Data(contentsOf: whole)
        let cut = dir.appendingPathComponent("cut.pcap")
        try Data(data.prefix(data.count * 2 / 3)).write(to: cut)
        let configuration = try Self.configuration()
        let pipelined = try Pump.file(cut, configuration: configuration, pipelined: true)
        let single = try Pump.file(cut, configuration: configuration)
        guard case .readFailed? = pipelined.failure else {
            Issue.record("expected readFailed, got \(String(describing: pipelined.failure))")
            return
        }
        #expect(pipelined.failure == single.failure)
        #expect(pipelined.records == single.records)
        #expect(pipelined.packets > 7_000)
    }
}
