import Foundation
import Testing
@testable import TrafficCapture
import TrafficTestSupport

/// An idle counting thread maps in a capture file's pages ahead of the reader
/// (`MappedFile.populateStep`): in whole steps from a step's start, up to and past any
/// bound it is given, and on again when the reader has moved, to the map's end; never
/// the pages already let go. (Linux 5.14 and later: an older kernel refuses the advice,
/// and the reader then takes the page faults itself.)
@Suite(.enabled(if: kernelPopulates(), "the kernel maps pages in ahead (MADV_POPULATE_READ, Linux 5.14)"))
struct MappedFilePopulateTests {
    static func map(length: Int, in dir: URL) throws -> MappedFile {
        let url = dir.appendingPathComponent("f\(length)")
        try Data(repeating: 0x33, count: length).write(to: url)
        return try #require(MappedFile(path: url.path))
    }

    @Test func stepsStayAlignedAndGoOnToTheEnd() throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let step = MappedFile.step
        let length = 4 * step + 12_345
        let map = try Self.map(length: length, in: dir)
        // A bound that is not a step's end: the last step goes past it to the next step's end.
        var steps = 0
        while map.populateStep(from: 100, before: step + 5000) { steps += 1 }
        #expect(steps == 2)
        #expect(map.populated == 2 * step)
        // The reader moved on: populating goes on from there, to the map's end.
        while map.populateStep(from: 2 * step + 7, before: length + step) { steps += 1 }
        #expect(steps == 5)
        #expect(map.populated == length)
        #expect(!map.populateStep(from: length - 1, before: length + step))
    }

    @Test func pagesLetGoAreNotMappedInAgain() throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let step = MappedFile.step
        let map = try Self.map(length: 4 * step, in: dir)
        map.release(before: 2 * step)
        #expect(map.populateStep(from: 0, before: 3 * step))
        #expect(map.populated == 3 * step)
        #expect(!map.populateStep(from: 0, before: 3 * step))
    }
}

/// Whether this kernel takes `MADV_POPULATE_READ` on a file's map.
private func kernelPopulates() -> Bool {
    guard let dir = try? TestProcess.temporaryDirectory() else { return false }
    defer { try? FileManager.default.removeItem(at: dir) }
    let url = dir.appendingPathComponent("probe")
    guard (try? Data(repeating: 0, count: 4096).write(to: url)) != nil, let map = MappedFile(path: url.path) else { return false }
    return map.populateStep(from: 0, before: 4096)
}
