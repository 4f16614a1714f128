import Foundation
import Testing
@testable import TrafficCapture
import TrafficCore
import TrafficTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A capture file truncated while it is read (logrotate's `copytruncate`): the read ends
/// with `CaptureError.fileShrank`, never SIGBUS, and what was read before the cut is counted.
@Suite(.serialized) struct TruncatedWhileReadingTests {
    static let second: Int64 = 1_000_000_000
    static let t0: Int64 = 1_700_000_000 * second

    /// `packets` 60-byte UDP frames from 200 clients over `seconds` of packet time.
    static func capture(packets: Int, seconds: Int64, format: PcapWriter.Format = .pcapMicro) -> Data {
        var writer = PcapWriter(format: format)
        var frame = FrameBuilder.ethernet(ip: FrameBuilder.ipv4(
            src: IPAddress("198.51.100.1")!, dst: IPAddress("10.0.0.1")!, proto: 17, payload: FrameBuilder.ports(40_000, 53, payload: 18)))
        let step = seconds * second / Int64(packets)
        for n in 0..<packets {
            frame[29] = UInt8(n % 200 + 1)
            writer.append(frame, timestamp: t0 + Int64(n) * step)
        }
        return Data(writer.data)
    }

    /// The offsets where each record of a classic little-endian pcap file ends.
    static func recordEnds(_ data: Data) -> [Int] {
        var ends: [Int] = []
        var at = 24
        while at + 16 <= data.count {
            let captured = Int(data[at + 8]) | Int(data[at + 9]) << 8 | Int(data[at + 10]) << 16 | Int(data[at + 11]) << 24
            at += 16 + captured
            if at > data.count { break }
            ends.append(at)
        }
        return ends
    }

    static func truncate(_ url: URL, to size: Int) {
        #expect(Glibc.truncate(url.path, off_t(size)) == 0)
    }

    static var configuration: WindowAggregator.Configuration {
        var c = WindowAggregator.Configuration()
        c.windowLength = second
        return c
    }

    /// Reads `url`, calling `onWindow` with each closed record: with `PacketPump` on this
    /// thread, or (`pipelined`) with `ParallelPump`'s walker and two counting threads, which
    /// decode frames the walker handed on after it read them.
    static func read(
        _ url: URL, pipelined: Bool, onWindow: @escaping @Sendable (WindowRecord) -> Void = { _ in }
    ) throws -> PumpResult {
        drain(try PacketSource.openFile(url.path), pipelined: pipelined, onWindow: onWindow)
    }

    /// Reads `source` as `read` does; an error starting the pump is the result's failure too.
    static func drain(
        _ source: PacketSource, pipelined: Bool, onWindow: @escaping @Sendable (WindowRecord) -> Void = { _ in }
    ) -> PumpResult {
        do {
            return try Pump.source(source, configuration: configuration, threads: pipelined ? 2 : nil, onWindow: onWindow)
        } catch {
            return PumpResult(failure: error)
        }
    }

    static func isShrank(_ error: CaptureError?) -> Bool {
        if case .fileShrank? = error { return true }
        return false
    }

    /// The guard itself: a page the cut took away reads as 0xFF bytes, the flag is set, and
    /// the process goes on; the page holding the new end reads as zeros past it (the kernel's).
    @Test func pagesTheCutTookAwayReadAsFF() throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("f")
        try Data(repeating: 0x11, count: 64 * 1024).write(to: url)
        let map = try #require(MappedFile(path: url.path))
        #expect(map.guardSlot >= 0)
        #expect(!map.shrank)
        Self.truncate(url, to: 5000)
        let bytes = map.base.assumingMemoryBound(to: UInt8.self)
        #expect(bytes[4999] == 0x11)
        #expect(bytes[5000] == 0)
        #expect(!map.guardFaulted)
        #expect(bytes[40_000] == 0xFF)
        #expect(bytes[64 * 1024 - 1] == 0xFF)
        #expect(map.guardFaulted)
        #expect(map.shrank)
    }

    /// Every map open at once is guarded (`report` maps all its files first): the last of
    /// 300 maps of a file cut under them reads as 0xFF bytes past the cut, not SIGBUS.
    @Test func manyMapsAtOnceAreAllGuarded() throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("f")
        try Data(repeating: 0x22, count: 16 * 1024).write(to: url)
        let maps = try (0..<300).map { _ in try #require(MappedFile(path: url.path)) }
        #expect(maps.allSatisfy { $0.guardSlot >= 0 })
        Self.truncate(url, to: 100)
        let last = try #require(maps.last)
        #expect(last.base.assumingMemoryBound(to: UInt8.self)[12_000] == 0xFF)
        #expect(last.guardFaulted && last.shrank)
    }

    /// A file removed, or renamed and replaced by a shorter one (rotation), while it is read
    /// is read to its end: its pages stay, and the size of whatever its path now leads to is
    /// not its own.
    @Test(arguments: [false, true])
    func aFileRemovedOrReplacedWhileOpenIsReadToItsEnd(replaced: Bool) throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = Self.capture(packets: 100_000, seconds: 10)
        let url = dir.appendingPathComponent("c.pcap")
        try data.write(to: url)
        let source = try PacketSource.openFile(url.path)
        if replaced {
            try FileManager.default.moveItem(at: url, to: dir.appendingPathComponent("c.pcap.1"))
            try data.prefix(100).write(to: url)
        } else {
            try FileManager.default.removeItem(at: url)
        }
        let result = Self.drain(source, pipelined: true)
        #expect(result.failure == nil)
        #expect(result.packets == 100_000)
    }

    /// Cut before the read begins: the records wholly before the cut are read, exactly as
    /// libpcap reads a file of those bytes, then `fileShrank`.
    @Test(arguments: [false, true])
    func aFileCutBeforeItIsReadEndsAtTheCut(pipelined: Bool) throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = Self.capture(packets: 200_000, seconds: 20)
        let url = dir.appendingPathComponent("c.pcap")
        try data.write(to: url)
        let cut = data.count * 3 / 7
        // The same bytes, as a file of that size: libpcap's own reading of them.
        let prefix = dir.appendingPathComponent("prefix.pcap")
        try data.prefix(cut).write(to: prefix)
        let expected = try Pump.file(prefix, configuration: Self.configuration)

        let source = try PacketSource.openFile(url.path)
        Self.truncate(url, to: cut)
        let result = Self.drain(source, pipelined: pipelined)
        #expect(Self.isShrank(result.failure), "\(String(describing: result.failure))")
        #expect(result.failure?.description.contains("truncated while it was read (from \(data.count) to \(cut) bytes") == true)
        let whole = Self.recordEnds(data).filter { $0 <= cut }.count
        #expect(result.packets == UInt64(whole))
        // (Compared without printing them: records of 200 clients each.)
        #expect(result.records.count == expected.records.count)
        #expect(result.records.map(\.start) == expected.records.map(\.start))
        #expect(zip(result.records, expected.records).allSatisfy { $0 == $1 }, "the windows differ from libpcap's read of the same bytes")
        expectWellFormed(result.records, windowLength: Self.second)
    }

    /// Cut to nothing: no record is read, and no signal.
    @Test(arguments: [false, true])
    func aFileCutToNothing(pipelined: Bool) throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("c.pcap")
        try Self.capture(packets: 5_000, seconds: 3).write(to: url)
        let source = try PacketSource.openFile(url.path)
        Self.truncate(url, to: 0)
        let failure = Self.drain(source, pipelined: pipelined).failure
        #expect(Self.isShrank(failure), "\(String(describing: failure))")
    }

    /// Cut while it is read, from the window callback (on the counting thread): the reader is
    /// past the cut by then and the counter still has frames to decode in the pages the cut
    /// took away (the guard's case). The read ends with `fileShrank`; the windows closed before
    /// the cut are those of the whole file.
    @Test(arguments: [false, true])
    func aFileCutWhileItIsReadEndsWithFileShrank(pipelined: Bool) throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = Self.capture(packets: 400_000, seconds: 40)
        let url = dir.appendingPathComponent("c.pcap")
        try data.write(to: url)
        let full = try Self.read(url, pipelined: false)
        #expect(full.failure == nil && full.records.count == 40)

        let cutDone = LockedValue(false)
        let result = try Self.read(url, pipelined: pipelined) { _ in
            // After the first window: a cut a little past the first window's bytes.
            if !cutDone.withLock({ done in defer { done = true }; return done }) {
                Self.truncate(url, to: data.count / 20)
            }
        }
        #expect(cutDone.withLock { $0 })
        #expect(Self.isShrank(result.failure), "\(String(describing: result.failure))")
        #expect(result.records.first.map { $0 == full.records[0] } == true, "the first window differs from the whole file's")
        #expect(result.records.count < full.records.count)
        #expect(result.records.allSatisfy { $0.isConserved })
        #expect(result.framesRead < 400_000)
    }

    /// A pcapng file (read by libpcap through the map) cut before and while it is read.
    @Test func aPcapngFileCutEndsWithFileShrank() throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = Self.capture(packets: 100_000, seconds: 10, format: .pcapng)
        let url = dir.appendingPathComponent("c.pcapng")
        try data.write(to: url)
        let source = try PacketSource.openFile(url.path)
        Self.truncate(url, to: data.count / 3)
        let cut = try Pump.source(source, configuration: Self.configuration)
        #expect(Self.isShrank(cut.failure), "\(String(describing: cut.failure))")
        #expect(cut.framesRead < 100_000 / 3 + 1)

        try data.write(to: url)
        let cutDone = LockedValue(false)
        let result = try Self.read(url, pipelined: true) { _ in
            if !cutDone.withLock({ done in defer { done = true }; return done }) {
                Self.truncate(url, to: data.count / 5)
            }
        }
        #expect(Self.isShrank(result.failure), "\(String(describing: result.failure))")
    }
}
