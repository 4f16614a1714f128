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

        public init(status: Int32, stdout: Data, stderr: String) {
            self.status = status
            self.stdout = stdout
            self.stderr = stderr
        }
    }

    /// An error of the test helpers (no such program, no connection, no lock...).
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
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
    /// `input`, when given, is written to its stdin (then closed); otherwise stdin is
    /// /dev/null.
    public static func run(
        _ executable: URL, _ arguments: [String], environment: [String: String]? = nil, input: Data? = nil,
        timeout: TimeInterval = 120
    ) throws -> Result {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if let environment { process.environment = environment }
        let out = Pipe(), err = Pipe(), inp = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input == nil ? FileHandle.nullDevice : inp
        try withDefaultSignalMask { try process.run() }
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
        if let input {
            try? inp.fileHandleForWriting.write(contentsOf: input)
            try? inp.fileHandleForWriting.close()
        }
        if group.wait(timeout: .now() + timeout) == .timedOut {
            process.terminate()
            group.wait()
        }
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: stdoutBox.data, stderr: String(decoding: stderrBox.data, as: UTF8.self))
    }

    /// Runs `body` (which starts a child) with no signal blocked on this thread, so the child
    /// starts with none blocked: a child inherits its parent thread's mask, and the test
    /// runner's threads block some (SIGINT, SIGTERM), which makes a daemon that stops its
    /// helper processes with them (pmacctd and its plugins) wait for ever.
    public static func withDefaultSignalMask<T>(_ body: () throws -> T) rethrows -> T {
        var none = sigset_t(), saved = sigset_t()
        sigemptyset(&none)
        pthread_sigmask(SIG_SETMASK, &none, &saved)
        defer { pthread_sigmask(SIG_SETMASK, &saved, nil) }
        return try body()
    }

    /// `run` of `program` (an absolute path, or a name looked up with `which`) on a Dispatch
    /// thread, for async tests.
    public static func run(
        program: String, _ arguments: [String], input: Data? = nil, timeout: TimeInterval = 120
    ) async throws -> Result {
        try await offload { try run(URL(fileURLWithPath: which(program) ?? program), arguments, input: input, timeout: timeout) }
    }

    /// Runs blocking work on a Dispatch thread: a blocked thread of the cooperative pool
    /// (two on a 2-core machine) would stall the in-process servers the tests talk to.
    public static func offload<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Swift.Result { try work() }) }
        }
    }

    /// The first executable `name` on PATH or in the usual system directories; an absolute
    /// path is returned as it is.
    public static func which(_ name: String) -> String? {
        if name.hasPrefix("/") { return name }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let dirs = path.split(separator: ":").map(String.init) + ["/usr/bin", "/bin", "/usr/sbin", "/usr/local/bin"]
        return dirs.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// The environment of the test run without any `TRAFFICMON_*` variable (which would
    /// change what trafficmon does), plus `extra`.
    public static func environment(_ extra: [String: String] = [:]) -> [String: String] {
        ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("TRAFFICMON_") }.merging(extra) { $1 }
    }

    /// The non-empty lines of a program's output.
    public static func lines(_ text: String) -> [String] {
        text.split(whereSeparator: \.isNewline).map(String.init).filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
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

extension TestProcess {
    /// A free TCP port on 127.0.0.1 (bound to port 0, read back, released). Another
    /// process may take it before the caller binds it; tests that start a server retry
    /// or pick again on "address in use".
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure("socket() failed: errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let result = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p -> Int32 in
                guard bind(fd, p, length) == 0 else { return -1 }
                return getsockname(fd, p, &length)
            }
        }
        guard result == 0 else { throw Failure("bind()/getsockname() failed: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
