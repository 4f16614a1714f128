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
