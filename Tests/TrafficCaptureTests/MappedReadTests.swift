import Foundation
import Testing
import TrafficCapture
import TrafficCore
import TrafficTestSupport

/// A regular capture file is read through a memory map (a classic pcap file's plain
/// records from the map itself, `MappedRecords`, the rest by libpcap); anything else (a
/// FIFO here) goes to libpcap by path, which reads every record itself. Both must give the
/// same records, the same frame counts and the same failure.
@Suite("Capture files: memory-mapped and streamed reads agree")
struct MappedReadTests {
    enum Variant: String, CaseIterable, CustomTestStringConvertible {
        case micro, nano, pcapng, bigEndian, filtered
        /// The file header's snapshot length is below some records': libpcap cuts them,
        /// so the map is read up to the first such record and libpcap reads the rest.
        case cutToSnapLength
        /// A record claims 1 GiB mid-file: libpcap's "invalid packet capture length".
        case oversizeRecord
        /// A record runs past the end of the file: libpcap's "truncated dump file".
        case cutMidRecord
        /// Version 2.3, whose lengths libpcap may swap (one record's are): libpcap reads it all.
        case version23
        /// A snapshot length past libpcap's maximum (kept as it is) and a record longer than
        /// that maximum: libpcap refuses it ("invalid packet capture length").
        case hugeSnapLength
        /// A record whose seconds field is 2^31 or more (read as signed by libpcap 1.10.3,
        /// unsigned by later releases): libpcap reads it and the rest.
        case farTimestamp
        var testDescription: String { rawValue }
    }

    /// Reads `data` as a regular file and through a FIFO, with `filter`.
    static func readBothWays(_ data: Data, filter: String? = nil) throws -> (mapped: PumpResult, streamed: PumpResult) {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("capture")
        try data.write(to: file)
        // The feeder's writes fail quietly if libpcap stops reading at an error.
        let feeder = try FIFOFeeder(at: dir.appendingPathComponent("fifo"), bytes: [UInt8](data), firstPart: data.count)
        feeder.release()
        let streamed = try Pump.file(feeder.url, filter: filter)
        let mapped = try Pump.file(file, filter: filter)
        return (mapped, streamed)
    }

    /// The reason of a read failure (`nil` for none or another error).
    static func readFailure(_ error: CaptureError?) -> String? {
        guard case .readFailed(_, let reason)? = error else { return nil }
        return reason
    }

