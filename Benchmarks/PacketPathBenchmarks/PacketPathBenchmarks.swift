// The packet path under ordo-one/benchmark: decode alone, and decode + attribute +
// count, per packet, with the malloc counters that show it allocates nothing once the
// hash tables have grown to the traffic.
//
//   TRAFFICMON_BENCHMARKS=1 swift package --scratch-path .build-bench benchmark
import Benchmark
import TrafficCore
import TrafficTestSupport

/// 100,000 synthetic frames (Ethernet, VLAN, IPv4/IPv6, 5,000 clients) laid out back to back,
/// all inside one 5-second window so that no window closes while measuring.
struct Frames {
    let bytes: UnsafeMutableRawBufferPointer
    let offsets: [Int]
    let lengths: [Int]
    let wireLengths: [Int]
    let timestamps: [Int64]

    init(count: Int) {
        let traffic = SyntheticTraffic(packets: count, clients: 5_000, seconds: 4, seed: 42, reorder: false)
        var offsets: [Int] = [], lengths: [Int] = [], wire: [Int] = [], times: [Int64] = []
        var total = 0
        for f in traffic.frames {
            offsets.append(total)
            let captured = min(f.bytes.count, 128)
            lengths.append(captured)
            wire.append(f.wireLength)
            times.append(f.timestamp)
            total += captured
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: total, alignment: 8)
        for (i, f) in traffic.frames.enumerated() {
            buffer.baseAddress!.advanced(by: offsets[i]).copyMemory(from: f.bytes, byteCount: lengths[i])
        }
        self.bytes = buffer
        self.offsets = offsets
        self.lengths = lengths
        self.wireLengths = wire
        self.timestamps = times
    }

    func frame(_ i: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[offsets[i]..<(offsets[i] + lengths[i])])
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal, .instructions],
        scalingFactor: .one, maxDuration: .seconds(3), maxIterations: 50)

    let count = 100_000
    let frames = Frames(count: count)
    let decoder = PacketDecoder(linkType: .ethernet)!
    let local = LocalNetworks(SyntheticTraffic.localNetworks.compactMap { try? NetworkPrefix(parsing: $0) })

    Benchmark("decode (100k packets)") { benchmark in
        var ip = 0
        for _ in benchmark.scaledIterations {
            for i in 0..<count where decoder.decode(frames.frame(i)).kind == .ip { ip &+= 1 }
        }
        blackHole(ip)
    }

    // Warm-up fills the tables once; the measured runs then add the same packets again
    // into the same window: the steady state of a busy window.
    let aggregator = WindowAggregator(configuration: .init(localNetworks: local)) { (closed: ClosedWindow) in
        closed.recycle()
    }
    for i in 0..<count {
        aggregator.add(frame: frames.frame(i), decoder: decoder, timestamp: frames.timestamps[i], wireLength: frames.wireLengths[i])
    }
    Benchmark("decode + attribute + count (100k packets)") { benchmark in
        for _ in benchmark.scaledIterations {
            for i in 0..<count {
                aggregator.add(frame: frames.frame(i), decoder: decoder, timestamp: frames.timestamps[i], wireLength: frames.wireLengths[i])
            }
        }
    }

    // The path PacketPump takes: each frame decoded and attributed into a batch of prepared
    // packets, the batch counted with hashes and prefetches a few packets ahead.
    let prepared = UnsafeMutableBufferPointer<PreparedPacket>.allocate(capacity: 128)
    prepared.initialize(repeating: PreparedPacket())
    Benchmark("decode + attribute + count, prepared batches of 128 (as PacketPump) (100k packets)") { benchmark in
        for _ in benchmark.scaledIterations {
            var batched = 0
            for i in 0..<count {
                aggregator.prepare(
                    frame: frames.frame(i), decoder: decoder, timestamp: frames.timestamps[i], wireLength: frames.wireLengths[i],
                    into: prepared.baseAddress! + batched)
                batched += 1
                if batched == prepared.count {
                    aggregator.count(prepared)
                    batched = 0
                }
            }
            aggregator.count(UnsafeMutableBufferPointer(rebasing: prepared[..<batched]))
        }
    }

    Benchmark("close a window of 100k packets (build its record)") { benchmark in
        for _ in benchmark.scaledIterations {
            benchmark.stopMeasurement()
            var record: WindowRecord?
            let closing = WindowAggregator(configuration: .init(localNetworks: local, top: 50)) { (r: WindowRecord) in record = r }
            for i in 0..<count {
                closing.add(frame: frames.frame(i), decoder: decoder, timestamp: frames.timestamps[i], wireLength: frames.wireLengths[i])
            }
            benchmark.startMeasurement()
            closing.finish()
            blackHole(record)
        }
    }
}
