import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A long-running child process of a test that serves HTTP on 127.0.0.1:`port`:
/// `trafficmon serve` (or another trafficmon command), Prometheus. It runs in a directory
/// of the test's, with the test run's environment less any `TRAFFICMON_*` variable. Its
/// stdout and stderr go to files of its own (outside that directory), readable at any
/// time and removed with the value. It can be polled until it serves, signalled, waited
/// for, and stopped (SIGTERM, then SIGKILL after a grace period), which also happens when
/// the value goes away.
///
/// ```swift
/// let server = try ServerProcess.serve(["--read", capture.path, "--no-db"], in: dir)
/// defer { server.stop() }
/// _ = try server.waitUntilServing("/readyz")
/// let metrics = try PromExposition.parse(try server.get("/metrics").text)
/// server.signal(SIGTERM)
/// #expect(server.waitForExit(timeout: 2) == ServerProcess.Exit(status: 0, signaled: false), "\(server.stderr)")
/// ```
public final class ServerProcess: @unchecked Sendable {
    /// How a process ended: its exit status, or the signal that ended it.
    public struct Exit: Sendable, Equatable, CustomStringConvertible {
        /// The exit status, or the number of the signal when `signaled`.
        public var status: Int32
        public var signaled: Bool

        public init(status: Int32, signaled: Bool) {
            self.status = status
            self.signaled = signaled
        }

        public var description: String { signaled ? "signal \(status)" : "exit \(status)" }
    }

    /// A name for messages (`trafficmon`, `prometheus`, `sensor-a`...).
    public let name: String
    public let port: Int
    /// How requests through `request`/`get` reach it: `http://`, or `https://` with this TLS.
    public let tls: TestHTTP.TLS?
    private let process = Process()
    private let outputDirectory: URL
    private let lock = NSLock()
    private var stopped = false

    /// Starts `executable arguments` in `directory`; `launcher` (for example `setpriv` and
    /// its options, looked up on PATH) runs in front of it; `environment` adds to (or
    /// replaces in) the test run's environment less its `TRAFFICMON_*` variables.
    public init(
        name: String, executable: URL, arguments: [String], port: Int, in directory: URL,
        environment: [String: String] = [:], launcher: [String] = [], tls: TestHTTP.TLS? = nil
    ) throws {
        self.name = name
        self.port = port
        self.tls = tls
        if let program = launcher.first {
            process.executableURL = URL(fileURLWithPath: TestProcess.which(program) ?? program)
            process.arguments = Array(launcher.dropFirst()) + [executable.path] + arguments
        } else {
            process.executableURL = executable
            process.arguments = arguments
        }
        process.currentDirectoryURL = directory
        process.environment = TestProcess.environment(environment)
        // Files rather than pipes: what the process wrote is there to read the moment it
        // returns from the write, and a chatty process never blocks on a full pipe.
        outputDirectory = try TestProcess.temporaryDirectory("server-process-output")
        let out = try Self.outputFile(outputDirectory.appendingPathComponent("stdout"))
        let err = try Self.outputFile(outputDirectory.appendingPathComponent("stderr"))
        defer {
            try? out.close()
            try? err.close()
        }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = out
        process.standardError = err
        do {
            try process.run()
        } catch {
            try? FileManager.default.removeItem(at: outputDirectory)
            throw error
        }
    }

