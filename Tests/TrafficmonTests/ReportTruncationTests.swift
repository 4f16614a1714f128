import Foundation
import Testing
import TrafficCore
import TrafficTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// `trafficmon report` on a capture file truncated while it is open (logrotate's
/// `copytruncate`): one clear line and exit status 2, the windows read before the cut
/// printed, and no signal.
@Suite struct ReportTruncationTests {
    /// Whether process `pid` has `path` mapped (read from /proc/PID/maps).
    static func maps(_ pid: Int32, _ path: String) -> Bool {
        ((try? String(contentsOfFile: "/proc/\(pid)/maps", encoding: .utf8)) ?? "").contains(path)
    }

    /// `report first.pcap second.pcap`: the first file comes through a FIFO held back after a
    /// few records; once the second is open (mapped), it is cut to `cut` of its size, then
    /// the FIFO is let go.
    @Test(arguments: [0.0, 0.4])
    func aFileCutAfterItWasOpenedEndsWithExit2(cut: Double) async throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let first = SyntheticTraffic(packets: 2_000, clients: 30, seconds: 10, seed: 31, start: 1_700_000_000 * 1_000_000_000)
        let firstBytes = first.pcap().data
        let feeder = try FIFOFeeder(at: dir.appendingPathComponent("first.pcap"), bytes: firstBytes, firstPart: 24 + 4096)
        defer { feeder.release() }
        let second = dir.appendingPathComponent("second.pcap")
        let secondTraffic = SyntheticTraffic(packets: 50_000, clients: 300, seconds: 60, seed: 32, start: 1_700_000_100 * 1_000_000_000)
        let secondBytes = secondTraffic.pcap().data
        try Data(secondBytes).write(to: second)

        let process = try ServerProcess.trafficmon(["report", feeder.url.path, second.path], port: 0, in: dir)
        defer { process.stop() }
        try await ProcessWait.until("the second file mapped", timeout: 30) {
            Self.maps(process.pid, second.path)
        }
        let size = Int(Double(secondBytes.count) * cut)
        #expect(truncate(second.path, off_t(size)) == 0)
        feeder.release()
        let exit = try await process.waitForExit(timeout: 60)
        #expect(exit == ServerProcess.Exit(status: 2, signaled: false), "report ended with \(exit.map(\.description) ?? "no exit in 60 s")")
        let lines = TestProcess.lines(process.stderr)
        #expect(lines.count == 1, "stderr: \(process.stderr)")
        #expect(lines.first?.hasPrefix("trafficmon: capture file \(second.path) was truncated while it was read") == true, "\(lines)")
        #expect(lines.first?.contains("to \(size) bytes") == true)
        // The windows read before: every line a record, the first file's windows all there.
        let records = try process.stdout.split(separator: "\n").map {
            try JSONDecoder().decode(WindowRecord.self, from: Data($0.utf8))
        }
        let firstPackets = first.truth.total.packets
        #expect(records.reduce(0) { $0 + $1.packets } >= firstPackets)
        #expect(records.allSatisfy { $0.isConserved })
        #expect(records.last?.partial == true)
    }
}

/// Polling for tests that run processes.
enum ProcessWait {
    static func until(_ what: String, timeout: TimeInterval, _ condition: () -> Bool) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !condition() {
            guard Date() < deadline else { throw TestProcess.Failure("timed out waiting for \(what)") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}
