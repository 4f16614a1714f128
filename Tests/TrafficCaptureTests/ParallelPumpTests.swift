import Foundation
import Testing
import TrafficCapture
import TrafficCore
import TrafficTestSupport

/// `report` walks the file on one thread and decodes and counts on others (`ParallelPump`);
/// the windows must be exactly those of the one-thread `PacketPump`, whatever the number of
/// counting threads, through many turns of its chunks, and a read error must come after
/// every packet before it was counted.
@Suite("ParallelPump: one walker, N counting threads, the same windows")
struct ParallelPumpTests {
    static func configuration(maxClients: Int = 100_000, top: Int? = nil) throws -> WindowAggregator.Configuration {
        .init(localNetworks: LocalNetworks(try SyntheticTraffic.localNetworks.map { try NetworkPrefix(parsing: $0) }),
              maxClients: maxClients, top: top)
    }

    /// 50,000 packets: several turns of 5 chunks of 4,096 (and a part of a turn of the
    /// default 32), with late packets, malformed frames and non-IP frames along the way, on
    /// 1, 2 and 3 counting threads. With a `--max-clients` cap reached the totals and
    /// conservation still hold, and which clients are listed may differ.
    @Test(arguments: [(100_000, nil, 5), (300, 25, 5), (100_000, nil, 32)] as [(Int, Int?, Int)], [1, 2, 3])
    func sameRecordsAsThePacketPump(setup: (maxClients: Int, top: Int?, chunks: Int), threads: Int) throws {
        let (maxClients, top, chunks) = setup
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("many.pcap")
        let truth = try SyntheticTraffic.write(to: url, packets: 50_000, clients: 2_000, seconds: 40, seed: 5, snapLength: 128)
        let configuration = try Self.configuration(maxClients: maxClients, top: top)
        let pipelined = try Pump.file(url, configuration: configuration, threads: threads, chunks: chunks, walkerDecodesWhenBehind: false)
        let single = try Pump.file(url, configuration: configuration)
        #expect(pipelined.failure == nil)
        #expect(pipelined.framesDecodedByCounter == 50_000)
        #expect(pipelined.records.count == single.records.count)
        if maxClients >= 2_000 || threads == 1 {
            #expect(pipelined.records == single.records)
        } else {
            for (a, b) in zip(pipelined.records, single.records) {
                #expect(a.start == b.start && a.packets == b.packets && a.bytes == b.bytes && a.in == b.in && a.out == b.out)
                #expect(a.other.packets + a.clients.reduce(0) { $0 + $1.total.packets }
                    == b.other.packets + b.clients.reduce(0) { $0 + $1.total.packets })
                #expect(a.nonIP == b.nonIP && a.malformed == b.malformed && a.latePackets == b.latePackets && a.services == b.services)
            }
        }
        #expect(pipelined.packets == truth.total.packets)
        #expect(pipelined.bytes == truth.total.bytes)
        expectWellFormed(pipelined.records, windowLength: 5_000_000_000)
    }

    /// One counting thread falls behind a walker that only places frames: the walker then
    /// decodes chunks itself (the counter decodes fewer than all the frames), and the
    /// records are those of one thread reading alone.
    @Test func theWalkerDecodesWhenTheCounterFallsBehind() throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("many.pcap")
        let truth = try SyntheticTraffic.write(to: url, packets: 200_000, clients: 5_000, seconds: 30, seed: 8, snapLength: 128)
        let configuration = try Self.configuration()
        let shared = try Pump.file(url, configuration: configuration, threads: 1, chunks: 4)
        let single = try Pump.file(url, configuration: configuration)
        #expect(shared.failure == nil)
        #expect(shared.framesRead == 200_000)
        #expect(shared.framesDecodedByCounter < 200_000, "the walker decoded no chunk")
        #expect(shared.records == single.records)
        #expect(shared.packets == truth.total.packets && shared.bytes == truth.total.bytes)
    }

    /// `stop()` from the windows' consumer ends the read at the walker's next chunk: fewer
    /// frames read than the file holds, every one of them in a window `finish()` hands on.
    @Test func stopEndsTheReadEarly() throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("many.pcap")
        _ = try SyntheticTraffic.write(to: url, packets: 200_000, clients: 2_000, seconds: 30, seed: 9, snapLength: 128)
        let stopping = LockedValue<ParallelPump?>(nil)
        let received = LockedValue<UInt64>(0)
        let pump = try ParallelPump(configuration: try Self.configuration(), threads: 1, chunks: 4) { closed in
            let record = closed.record()
            closed.recycle()
            received.withLock { $0 += record.capture.received }
            stopping.withLock { $0?.stop() }
        }
        stopping.withLock { $0 = pump }
        try pump.read(try PacketSource.openFile(url.path))
        pump.finish()
        #expect(pump.framesRead > 0 && pump.framesRead < 200_000, "\(pump.framesRead) frames read")
        #expect(received.withLock { $0 } == pump.framesRead)
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
        let pipelined = try Pump.file(cut, configuration: configuration, threads: 2, chunks: 4)
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

