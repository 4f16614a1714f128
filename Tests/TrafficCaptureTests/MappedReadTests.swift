import CTrafficCaptureShims
import Foundation
import Testing
import TrafficCapture
import TrafficCore
import TrafficTestSupport

/// A regular capture file is read through a memory map; anything else (a FIFO here) goes
/// to libpcap by path. Both must give the same records, and the oracle's totals.
@Suite("Capture files: memory-mapped and streamed reads agree")
struct MappedReadTests {
    @Test(arguments: [PcapWriter.Format.pcapMicro, .pcapNano, .pcapng])
    func fifoAndRegularFileGiveTheSameRecords(format: PcapWriter.Format) throws {
        let traffic = SyntheticTraffic(packets: 3_000, clients: 200, seconds: 25, seed: 11)
        let data = Data(traffic.pcap(snapLength: 96, format: format).data)
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("capture")
        try data.write(to: file)
        let fifo = dir.appendingPathComponent("fifo")
        #expect(mkfifo(fifo.path, 0o600) == 0)

        let writer = Thread {
            guard let handle = FileHandle(forWritingAtPath: fifo.path) else { return }
            handle.write(data)
            try? handle.close()
        }
        writer.start()
        let streamed = try Pump.file(fifo)
        let mapped = try Pump.file(file)

        #expect(streamed.failure == nil)
        #expect(mapped.failure == nil)
        #expect(mapped.framesRead == UInt64(traffic.frames.count))
        #expect(streamed.records == mapped.records)
        let truth = traffic.truth(snapLength: 96).total
        #expect(mapped.records.reduce(Counts()) { $0 + Counts(packets: $1.packets, bytes: $1.bytes) } == truth)
    }

    /// A mapped file cut short mid-record fails with libpcap's read error, after the
    /// records before the cut, as the streamed read does.
    @Test func fileCutMidRecordFailsLikeTheStreamedRead() throws {
        let traffic = SyntheticTraffic(packets: 500, clients: 50, seconds: 10, seed: 3)
        let data = Data(traffic.pcap().data)
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("cut.pcap")
        try Data(data.prefix(data.count - 7)).write(to: file)
        let result = try Pump.file(file)
        guard case .readFailed(_, let reason)? = result.failure else {
            Issue.record("expected readFailed, got \(String(describing: result.failure))")
            return
        }
        #expect(reason.contains("truncated"))
        #expect(result.framesRead == UInt64(traffic.frames.count - 1))
    }

    /// The pages libpcap has read past are let go as the read goes on, so a long capture
    /// does not stay resident: after reading a 30 MB file, at most a few MiB of its
    /// mapping are in this process's memory (read from /proc/self/smaps). With
    /// `PipelinedPump` the counting thread lets them go, once it has counted their frames,
    /// and maps pages in ahead of the reader (at most `ChunkRing.populateAhead`).
    @Test(arguments: [false, true])
    func readPagesAreReleased(pipelined: Bool) throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("long.pcap")
        _ = try SyntheticTraffic.write(to: url, packets: 200_000, clients: 1_000, seconds: 30, seed: 2, snapLength: 128)
        let attributes = try FileManager.default.attributesOfItem(atPath: url.path)
        let size = try #require(attributes[.size] as? Int)
        #expect(size > 20 << 20)
        let source = try PacketSource.openFile(url.path)
        let aggregator = WindowAggregator(configuration: .init()) { (_: WindowRecord) in }
        if pipelined {
            let pump = try PipelinedPump(source: source, aggregator: aggregator)
            try pump.drain()
            #expect(pump.framesRead == 200_000)
            #expect(pump.framesDecodedByCounter > 0)
        } else {
            let pump = try PacketPump(source: source, aggregator: aggregator)
            try pump.drain()
            #expect(pump.framesRead == 200_000)
        }
        let mapped = try Self.residentKilobytes(ofMappingNamed: url.path)
        let resident = try #require(mapped, "the file is not memory-mapped")
        // The last chunk's pages, and for the pipelined read what was mapped in ahead.
        let allowed = pipelined ? 20 * 1024 : 4 * 1024
        #expect(resident <= allowed, "\(resident) KiB of a \(size / 1024) KiB capture still resident")
        withExtendedLifetime(source) {}
    }

    /// The memory stream libpcap reads a mapped file through uses the (read-only) map as
    /// stdio's buffer: reads come straight from it, the reading position stays known, and
    /// the end is a clean end of file. Seeking is not for this stream (libpcap reads a
    /// capture from start to end): a read after a seek out of stdio's window fails as a
    /// read error rather than writing into the map.
    @Test func memoryStreamReadsInReadOnlyMemory() throws {
        let length = 3 * 4096 + 100
        let map = try #require(mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
        #expect(map != MAP_FAILED)
        defer { munmap(map, length) }
        let bytes = map.bindMemory(to: UInt8.self, capacity: length)
        for i in 0..<length { bytes[i] = UInt8(i % 251) }
        #expect(mprotect(map, length, PROT_READ) == 0)

        var state: UnsafeMutablePointer<trafficmon_memory_stream>?
        let stream = try #require(trafficmon_memory_stream_open(map, length, &state))
        let position = try #require(state)
        var buffer = [UInt8](repeating: 0, count: 5_000)
        var read = 0
        while read < length {
            let n = fread(&buffer, 1, min(buffer.count, length - read), stream)
            #expect(n > 0)
            guard n > 0 else { break }
            #expect(buffer[..<n].elementsEqual((read..<read + n).map { UInt8($0 % 251) }))
            read += n
            #expect(trafficmon_memory_stream_offset(position) == read)
        }
        #expect(fread(&buffer, 1, 64, stream) == 0)
        #expect(feof(stream) != 0)
        #expect(ferror(stream) == 0)
        fclose(stream)

        let seeking = try #require(trafficmon_memory_stream_open(map, length, &state))
        #expect(fread(&buffer, 1, 8, seeking) == 8)
        #expect(fseek(seeking, 5_000, SEEK_SET) == 0)
        #expect(fread(&buffer, 1, 4, seeking) == 0)
        #expect(ferror(seeking) != 0)
        fclose(seeking)
    }

    /// The `Rss:` of the mapping of `path` in /proc/self/smaps, in KiB.
    static func residentKilobytes(ofMappingNamed path: String) throws -> Int? {
        // /proc files report size 0, so read to the end rather than by size.
        guard let handle = FileHandle(forReadingAtPath: "/proc/self/smaps") else { return nil }
        defer { try? handle.close() }
        let smaps = String(decoding: try handle.readToEnd() ?? Data(), as: UTF8.self)
        var inMapping = false
        for line in smaps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if let first = fields.first, first.contains("-"), fields.count >= 5 {
                inMapping = line.hasSuffix(path)
            } else if inMapping, fields.first == "Rss:", fields.count >= 2 {
                return Int(fields[1])
            }
        }
        return nil
    }
}
