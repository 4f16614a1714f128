import Foundation

/// Runs the built `trafficmon` binary (or any program) and collects its output.
///
/// ```swift
/// let result = try TestProcess.run(TestProcess.trafficmon, ["report", path])
/// #expect(result.status == 0)
/// ```
public enum TestProcess {
    public struct Result: Sendable {
        public var status: Int32
        public var stdout: Data
        public var stderr: String
        public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    }

    /// The `trafficmon` executable next to the test bundle (SwiftPM builds it before the tests).
    public static var trafficmon: URL {
        let runner = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
        var directory = runner.deletingLastPathComponent()
        // The runner may sit inside a .xctest bundle directory.
        while !FileManager.default.isExecutableFile(atPath: directory.appendingPathComponent("trafficmon").path),
              directory.path != "/" {
            directory.deleteLastPathComponent()
        }
        return directory.appendingPathComponent("trafficmon")
    }

    /// Runs `executable` to completion (with a timeout) and returns its status and output.
    public static func run(
        _ executable: URL, _ arguments: [String], environment: [String: String]? = nil, timeout: TimeInterval = 120
    ) throws -> Result {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if let environment { process.environment = environment }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Read both pipes while the process runs, so a large output cannot block it.
        let stdoutBox = DataBox(), stderrBox = DataBox()
        let group = DispatchGroup()
        for (pipe, box) in [(out, stdoutBox), (err, stderrBox)] {
            group.enter()
            DispatchQueue.global().async {
                box.data = pipe.fileHandleForReading.readDataToEndOfFile()
                group.leave()
            }
        }
        if group.wait(timeout: .now() + timeout) == .timedOut {
            process.terminate()
            group.wait()
        }
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: stdoutBox.data, stderr: String(decoding: stderrBox.data, as: UTF8.self))
    }

    /// A fresh temporary directory for one test.
    public static func temporaryDirectory(_ name: String = "trafficmon-test") throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

private final class DataBox: @unchecked Sendable {
    var data = Data()
}
