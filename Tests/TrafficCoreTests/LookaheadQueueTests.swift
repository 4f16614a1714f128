import Testing
@testable import TrafficCore
import TrafficTestSupport

/// `enqueue` counts each frame a few frames later (after prefetching its table slot);
/// the records must be exactly those of counting every frame at once, whatever comes
/// between the frames (injects, snapshots, the wall clock) and wherever batches end.
@Suite("WindowAggregator: look-ahead queue")
struct LookaheadQueueTests {
    nonisolated(unsafe) static let traffic = SyntheticTraffic(packets: 4_000, clients: 300, seconds: 40, seed: 7)
    static let decoder = PacketDecoder(linkType: .ethernet)!

    static func configuration(top: Int? = nil, maxClients: Int = 100_000) throws -> WindowAggregator.Configuration {
        .init(localNetworks: LocalNetworks(try SyntheticTraffic.localNetworks.map { try NetworkPrefix(parsing: $0) }),
              maxClients: maxClients, top: top)
    }

    /// Counts every frame at once through `add(frame:)`.
    static func direct(_ configuration: WindowAggregator.Configuration) -> [WindowRecord] {
        let (agg, out) = makeAggregator(configuration)
        for frame in traffic.frames {
            frame.bytes.withUnsafeBytes {
                agg.add(frame: $0, decoder: decoder, timestamp: frame.timestamp, wireLength: frame.wireLength)
            }
        }
        agg.finish()
        return out.records
    }

    @Test(arguments: [1, 3, 8, 97, 10_000], [nil, 20] as [Int?])
    func queuedCountingEqualsDirectCounting(batch: Int, top: Int?) throws {
        let configuration = try Self.configuration(top: top)
        let (agg, out) = makeAggregator(configuration)
        for (i, frame) in Self.traffic.frames.enumerated() {
            frame.bytes.withUnsafeBytes {
                agg.enqueue(frame: $0, decoder: Self.decoder, timestamp: frame.timestamp, wireLength: frame.wireLength)
            }
            if (i + 1) % batch == 0 { agg.drainQueue() }
        }
        agg.finish()  // drains what is still queued first
        let expected = Self.direct(configuration)
        #expect(out.records.count == expected.count)
        #expect(out.records == expected)
        #expect(out.records.reduce(0) { $0 + $1.packets } == UInt64(Self.traffic.frames.count))
    }

    /// An inject or a snapshot between queued frames sees every frame before it, and an
    /// inject lands after them: the same records as doing the same things without a queue.
    @Test func injectsAndSnapshotsDrainTheQueueFirst() throws {
        let configuration = try Self.configuration(maxClients: 150)
        let injected = Attribution(client: IPAddress("203.0.113.9")!, direction: .inbound, service: Service(label: "UDP/53")!)
        let (queued, queuedOut) = makeAggregator(configuration)
        let (plain, plainOut) = makeAggregator(configuration)
        for (i, frame) in Self.traffic.frames.enumerated() {
            frame.bytes.withUnsafeBytes {
                queued.enqueue(frame: $0, decoder: Self.decoder, timestamp: frame.timestamp, wireLength: frame.wireLength)
                plain.add(frame: $0, decoder: Self.decoder, timestamp: frame.timestamp, wireLength: frame.wireLength)
            }
            if i % 500 == 250 {
                queued.add(injected, timestamp: frame.timestamp, wireLength: 100)
                plain.add(injected, timestamp: frame.timestamp, wireLength: 100)
            }
            if i % 700 == 350 {
                let snapshot = try #require(queued.snapshot())
                #expect(snapshot == plain.snapshot())
                #expect(snapshot.isConserved)
            }
        }
        queued.advance(to: Self.traffic.frames.last!.timestamp + 60 * Timestamp.nanosPerSecond, emitEmpty: false)
        plain.advance(to: Self.traffic.frames.last!.timestamp + 60 * Timestamp.nanosPerSecond, emitEmpty: false)
        #expect(queuedOut.records == plainOut.records)
        #expect(queuedOut.records.reduce(0) { $0 + $1.packets } == UInt64(Self.traffic.frames.count + Self.traffic.frames.count / 500))
    }
}
