import Foundation
import Testing
@testable import TrafficCapture
import TrafficTestSupport

/// An idle counting thread maps in a capture file's pages ahead of the reader
/// (`MappedFile.populateStep`): in whole steps from a step's start, up to and past any
/// bound it is given, and on again when the reader has moved, to the map's end.
@Suite struct MappedFilePopulateTests {
    @Test func stepsStayAlignedAndGoOnToTheEnd() throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("f")
        let length = 4 * MappedFile.step + 12_345
        try Data(repeating: 0x33, count: length).write(to: url)
        let map = try #require(MappedFile(path: url.path))
        // A bound that is not a step's end: the last step goes past it to the next step's end.
        var steps = 0
        while map.populateStep(from: 100, before: MappedFile.step + 5000) { steps += 1 }
        #expect(steps == 2)
        #expect(map.populated == 2 * MappedFile.step)
        // The reader moved on: populating goes on from there (a step left unaligned used to
        // make every later one fail).
        while map.populateStep(from: 2 * MappedFile.step + 7, before: length + MappedFile.step) { steps += 1 }
        #expect(steps == 5)
        #expect(map.populated == length)
        #expect(!map.populateStep(from: length - 1, before: length + MappedFile.step))
        // Released pages are not mapped in again.
        map.release(before: 3 * MappedFile.step)
        #expect(!map.populateStep(from: 0, before: MappedFile.step))
    }
}
