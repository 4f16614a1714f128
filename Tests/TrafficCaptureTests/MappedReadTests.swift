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
}