    private static func outputFile(_ url: URL) throws -> FileHandle {
        guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
            throw TestProcess.Failure("cannot create \(url.path)")
        }
        return try FileHandle(forWritingTo: url)
    }

    /// The built `trafficmon` with `arguments` as given (a command, its options), on `port`
    /// (a free one when nil: see `TestProcess.freePort`).
    public static func trafficmon(
        _ arguments: [String], port: Int? = nil, in directory: URL, environment: [String: String] = [:],
        launcher: [String] = [], tls: TestHTTP.TLS? = nil
    ) throws -> ServerProcess {
        try ServerProcess(
            name: "trafficmon", executable: TestProcess.trafficmon, arguments: arguments, port: try port ?? TestProcess.freePort(),
            in: directory, environment: environment, launcher: launcher, tls: tls)
    }

    /// `trafficmon serve arguments`, listening on 127.0.0.1:`port` unless `arguments` has a
    /// `--listen` of its own.
    public static func serve(
        _ arguments: [String], port: Int? = nil, in directory: URL, environment: [String: String] = [:],
        launcher: [String] = [], tls: TestHTTP.TLS? = nil
    ) throws -> ServerProcess {
        let port = try port ?? TestProcess.freePort()
        let listen = arguments.contains("--listen") ? [] : ["--listen", "127.0.0.1:\(port)"]
        return try trafficmon(
            ["serve"] + arguments + listen, port: port, in: directory, environment: environment, launcher: launcher, tls: tls)
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: outputDirectory)
    }

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }

    /// How it ended; nil while it runs.
    public var exit: Exit? {
        process.isRunning ? nil : Exit(status: process.terminationStatus, signaled: process.terminationReason == .uncaughtSignal)
    }

    /// What it wrote to stdout so far.
    public var stdout: String { output("stdout") }

    /// What it wrote to stderr so far.
    public var stderr: String { output("stderr") }

    private func output(_ name: String) -> String {
        let data = FileManager.default.contents(atPath: outputDirectory.appendingPathComponent(name).path) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// The last 15 lines of stderr, for failure messages.
    public var stderrTail: String {
        stderr.split(separator: "\n", omittingEmptySubsequences: false).suffix(15).joined(separator: "\n")
    }

    public func signal(_ signal: Int32) {
        kill(process.processIdentifier, signal)
    }

    /// Waits up to `timeout` seconds for it to exit; nil when it still runs.
    public func waitForExit(timeout: TimeInterval = 30) -> Exit? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(5_000) }
        return exit
    }

    /// `waitForExit` without holding a thread of the cooperative pool.
    public func waitForExit(timeout: TimeInterval = 30) async throws -> Exit? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        return exit
    }

    /// Ends it if it still runs: SIGTERM, then SIGKILL when it has not exited after `grace`
    /// seconds. Only the first call does anything.
    public func stop(grace: TimeInterval = 3) {
        let first = lock.withLock { () -> Bool in
            defer { stopped = true }
            return !stopped
        }
        // A process that never started (its init threw) has nothing to end.
        guard first, process.processIdentifier > 0 else { return }
        if process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            let deadline = Date().addingTimeInterval(grace)
            while process.isRunning && Date() < deadline { usleep(10_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
    }

    // MARK: HTTP

    /// `http://127.0.0.1:PORT`, or `https://` when it serves TLS.
    public var baseURL: String { "\(tls == nil ? "http" : "https")://127.0.0.1:\(port)" }

    /// One request to `path` (with its query) through `TestHTTP`.
    public func request(
        _ method: String, _ path: String, headers: [String: String] = [:], body: Data = Data(), timeout: TimeInterval = 10
    ) throws -> TestHTTP.Response {
        try TestHTTP.request(method, baseURL + path, headers: headers, body: body, tls: tls ?? .insecure, timeout: timeout)
    }

    /// `request` on a Dispatch thread.
    public func request(
        _ method: String, _ path: String, headers: [String: String] = [:], body: Data = Data(), timeout: TimeInterval = 10
    ) async throws -> TestHTTP.Response {
        try await TestHTTP.request(method, baseURL + path, headers: headers, body: body, tls: tls ?? .insecure, timeout: timeout)
    }

    public func get(_ path: String, headers: [String: String] = [:], timeout: TimeInterval = 10) throws -> TestHTTP.Response {
        try request("GET", path, headers: headers, timeout: timeout)
    }

    public func get(_ path: String, headers: [String: String] = [:], timeout: TimeInterval = 10) async throws -> TestHTTP.Response {
        try await request("GET", path, headers: headers, timeout: timeout)
    }

    /// Polls `path` until it answers 200 and returns that reply; throws, with stderr, when
    /// the process exits first or `timeout` seconds pass.
    public func waitUntilServing(_ path: String = "/healthz", headers: [String: String] = [:], timeout: TimeInterval = 30) throws -> TestHTTP.Response {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let reply = try? get(path, headers: headers, timeout: 2), reply.status == 200 { return reply }
            if let exit { throw TestProcess.Failure("\(name) ended (\(exit)) before it served \(path): \(stderr)") }
            if Date() >= deadline { throw TestProcess.Failure("\(name) did not serve \(path) within \(Int(timeout)) s: \(stderrTail)") }
            usleep(20_000)
        }
    }

    /// `waitUntilServing` without holding a thread of the cooperative pool.
    public func waitUntilServing(
        _ path: String = "/healthz", headers: [String: String] = [:], timeout: TimeInterval = 30
    ) async throws -> TestHTTP.Response {
        var served: TestHTTP.Response?
        try await waitUntil("\(name) to serve \(path)", timeout: timeout, every: .milliseconds(20)) {
            if let reply = try? await self.get(path, headers: headers, timeout: 2), reply.status == 200 { served = reply }
            return served != nil
        }
        return served!
    }

    /// Polls `condition` until it holds; throws, with the end of stderr, when the process
    /// exits first or `timeout` seconds pass.
    public func waitUntil(
        _ what: String, timeout: TimeInterval = 60, every interval: Duration = .milliseconds(200),
        _ condition: () async throws -> Bool
    ) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if try await condition() { return }
            if let exit { throw TestProcess.Failure("\(name) ended (\(exit)) while waiting for \(what):\n\(stderrTail)") }
            if Date() >= deadline { throw TestProcess.Failure("timed out after \(Int(timeout)) s waiting for \(what); \(name) stderr:\n\(stderrTail)") }
            try await Task.sleep(for: interval)
        }
    }
}
