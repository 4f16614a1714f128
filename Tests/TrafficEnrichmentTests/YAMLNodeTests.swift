import Testing
@testable import TrafficEnrichment

/// The composer's limits at their edges: nesting depth, a repeated key on either side of
/// the switch from comparing a mapping's keys one by one to a set, and aliases shared
/// rather than copied (a copying composer runs out of memory).
@Suite struct YAMLNodeTests {
    static func nested(_ depth: Int) -> String {
        String(repeating: "[", count: depth) + "x" + String(repeating: "]", count: depth) + "\n"
    }

    @Test func nestingUpToTheLimitReads() throws {
        // The root list is at depth 0, the scalar inside 64 lists at depth 64.
        #expect(try YAMLNode.compose(Self.nested(64), maxDepth: 65) != nil)
        #expect(throws: YAMLError.self) { try YAMLNode.compose(Self.nested(65), maxDepth: 65) }
    }

    @Test(arguments: [1, 15, 16, 17, 40])
    func aRepeatedKeyIsFoundWhereverItIs(keys: Int) throws {
        let lines = (0..<keys).map { "k\($0): v" }
        let accepted = try #require(try YAMLNode.compose(lines.joined(separator: "\n") + "\n"))
        #expect(accepted.pairs?.count == keys)
        #expect(accepted.pairs?.last?.key.text == "k\(keys - 1)")
        // The last key again, and the first.
        for repeated in ["k\(keys - 1)", "k0"] {
            do {
                _ = try YAMLNode.compose((lines + ["\(repeated): again"]).joined(separator: "\n") + "\n")
                Issue.record("accepted \(repeated) twice among \(keys) keys")
            } catch {
                guard case .repeatedKey(let key, let line) = error else {
                    Issue.record("\(error)")
                    continue
                }
                #expect(key == repeated)
                #expect(line == keys + 1)
            }
        }
    }

    /// Ten levels of ten aliases each name 10^10 scalars; the document holds each node once.
    @Test func aliasesAreSharedNotCopied() throws {
        var text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for level in 1...10 {
            text += "a\(level): &a\(level) [" + Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ", ") + "]\n"
        }
        let root = try #require(try YAMLNode.compose(text))
        let top = try #require(root.pairs?.last?.value.items)
        #expect(top.count == 10)
        #expect(top[0].items?.first?.items?.count == 10)
        // Every alias is the node its anchor marks, not a copy of it.
        #expect(top.allSatisfy { $0.index == top[0].index })
        #expect(top[0].index == root.pairs?[9].value.index)
        #expect(root.line == 1)
        #expect(root.pairs?.last?.key.line == 11)
    }
}
