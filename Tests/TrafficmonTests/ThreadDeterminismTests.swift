import Foundation
import Testing
import TrafficCore
import TrafficTestSupport

/// `report --threads N`: the same input gives byte-identical NDJSON whatever N is, as long
/// as no `--max-clients` or flow cap is reached; when one is, the totals, conservation and
/// `other` stay exact (only which parties are listed may differ).
@Suite struct ThreadDeterminismTests {
    static let threadCounts = [1, 2, 3, 8]

    /// `trafficmon report ARGUMENTS --threads N` for every N: exit status and stdout.
    static func runs(_ arguments: [String]) throws -> [(threads: Int, result: TestProcess.Result)] {
        try threadCounts.map { ($0, try ReportCommandTests.trafficmon(["report"] + arguments + ["--threads", String($0)])) }
    }

    static func expectIdentical(_ runs: [(threads: Int, result: TestProcess.Result)], _ what: String,
                                sourceLocation: SourceLocation = #_sourceLocation) {
        guard let first = runs.first else { return }
        for run in runs.dropFirst() {
            #expect(run.result.status == first.result.status, "\(what): status with \(run.threads) threads", sourceLocation: sourceLocation)
            #expect(run.result.stdout == first.result.stdout, "\(what): output with \(run.threads) threads differs from 1 thread",
                    sourceLocation: sourceLocation)
            #expect(run.result.stderr == first.result.stderr, "\(what): stderr with \(run.threads) threads", sourceLocation: sourceLocation)
        }
    }

    /// Generated captures with late packets (reordered timestamps), IPv6, non-IP and
    /// malformed frames, frames cut short, a gap of empty windows between two files read in
    /// one run, both places trafficmon is put, several window lengths and `--top`.
    @Test(arguments: [
        ["--window", "5s"], ["--window", "1s"], ["--window", "500ms", "--top", "7"], ["--window", "1m", "--format", "table"],
    ])
    func generatedCapturesGiveTheSameBytesAtEveryThreadCount(_ options: [String]) throws {
        let dir = try TestProcess.temporaryDirectory("determinism")
        defer { try? FileManager.default.removeItem(at: dir) }
        let start: Int64 = 1_700_000_000 * 1_000_000_000
        let first = dir.appendingPathComponent("first.pcap")
        let second = dir.appendingPathComponent("second.pcapng")
        let uplink = dir.appendingPathComponent("uplink.pcap")
        try SyntheticTraffic(packets: 40_000, clients: 3_000, seconds: 20, seed: 41, start: start).pcap(snapLength: 96).write(to: first)
        // 47 s later, in pcapng (read through libpcap): a gap of windows in between.
        try SyntheticTraffic(packets: 15_000, clients: 800, seconds: 10, seed: 42, start: start + 67 * 1_000_000_000)
            .pcap(format: .pcapng).write(to: second)
        try SyntheticTraffic(packets: 20_000, clients: 200, seconds: 10, seed: 43, layout: .uplink).pcap().write(to: uplink)

        let local = ReportCommandTests.localNetArguments
        let both = try Self.runs([first.path, second.path] + local + options)
        #expect(both.first?.result.status == 0)
        #expect(both.first.map { !$0.result.stdout.isEmpty } == true)
        Self.expectIdentical(both, "two files \(options)")
        let office = try Self.runs([uplink.path] + SyntheticTraffic.uplinkLocalNetworks.flatMap { ["--local-net", $0] } + options)
        Self.expectIdentical(office, "uplink \(options)")
    }

    /// Real captures from tcpdump's test corpus, many deliberately malformed, of several
    /// link types and in both file formats (a refused or broken file too: the same status
    /// and message at every thread count).
    @Test func corpusCapturesGiveTheSameBytesAtEveryThreadCount() throws {
        let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Corpus")
        let files = try FileManager.default.contentsOfDirectory(atPath: corpus.path).filter { $0.hasSuffix(".pcap") || $0.hasSuffix(".pcapng") }
        #expect(files.count >= 20)
        var accepted = 0
        for file in files.sorted() {
            let runs = try Self.runs([corpus.appendingPathComponent(file).path, "--window", "1s"])
            Self.expectIdentical(runs, file)
            if runs.first?.result.status == 0 { accepted += 1 }
        }
        #expect(accepted >= 15)
    }

    /// With `--max-clients 1000` reached (5,000 clients a window), which clients are listed
    /// may differ between thread counts, but never a total: packets, bytes, directions,
    /// non-IP, malformed, late packets, services, and every record conserved.
    @Test func capsReachedKeepTheTotalsExact() throws {
        let dir = try TestProcess.temporaryDirectory("determinism-caps")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("many.pcap")
        let truth = try SyntheticTraffic.write(to: url, packets: 60_000, clients: 20_000, seconds: 15, seed: 44)
        var totals: [[String]] = []
        for (threads, result) in try Self.runs([url.path, "--max-clients", "1000"] + ReportCommandTests.localNetArguments) {
            #expect(result.status == 0)
            let records = try ReportCommandTests.records(result)
            #expect(records.allSatisfy { $0.isConserved }, "\(threads) threads")
            #expect(records.contains { $0.other.clients > 0 }, "the cap is reached")
            #expect(records.reduce(Counts()) { $0 + Counts(packets: $1.packets, bytes: $1.bytes) } == truth.total)
            #expect(records.allSatisfy { $0.clients.count <= 1000 && $0.servers.count <= 1000 })
            totals.append(records.map {
                "\($0.start) \($0.packets) \($0.bytes) \($0.in) \($0.out) \($0.nonIP) \($0.malformed) \($0.latePackets) \($0.services)"
                    + " \($0.other.in + $0.clients.reduce(Counts()) { $0 + $1.in })"
            })
        }
        #expect(Set(totals.map { $0.joined(separator: "\n") }).count == 1)
    }

    /// Past `--max-clients` each thread folds the parties it meets late; merged, a party one
    /// thread listed and another folded counts in `other` whole, so every party of a
    /// window is counted once: listed plus `other`'s distinct count is the same at every
    /// thread count (the folded parties stay fewer than the exact set's 4,096 here).
    @Test func capsReachedCountEachPartyOnce() throws {
        let dir = try TestProcess.temporaryDirectory("determinism-parties")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("parties.pcap")
        _ = try SyntheticTraffic.write(to: url, packets: 40_000, clients: 3_000, seconds: 15, seed: 45)
        var counts: [String] = []
        for (threads, result) in try Self.runs([url.path, "--max-clients", "500"] + ReportCommandTests.localNetArguments) {
            #expect(result.status == 0)
            let records = try ReportCommandTests.records(result)
            #expect(records.contains { $0.other.clients > 500 }, "\(threads) threads: the cap is reached")
            #expect(records.allSatisfy { $0.isConserved }, "\(threads) threads")
            counts.append(records.map {
                "\($0.start) clients \(UInt64($0.clients.count) + $0.other.clients) servers \(UInt64($0.servers.count) + $0.otherServers.servers)"
            }.joined(separator: "\n"))
        }
        #expect(Set(counts).count == 1, "\(counts)")
    }
}
