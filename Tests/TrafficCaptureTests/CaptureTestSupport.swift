import Foundation
import Testing
@testable import TrafficCapture
import TrafficCore
import TrafficTestSupport

/// `Fixtures/manifest.json`: what tshark (the independent oracle) reports for each fixture.
struct FixtureManifest: Decodable {
    struct ServiceFigure: Decodable, Sendable {
        var service: String
        var tsharkFilter: String
        var packets: UInt64
        var bytes: UInt64

        enum CodingKeys: String, CodingKey {
            case service, packets, bytes
            case tsharkFilter = "tshark_filter"
        }
    }

    /// What one (side, party, direction, service) must hold with `local_net` as the local networks.
    struct PartyFigure: Decodable, Sendable {
        var side: String
        var ip: String
        var local: Bool
        var direction: String
        var service: String
        var tsharkFilter: String
        var packets: UInt64
        var bytes: UInt64

        enum CodingKeys: String, CodingKey {
            case side, ip, local, direction, service, packets, bytes
            case tsharkFilter = "tshark_filter"
        }
    }

    struct Entry: Decodable, Sendable, CustomTestStringConvertible {
        var file: String
        var format: String
        var linkType: String
        var packets: UInt64
        var bytes: UInt64
        var outcome: String
        var services: [ServiceFigure]?
        var localNet: [String]?
        var parties: [PartyFigure]?

        enum CodingKeys: String, CodingKey {
            case file, format, packets, bytes, outcome, services, parties
            case linkType = "link_type"
            case localNet = "local_net"
        }

        var testDescription: String { file }

        var url: URL {
            get throws { try Fixtures.url(file) }
        }
    }

    var files: [Entry]
}

enum Fixtures {
    static func url(_ file: String) throws -> URL {
        let name = (file as NSString).deletingPathExtension
        let ext = (file as NSString).pathExtension
        return try #require(
            Bundle.module.url(forResource: name, withExtension: ext, subdirectory: "Fixtures"),
            "fixture \(file) is not in the test bundle")
    }

    static func manifest() throws -> FixtureManifest {
        let data = try Data(contentsOf: try url("manifest.json"))
        return try JSONDecoder().decode(FixtureManifest.self, from: data)
    }

    static func entry(_ file: String) throws -> FixtureManifest.Entry {
        try #require(try manifest().files.first { $0.file == file }, "\(file) is not in manifest.json")
    }

    static func entries(outcome: String) throws -> [FixtureManifest.Entry] {
        try manifest().files.filter { $0.outcome == outcome }
    }
}

/// What one pass of a capture through `PacketPump` + `WindowAggregator` produced.
struct PumpResult {
    var records: [WindowRecord] = []
    /// The error `drain()` ended with, if any (the records before it are kept).
    var failure: CaptureError?
    var framesRead: UInt64 = 0
    /// `ParallelPump` only: frames left undecoded by the walker and decoded by the counting threads.
    var framesDecodedByCounter = 0
    var bytesRead: UInt64 = 0

    var packets: UInt64 { records.reduce(0) { $0 + $1.packets } }
    var bytes: UInt64 { records.reduce(0) { $0 + $1.bytes } }
    var malformed: UInt64 { records.reduce(0) { $0 + $1.malformed.packets } }
    var nonIP: UInt64 { records.reduce(0) { $0 + $1.nonIP.packets } }
    var received: UInt64 { records.reduce(0) { $0 + $1.capture.received } }
    var clients: Set<IPAddress> { Set(records.flatMap { $0.clients.map(\.ip) }) }
    var servers: Set<IPAddress> { Set(records.flatMap { $0.servers.map(\.ip) }) }

    /// Packets and bytes per service label, over every client and direction.
    var services: [String: Counts] {
        var result: [String: Counts] = [:]
        for r in records {
            for c in r.clients {
                for s in c.services { result[s.service.label, default: .zero].add(packets: s.packets, bytes: s.bytes) }
            }
        }
        return result
    }

    /// Packets and bytes per (client, direction, service).
    var flows: [SyntheticTraffic.FlowKey: Counts] { SyntheticTraffic.flows(in: records) }
}

enum Pump {
    /// Reads `url` to its end (or its first read error) and closes the last window, with
    /// `PacketPump` on this thread, or with `ParallelPump` (one walker, `threads` counting
    /// threads, `chunks` chunks in flight).
    static func file(
        _ url: URL, filter: String? = nil,
        configuration: WindowAggregator.Configuration = .init(), threads: Int? = nil, chunks: Int = 32
    ) throws(CaptureError) -> PumpResult {
        let source = try PacketSource.openFile(url.path, filter: filter)
        var result = PumpResult()
        if let threads {
            let records = LockedValue<[WindowRecord]>([])
            let pump = try ParallelPump(configuration: configuration, threads: threads, chunks: chunks) { closed in
                let record = closed.record()
                closed.recycle()
                records.withLock { $0.append(record) }
            }
            do {
                try pump.read(source)
            } catch {
                result.failure = error
            }
            pump.finish()
            result.records = records.withLock { $0 }
            result.framesRead = pump.framesRead
            result.bytesRead = pump.bytesRead
            result.framesDecodedByCounter = pump.framesDecodedByCounters
            return result
        }
        let aggregator = WindowAggregator(configuration: configuration) { (record: WindowRecord) in result.records.append(record) }
        let pump = try PacketPump(source: source, aggregator: aggregator)
        do {
            try pump.drain()
        } catch {
            result.failure = error
        }
        (result.framesRead, result.bytesRead) = (pump.framesRead, pump.bytesRead)
        aggregator.finish()
        return result
    }
}

/// The structural checks every window record must pass.
func expectWellFormed(_ records: [WindowRecord], windowLength: Int64, sourceLocation: SourceLocation = #_sourceLocation) {
    for r in records {
        #expect(r.isConserved, "window \(r.start) does not conserve packets and bytes", sourceLocation: sourceLocation)
        #expect(r.start % windowLength == 0, "window start \(r.start) is not a multiple of \(windowLength)", sourceLocation: sourceLocation)
        #expect(r.end - r.start == windowLength, sourceLocation: sourceLocation)
        #expect(r.capture.received == r.packets, sourceLocation: sourceLocation)
    }
    for (a, b) in zip(records, records.dropFirst()) {
        #expect(a.start < b.start, "windows out of order: \(a.start) then \(b.start)", sourceLocation: sourceLocation)
    }
    if let last = records.last {
        #expect(last.partial, "the last window of a file must be partial", sourceLocation: sourceLocation)
    }
    #expect(records.dropLast().allSatisfy { !$0.partial }, sourceLocation: sourceLocation)
}
