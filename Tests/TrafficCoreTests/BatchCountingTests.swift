import Testing
@testable import TrafficCore
import TrafficTestSupport

/// `count(_:)` counts prepared packets in batches, hashing and prefetching a few packets
/// ahead; the records must be exactly those of counting every frame at once, whatever
/// comes between the batches (injects, snapshots, the wall clock) and wherever they end.
@Suite("WindowAggregator: counting prepared batches")
struct BatchCountingTests {
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

    /// Prepares `frames` and counts them as one batch.
    static func countBatch(_ agg: WindowAggregator, _ frames: ArraySlice<SyntheticTraffic.Frame>) {
        var prepared = [PreparedPacket](repeating: PreparedPacket(), count: frames.count)
        prepared.withUnsafeMutableBufferPointer { batch in
            for (i, frame) in frames.enumerated() {
                frame.bytes.withUnsafeBytes {
                    agg.prepare(frame: $0, decoder: decoder, timestamp: frame.timestamp, wireLength: frame.wireLength, into: batch.baseAddress! + i)
                }
            }
            agg.count(batch)
        }
    }

    @Test(arguments: [1, 3, 8, 97, 10_000], [nil, 20] as [Int?])
    func batchCountingEqualsDirectCounting(batch: Int, top: Int?) throws {
        let configuration = try Self.configuration(top: top)
        let (agg, out) = makeAggregator(configuration)
        let frames = Self.traffic.frames
        for start in stride(from: 0, to: frames.count, by: batch) {
            Self.countBatch(agg, frames[start..<min(start + batch, frames.count)])
        }
        agg.finish()
        let expected = Self.direct(configuration)
        #expect(out.records.count == expected.count)
        #expect(out.records == expected)
        #expect(out.records.reduce(0) { $0 + $1.packets } == UInt64(Self.traffic.frames.count))
    }

    /// An inject or a snapshot between batches sees every frame before it, and an inject
    /// lands after them: the same records as doing the same things frame by frame.
    @Test func injectsAndSnapshotsBetweenBatchesSeeEveryFrameBefore() throws {
        let configuration = try Self.configuration(maxClients: 150)
        let injected = Attribution(client: IPAddress("203.0.113.9")!, direction: .inbound, service: Service(label: "UDP/53")!)
        let (batched, batchedOut) = makeAggregator(configuration)
        let (plain, plainOut) = makeAggregator(configuration)
        let frames = Self.traffic.frames
        for (i, frame) in frames.enumerated() {
            // Batches of 50 (the frame that ends one is counted with it), frame by frame beside;
            // injects and snapshots come right after a batch (i % 50 == 49).
            if i % 50 == 49 { Self.countBatch(batched, frames[(i - 49)...i]) }
            frame.bytes.withUnsafeBytes {
                plain.add(frame: $0, decoder: Self.decoder, timestamp: frame.timestamp, wireLength: frame.wireLength)
            }
            if i % 500 == 249 {
                batched.add(injected, timestamp: frame.timestamp, wireLength: 100)
                plain.add(injected, timestamp: frame.timestamp, wireLength: 100)
            }
            if i % 700 == 349 {
                let snapshot = try #require(batched.snapshot())
                #expect(snapshot == plain.snapshot())
                #expect(snapshot.isConserved)
            }
        }
        batched.advance(to: Self.traffic.frames.last!.timestamp + 60 * Timestamp.nanosPerSecond, emitEmpty: false)
        plain.advance(to: Self.traffic.frames.last!.timestamp + 60 * Timestamp.nanosPerSecond, emitEmpty: false)
        #expect(batchedOut.records == plainOut.records)
        #expect(batchedOut.records.reduce(0) { $0 + $1.packets } == UInt64(Self.traffic.frames.count + Self.traffic.frames.count / 500))
    }
}