/// The walker leaves frames undecoded where they lie in the file's memory map, for the
/// counting threads to decode: only the records `MappedRecords` reads in a classic pcap
/// file (not those libpcap reads), and with exactly the windows of `PacketPump`.
@Suite("ParallelPump: frames decoded by the counting threads")
struct DeferredDecodingTests {
    enum Variant: String, CaseIterable, CustomTestStringConvertible {
        case micro, nano, bigEndian, pcapng, cutToSnapLength, filtered
        var testDescription: String { rawValue }
    }

    /// A little-endian classic pcap file rewritten in big-endian order (its header and each
    /// record header), as a capture written on a big-endian machine.
    static func bigEndian(_ data: Data) -> Data {
        var bytes = [UInt8](data)
        func swap32(at i: Int) { bytes[i..<i + 4].reverse() }
        func swap16(at i: Int) { bytes[i..<i + 2].reverse() }
        swap32(at: 0)
        swap16(at: 4)
        swap16(at: 6)
        for field in stride(from: 8, to: 24, by: 4) { swap32(at: field) }
        var at = 24
        while at + 16 <= bytes.count {
            let captured = Int(bytes[at + 8]) | Int(bytes[at + 9]) << 8 | Int(bytes[at + 10]) << 16 | Int(bytes[at + 11]) << 24
            for field in stride(from: at, to: at + 16, by: 4) { swap32(at: field) }
            at += 16 + captured
        }
        return Data(bytes)
    }

    @Test(arguments: Variant.allCases)
    func sameRecordsAsThePacketPump(variant: Variant) throws {
        let traffic = SyntheticTraffic(packets: 30_000, clients: 1_500, seconds: 30, seed: 21)
        let format: PcapWriter.Format = switch variant {
        case .nano: .pcapNano
        case .pcapng: .pcapng
        default: .pcapMicro
        }
        var data = Data(traffic.pcap(snapLength: 128, format: format).data)
        switch variant {
        case .bigEndian:
            data = Self.bigEndian(data)
        case .cutToSnapLength:
            // The file header says 60 bytes, the records hold up to 128: the map is read up
            // to the first longer record, then libpcap reads (and cuts) the rest.
            data.replaceSubrange(16..<20, with: [60, 0, 0, 0])
        default:
            break
        }
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("capture")
        try data.write(to: url)
        let filter = variant == .filtered ? "tcp or vlan" : nil
        let configuration = try ParallelPumpTests.configuration()
        let pipelined = try Pump.file(url, filter: filter, configuration: configuration, threads: 2, walkerDecodesWhenBehind: false)
        let single = try Pump.file(url, filter: filter, configuration: configuration)

        #expect(pipelined.failure == nil)
        #expect(single.failure == nil)
        #expect(pipelined.records == single.records)
        #expect(pipelined.framesRead == single.framesRead)
        switch variant {
        case .micro, .nano, .bigEndian:
            #expect(pipelined.framesDecodedByCounter == traffic.frames.count)
        case .filtered:
            #expect(UInt64(pipelined.framesDecodedByCounter) == pipelined.framesRead)
        case .pcapng:
            #expect(pipelined.framesDecodedByCounter == 0)
        case .cutToSnapLength:
            // Only frames before the first longer one are read from the map.
            let longer = traffic.frames.filter { min($0.bytes.count, 128) > 60 }.count
            #expect(pipelined.framesDecodedByCounter <= traffic.frames.count - longer)
        }
        if variant != .filtered {
            let truth = traffic.truth(snapLength: 128).total
            #expect(pipelined.records.reduce(Counts()) { $0 + Counts(packets: $1.packets, bytes: $1.bytes) } == truth)
        } else {
            #expect(pipelined.framesRead < UInt64(traffic.frames.count))
        }
    }
}