    @Test(arguments: Variant.allCases)
    func mappedReadMatchesLibpcapsOwn(variant: Variant) throws {
        let traffic = SyntheticTraffic(packets: 3_000, clients: 200, seconds: 25, seed: 11)
        let format: PcapWriter.Format = switch variant {
        case .nano: .pcapNano
        case .pcapng: .pcapng
        default: .pcapMicro
        }
        var data = Data(traffic.pcap(snapLength: 96, format: format).data)
        // The offset of record `n`'s header in a classic (little-endian) file.
        func recordOffset(_ n: Int) -> Int {
            var at = 24
            for _ in 0..<n { at += 16 + Int(data[at + 8]) | Int(data[at + 9]) << 8 | Int(data[at + 10]) << 16 }
            return at
        }
        switch variant {
        case .bigEndian: data = DeferredDecodingTests.bigEndian(data)
        case .cutToSnapLength:
            // 30 bytes: the IPv4 header is cut, so a frame read whole would count differently.
            data.replaceSubrange(16..<20, with: [30, 0, 0, 0])
        case .oversizeRecord:
            let at = recordOffset(1_234)
            data.replaceSubrange(at + 8..<at + 12, with: [0, 0, 0, 0x40])
        case .cutMidRecord:
            let at = recordOffset(2_000)
            data = data.prefix(at + 16 + 10)
        case .version23:
            // A roomy snapshot length, and one record written the old way (its two lengths
            // swapped): libpcap swaps them back, as a captured length over the wire length.
            data.replaceSubrange(6..<8, with: [3, 0])
            data.replaceSubrange(16..<20, with: [0, 0, 1, 0])
            func field(_ at: Int) -> Int { Int(data[at]) | Int(data[at + 1]) << 8 | Int(data[at + 2]) << 16 }
            let cut = (100..<3_000).map(recordOffset).first { at in field(at + 8) == 96 && field(at + 12) > 96 }
            let swapped = try #require(cut)
            let lengths = Array(data[swapped + 8..<swapped + 16])
            data.replaceSubrange(swapped + 8..<swapped + 16, with: lengths[4..<8] + lengths[0..<4])
        case .hugeSnapLength:
            data.replaceSubrange(16..<20, with: [0xFF, 0xFF, 0xFF, 0x7F])
            let at = recordOffset(100)
            data.replaceSubrange(at + 8..<at + 12, with: [0xE0, 0x93, 0x04, 0])  // 300,000
        case .farTimestamp:
            let at = recordOffset(500)
            data.replaceSubrange(at..<at + 4, with: [0, 0, 0, 0x90])
        default: break
        }
        let filter = variant == .filtered ? "tcp or vlan" : nil
        let (mapped, streamed) = try Self.readBothWays(data, filter: filter)

        // The same failure, but for the file's name.
        #expect(Self.readFailure(mapped.failure) == Self.readFailure(streamed.failure))
        #expect((mapped.failure == nil) == (streamed.failure == nil))
        #expect(mapped.framesRead == streamed.framesRead)
        #expect(mapped.bytesRead == streamed.bytesRead)
        #expect(mapped.records == streamed.records)
        switch variant {
        case .micro, .nano, .pcapng, .bigEndian, .version23, .farTimestamp:
            #expect(mapped.failure == nil)
            #expect(mapped.framesRead == UInt64(traffic.frames.count))
            let truth = traffic.truth(snapLength: 96).total
            #expect(mapped.records.reduce(Counts()) { $0 + Counts(packets: $1.packets, bytes: $1.bytes) } == truth)
        case .filtered:
            #expect(mapped.failure == nil)
            #expect(mapped.framesRead > 0 && mapped.framesRead < UInt64(traffic.frames.count))
        case .cutToSnapLength:
            #expect(mapped.failure == nil)
            #expect(mapped.framesRead == UInt64(traffic.frames.count))
        case .oversizeRecord:
            #expect(mapped.framesRead == 1_234)
            #expect(Self.readFailure(mapped.failure)?.contains("invalid packet capture length") == true)
        case .hugeSnapLength:
            #expect(mapped.framesRead == 100)
            #expect(Self.readFailure(mapped.failure)?.contains("invalid packet capture length") == true)
        case .cutMidRecord:
            #expect(mapped.framesRead == 2_000)
            #expect(Self.readFailure(mapped.failure)?.contains("truncated") == true)
        }
    }

    /// Record and file headers rewritten at random (seeded: the same files every run) with
    /// the values where libpcap's checks and `MappedRecords`' guards sit: lengths around the
    /// snapshot length and libpcap's maximum, zero, past the end of the file, time fields
    /// around 2^31, another minor version. Whatever the bytes, the mapped read and libpcap's
    /// own give the same records, counts and failure.
    @Test(arguments: 0..<24)
    func randomlyRewrittenHeadersReadAlike(seed: Int) throws {
        var rng = SplitMix64(seed: UInt64(seed) &+ 0x5EED)
        let traffic = SyntheticTraffic(packets: 400, clients: 40, seconds: 12, seed: UInt64(seed))
        var data = Data(traffic.pcap(snapLength: 96, format: seed % 2 == 0 ? .pcapMicro : .pcapNano).data)
        var headers: [Int] = []
        var at = 24
        while at + 16 <= data.count {
            headers.append(at)
            at += 16 + (Int(data[at + 8]) | Int(data[at + 9]) << 8 | Int(data[at + 10]) << 16)
        }
        func put(_ value: UInt32, at offset: Int) {
            data.replaceSubrange(offset..<offset + 4, with: withUnsafeBytes(of: value.littleEndian) { Array($0) })
        }
        let lengths: [UInt32] = [0, 1, 13, 95, 96, 97, 1_500, 65_535, 262_143, 262_144, 262_145, 1 << 30, .max,
                                 UInt32(data.count), UInt32.random(in: 0...4_096, using: &rng)]
        let times: [UInt32] = [0, (1 << 31) - 1, 1 << 31, .max, 999_999, 1_000_000, 999_999_999, 1_000_000_000]
        for _ in 0..<Int.random(in: 1...3, using: &rng) {
            let record = headers[Int.random(in: 0..<headers.count, using: &rng)]
            switch Int.random(in: 0..<6, using: &rng) {
            case 0: put(lengths.randomElement(using: &rng) ?? 0, at: record + 8)        // captured length
            case 1: put(lengths.randomElement(using: &rng) ?? 0, at: record + 12)       // wire length
            case 2: put(times.randomElement(using: &rng) ?? 0, at: record)              // seconds
            case 3: put(times.randomElement(using: &rng) ?? 0, at: record + 4)          // sub-seconds
            case 4: put(lengths.randomElement(using: &rng) ?? 0, at: 16)                // snapshot length
            default: data.replaceSubrange(6..<8, with: [UInt8.random(in: 0...5, using: &rng), 0])  // minor version
            }
        }
        if Bool.random(using: &rng) { data = data.prefix(Int.random(in: 24...data.count, using: &rng)) }

        // Opened both ways by hand: a rewritten file header may be refused at open, and
        // both must refuse it alike.
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("capture")
        try data.write(to: file)
        let feeder = try FIFOFeeder(at: dir.appendingPathComponent("fifo"), bytes: [UInt8](data), firstPart: data.count)
        feeder.release()
        let streamedRead = Result { () throws(CaptureError) in try Pump.file(feeder.url) }
        let mappedRead = Result { () throws(CaptureError) in try Pump.file(file) }
        func text(_ error: CaptureError) -> String {
            "\(error)".replacingOccurrences(of: feeder.url.path, with: "FILE").replacingOccurrences(of: file.path, with: "FILE")
        }
        switch (mappedRead, streamedRead) {
        case (.failure(let m), .failure(let s)):
            #expect(text(m) == text(s))
        case (.success(let mapped), .success(let streamed)):
            #expect(mapped.failure.map(text) == streamed.failure.map(text))
            #expect(mapped.framesRead == streamed.framesRead)
            #expect(mapped.bytesRead == streamed.bytesRead)
            let sameRecords = mapped.records == streamed.records
            #expect(sameRecords, "\(mapped.records.count) records mapped, \(streamed.records.count) streamed")
        default:
            Issue.record("opened one way only: mapped \(mappedRead), streamed \(streamedRead)")
        }
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
        #expect(Self.readFailure(result.failure)?.contains("truncated") == true)
        #expect(result.framesRead == UInt64(traffic.frames.count - 1))
    }

    /// The pages libpcap has read past are let go as the read goes on, so a long capture
    /// does not stay resident: after reading a 30 MB file, at most a few MiB of its
    /// mapping are in this process's memory (read from /proc/self/smaps). With
    /// `ParallelPump` they go once every frame before them has been counted.
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
            let pump = try ParallelPump(configuration: .init(), threads: 2, walkerDecodesWhenBehind: false) { $0.recycle() }
            try pump.read(source)
            pump.finish()
            #expect(pump.framesRead == 200_000)
            #expect(pump.framesDecodedByCounters == 200_000)
        } else {
            let pump = try PacketPump(source: source, aggregator: aggregator)
            try pump.drain()
            #expect(pump.framesRead == 200_000)
        }
        let mapped = try Self.residentKilobytes(ofMappingNamed: url.path)
        let resident = try #require(mapped, "the file is not memory-mapped")
        // The last chunk's pages, and for the parallel read the chunks still in flight.
        let allowed = pipelined ? 20 * 1024 : 4 * 1024
        #expect(resident <= allowed, "\(resident) KiB of a \(size / 1024) KiB capture still resident")
        withExtendedLifetime(source) {}
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
