import Foundation
import Testing
import TrafficCore
import TrafficTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Helpers for running `trafficmon serve` as a process and talking to it over HTTP
/// (BSD sockets, no client library), for the Serve*Tests files.
enum ServeHarness {
    // MARK: Sockets

    struct SocketError: Error, CustomStringConvertible {
        var what: String
        var description: String { "\(what): \(String(cString: strerror(errno)))" }
    }

    static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    static func boundPort(_ fd: Int32) throws -> Int {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard rc == 0 else { throw SocketError(what: "getsockname") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// A socket of `type` bound to 127.0.0.1:0 (the caller closes it).
    static func boundSocket(type: Int32) throws -> Int32 {
        let fd = socket(AF_INET, type, 0)
        guard fd >= 0 else { throw SocketError(what: "socket") }
        var address = loopback(port: 0)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { close(fd); throw SocketError(what: "bind") }
        return fd
    }

    struct Reply {
        var status: Int
        var headers: [String: String]
        var body: Data
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    /// One HTTP/1.1 request with `Connection: close`; reads the reply to the end.
    static func http(
        port: Int, _ path: String, method: String = "GET", headers: [String: String] = [:], body: Data = Data(),
        timeout: Int = 5
    ) throws -> Reply {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SocketError(what: "socket") }
        defer { close(fd) }
        var tv = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var address = loopback(port: port)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw SocketError(what: "connect to 127.0.0.1:\(port)") }
        var request = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        if !body.isEmpty || method == "POST" { request += "Content-Length: \(body.count)\r\n" }
        request += "\r\n"
        let out = Array(request.utf8) + Array(body)
        let total = out.count
        var sent = 0
        while sent < total {
            let n = out.withUnsafeBytes { send(fd, $0.baseAddress! + sent, total - sent, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw SocketError(what: "send") }
            sent += n
        }
        var received = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { break }
            guard n > 0 else { throw SocketError(what: "recv") }
            received += buffer[0..<n]
            // A server that keeps the connection open (Chromium's DevTools) is done once
            // Content-Length bytes of body are in.
            if let reply = try? parseReply(received), let length = reply.headers["content-length"].flatMap({ Int($0) }),
               reply.body.count >= length {
                break
            }
        }
        return try parseReply(received)
    }

    struct BadReply: Error, CustomStringConvertible {
        var description: String
    }

    static func parseReply(_ bytes: [UInt8]) throws -> Reply {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = (0..<max(0, bytes.count - 3)).first(where: { Array(bytes[$0..<$0 + 4]) == separator }) else {
            throw BadReply(description: "no header end in \(bytes.count) bytes")
        }
        let head = String(decoding: bytes[0..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = head[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { throw BadReply(description: "status line \(head[0])") }
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = Array(bytes[(end + 4)...])
        if headers["transfer-encoding"]?.lowercased() == "chunked" {
            var decoded = [UInt8]()
            var i = 0
            while i < body.count {
                guard let lineEnd = (i..<body.count - 1).first(where: { body[$0] == 13 && body[$0 + 1] == 10 }),
                      let size = Int(String(decoding: body[i..<lineEnd], as: UTF8.self).split(separator: ";")[0], radix: 16) else { break }
                if size == 0 { break }
                decoded += body[(lineEnd + 2)..<(lineEnd + 2 + size)]
                i = lineEnd + 2 + size + 2
            }
            body = decoded
        }
        return Reply(status: status, headers: headers, body: Data(body))
    }

    /// Sends `count` UDP datagrams of `size` bytes to 127.0.0.1:`port`.
    static func sendDatagrams(count: Int, size: Int, to port: Int) throws {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw SocketError(what: "socket") }
        defer { close(fd) }
        var address = loopback(port: port)
        let payload = [UInt8](repeating: 0x5A, count: size)
        for _ in 0..<count {
            let n = withUnsafePointer(to: &address) { a in
                a.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                    payload.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, 0, sa, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
            }
            guard n == size else { throw SocketError(what: "sendto") }
        }
    }

    // MARK: Processes

    /// The environment of the test run without any TRAFFICMON_* variable, plus `extra`.
    static func environment(_ extra: [String: String] = [:]) -> [String: String] {
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("TRAFFICMON_") }
        for (k, v) in extra { env[k] = v }
        return env
    }

    /// A running `trafficmon` (killed on `stop()` if still running).
    final class Server: @unchecked Sendable {
        let process = Process()
        let port: Int
        private let group = DispatchGroup()
        private var stdoutData = Data()
        private var stderrData = Data()

        init(_ arguments: [String], port: Int, environment: [String: String] = ServeHarness.environment(), directory: URL) throws {
            self.port = port
            process.executableURL = TestProcess.trafficmon
            process.arguments = arguments
            process.environment = environment
            process.currentDirectoryURL = directory
            let out = Pipe(), err = Pipe()
            process.standardOutput = out
            process.standardError = err
            process.standardInput = FileHandle.nullDevice
            try process.run()
            group.enter()
            DispatchQueue.global().async { [self] in
                let data = out.fileHandleForReading.readDataToEndOfFile()
                self.stdoutData = data
                self.group.leave()
            }
            group.enter()
            DispatchQueue.global().async { [self] in
                let data = err.fileHandleForReading.readDataToEndOfFile()
                self.stderrData = data
                self.group.leave()
            }
        }

        /// Waits up to `timeout` for the process to exit; true when it did.
        @discardableResult
        func waitForExit(timeout: TimeInterval) -> Bool {
            let deadline = Date().addingTimeInterval(timeout)
            while process.isRunning && Date() < deadline { usleep(5_000) }
            return !process.isRunning
        }

        /// Kills the process if it still runs and waits for it and its output.
        func stop() {
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
            }
            process.waitUntilExit()
            _ = group.wait(timeout: .now() + 5)
        }

        func signal(_ signal: Int32) {
            kill(process.processIdentifier, signal)
        }

        /// stderr, complete once the process has exited.
        var stderr: String {
            _ = group.wait(timeout: .now() + 5)
            return String(decoding: stderrData, as: UTF8.self)
        }

        var stdout: String {
            _ = group.wait(timeout: .now() + 5)
            return String(decoding: stdoutData, as: UTF8.self)
        }

        /// Polls `/readyz` until it answers 200 (throws if the process exits or time runs out).
        func waitUntilReady(timeout: TimeInterval = 30) throws -> String {
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                guard process.isRunning else {
                    throw BadReply(description: "trafficmon exited with \(process.terminationStatus) before it was ready: \(stderr)")
                }
                if let reply = try? ServeHarness.http(port: port, "/readyz", timeout: 2), reply.status == 200 {
                    return reply.text
                }
                usleep(20_000)
            }
            throw BadReply(description: "trafficmon did not get ready within \(timeout) s")
        }

        func get(_ path: String, headers: [String: String] = [:]) throws -> Reply {
            try ServeHarness.http(port: port, path, headers: headers)
        }
    }

    /// `/metrics` as (name, labels, value) samples.
    static func samples(_ text: String) -> [(name: String, labels: [String: String], value: Double)] {
        var out: [(String, [String: String], Double)] = []
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            // name{a="b",c="d"} value  (the values these tests read have no spaces, commas or quotes)
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            let series = line[..<space]
            var labels: [String: String] = [:]
            var name = String(series)
            if let brace = series.firstIndex(of: "{") {
                name = String(series[..<brace])
                let inner = series[series.index(after: brace)..<series.index(before: series.endIndex)]
                for pair in inner.split(separator: ",") {
                    let kv = pair.split(separator: "=", maxSplits: 1)
                    if kv.count == 2 { labels[String(kv[0])] = String(kv[1].dropFirst().dropLast()) }
                }
            }
            out.append((name, labels, value))
        }
        return out
    }

    static func sum(_ text: String, _ name: String, _ matching: [String: String] = [:]) -> Double {
        samples(text).filter { s in s.name == name && matching.allSatisfy { s.labels[$0.key] == $0.value } }.reduce(0) { $0 + $1.value }
    }

    /// Non-empty stderr lines.
    static func lines(_ text: String) -> [String] {
        text.split(separator: "\n").map(String.init).filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
    }

    /// Log lines at error level or worse, crashes and stack traces.
    static func errorLines(_ text: String) -> [String] {
        lines(text).filter { line in
            line.hasPrefix("trafficmon: ")
                || [" error ", " critical ", "Fatal error", "fatal error", "Stack dump", "Backtrace"].contains { line.contains($0) }
        }
    }

    /// A pcap of `packets` 60-byte UDP frames from `clients` clients to 10.0.0.1:53 spread
    /// evenly over `seconds` of packet time from `start`, written without going through
    /// FrameBuilder per packet (large files stay quick to write).
    static func writeUDPCapture(to url: URL, packets: Int, clients: Int, seconds: Int64, start: Int64 = 1_700_000_000 * 1_000_000_000) throws {
        let frame = FrameBuilder.ethernet(ip: FrameBuilder.ipv4(
            src: IPAddress(ipv4: 0xC633_6401), dst: IPAddress("10.0.0.1")!, proto: 17,
            payload: FrameBuilder.ports(40_000, 53, payload: 18)))
        precondition(frame.count == 60)
        let recordSize = 16 + frame.count
        var data = [UInt8](repeating: 0, count: 24 + packets * recordSize)
        let header = PcapWriter(linkType: 1).data
        data.replaceSubrange(0..<24, with: header)
        let step = seconds * 1_000_000_000 / Int64(packets)
        data.withUnsafeMutableBytes { raw in
            for n in 0..<packets {
                let base = 24 + n * recordSize
                let t = start + Int64(n) * step
                let sec = UInt32(truncatingIfNeeded: t / 1_000_000_000)
                let usec = UInt32(truncatingIfNeeded: (t % 1_000_000_000) / 1000)
                raw.storeBytes(of: sec.littleEndian, toByteOffset: base, as: UInt32.self)
                raw.storeBytes(of: usec.littleEndian, toByteOffset: base + 4, as: UInt32.self)
                raw.storeBytes(of: UInt32(frame.count).littleEndian, toByteOffset: base + 8, as: UInt32.self)
                raw.storeBytes(of: UInt32(frame.count).littleEndian, toByteOffset: base + 12, as: UInt32.self)
                frame.withUnsafeBytes { raw.baseAddress!.advanced(by: base + 16).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                // Client 198.51.100.0/16-ish: vary the last two source bytes.
                let client = UInt32(n % clients)
                raw[base + 16 + 28] = UInt8((client >> 8) & 0xFF)
                raw[base + 16 + 29] = UInt8(client & 0xFF) | 1
            }
        }
        try Data(data).write(to: url)
    }
}

/// `trafficmon serve` as a process: live capture, signals, startup errors, environment.
@Suite struct ServeProcessTests {
    static let isRoot = getuid() == 0

    /// Live capture on loopback: every datagram sent is counted, exactly once.
    @Test(.enabled(if: isRoot, "live capture needs root (CI runs as root)"))
    func liveLoopbackCountsEveryDatagram() throws {
        let receiver = try ServeHarness.boundSocket(type: Int32(SOCK_DGRAM.rawValue))
        defer { close(receiver) }
        let udpPort = try ServeHarness.boundPort(receiver)
        let port = try TestProcess.freePort()
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try ServeHarness.Server(
            ["serve", "--interface", "lo", "--filter", "udp port \(udpPort)", "--window", "1s", "--listen", "127.0.0.1:\(port)", "--no-db"],
            port: port, directory: dir)
        defer { server.stop() }
        let ready = try server.waitUntilReady()
        #expect(ready.contains("\"capturing\""), "\(ready)")

        let k = 40
        try ServeHarness.sendDatagrams(count: k, size: 100, to: udpPort)
        // Within two windows plus the close grace (and a margin): all 40, exactly.
        let deadline = Date().addingTimeInterval(5)
        var metrics = ""
        while Date() < deadline {
            metrics = try server.get("/metrics").text
            if ServeHarness.sum(metrics, "trafficmon_packets_total") >= Double(k) { break }
            usleep(100_000)
        }
        #expect(ServeHarness.sum(metrics, "trafficmon_packets_total") == Double(k), "\(metrics)")
        // 100-byte payloads: 14 (Ethernet on lo) + 20 + 8 + 100 = 142 wire bytes each.
        #expect(ServeHarness.sum(metrics, "trafficmon_bytes_total") == Double(k * 142))
        #expect(ServeHarness.sum(metrics, "trafficmon_capture_received_packets_total") == Double(k))
        let dropped = ServeHarness.samples(metrics).filter { $0.name == "trafficmon_capture_dropped_packets_total" }
        #expect(Set(dropped.compactMap { $0.labels["where"] }) == ["kernel", "interface"])
        // A window later: still exactly 40 (nothing counted twice).
        usleep(1_500_000)
        let later = try server.get("/metrics").text
        #expect(ServeHarness.sum(later, "trafficmon_packets_total") == Double(k))
        #expect(server.process.isRunning)
    }

    /// SIGTERM while a replay runs: exit status 0 within 2 s, no error on stderr; with the
    /// default SQLite store (in the test's directory) and with `--no-db`.
    @Test(arguments: [true, false])
    func sigtermDuringAReplayExitsCleanly(withDB: Bool) throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let capture = dir.appendingPathComponent("big.pcap")
        // 1 million frames (76 MB) over 600 s of packet time: 600 windows of 1 s with 1 667
        // clients each; a debug build replays it in several seconds.
        try ServeHarness.writeUDPCapture(to: capture, packets: 1_000_000, clients: 5_000, seconds: 600)
        let port = try TestProcess.freePort()
        let server = try ServeHarness.Server(
            ["serve", "--read", capture.path, "--window", "1s", "--local-net", "10.0.0.0/29", "--listen", "127.0.0.1:\(port)"]
                + (withDB ? [] : ["--no-db"]),
            port: port, directory: dir)
        defer { server.stop() }
        let ready = try server.waitUntilReady()
        let status = (try? server.get("/readyz").text) ?? ready
        let sent = Date()
        server.signal(SIGTERM)
        let exited = server.waitForExit(timeout: 2)
        let elapsed = Date().timeIntervalSince(sent)
        #expect(exited, "still running 2 s after SIGTERM (replay status at SIGTERM: \(status))")
        server.stop()
        #expect(server.process.terminationReason == .exit)
        #expect(server.process.terminationStatus == 0, "status \(server.process.terminationStatus), stderr: \(server.stderr)")
        #expect(ServeHarness.errorLines(server.stderr).isEmpty, "\(server.stderr)")
        // The replay had not ended yet (otherwise this is the "replayed, then idle" case, also fine).
        if !status.contains("replaying") {
            print("note: replay already finished when SIGTERM was sent (\(status)); shutdown took \(elapsed) s")
        }
    }

    /// SIGTERM and SIGINT after a replay, while idle; with and without the SQLite store.
    @Test(arguments: [SIGTERM, SIGINT], [true, false])
    func signalWhenIdleExitsCleanly(signal: Int32, withDB: Bool) throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let capture = dir.appendingPathComponent("small.pcap")
        try SyntheticTraffic(packets: 2_000, clients: 50, seconds: 12, seed: 9).pcap().write(to: capture)
        let port = try TestProcess.freePort()
        let server = try ServeHarness.Server(
            ["serve", "--read", capture.path, "--listen", "127.0.0.1:\(port)"] + (withDB ? [] : ["--no-db"]),
            port: port, directory: dir)
        defer { server.stop() }
        _ = try server.waitUntilReady()
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline, (try? server.get("/readyz").text.contains("replayed")) != true { usleep(20_000) }
        server.signal(signal)
        #expect(server.waitForExit(timeout: 2), "still running 2 s after signal \(signal)")
        server.stop()
        #expect(server.process.terminationReason == .exit)
        #expect(server.process.terminationStatus == 0, "stderr: \(server.stderr)")
        #expect(ServeHarness.errorLines(server.stderr).isEmpty, "\(server.stderr)")
    }

    /// Eight servers without the store, SIGTERM'd together once replayed: every one exits 0.
    /// (The shutdown order of the service group is racy; several at once make a loss likely.)
    @Test func concurrentShutdownsWithoutTheStoreAllExitZero() throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let capture = dir.appendingPathComponent("small.pcap")
        try SyntheticTraffic(packets: 1_000, clients: 20, seconds: 12, seed: 10).pcap().write(to: capture)
        var servers: [ServeHarness.Server] = []
        defer { for server in servers { server.stop() } }
        for _ in 0..<8 {
            let port = try TestProcess.freePort()
            servers.append(try ServeHarness.Server(
                ["serve", "--read", capture.path, "--listen", "127.0.0.1:\(port)", "--no-db"], port: port, directory: dir))
        }
        for server in servers {
            _ = try server.waitUntilReady()
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline, (try? server.get("/readyz").text.contains("replayed")) != true { usleep(20_000) }
        }
        for server in servers { server.signal(SIGTERM) }
        for server in servers {
            #expect(server.waitForExit(timeout: 3), "still running 3 s after SIGTERM")
            server.stop()
            #expect(server.process.terminationStatus == 0, "exit \(server.process.terminationStatus): \(ServeHarness.errorLines(server.stderr))")
        }
    }

    @Test func portInUseIsOneClearLine() throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let capture = dir.appendingPathComponent("small.pcap")
        try SyntheticTraffic(packets: 300, clients: 10, seconds: 4, seed: 8).pcap().write(to: capture)
        let port = try TestProcess.freePort()
        let arguments = ["serve", "--read", capture.path, "--listen", "127.0.0.1:\(port)", "--no-db"]
        let first = try ServeHarness.Server(arguments, port: port, directory: dir)
        defer { first.stop() }
        _ = try first.waitUntilReady()

        let second = try ServeHarness.Server(arguments, port: port, directory: dir)
        defer { second.stop() }
        #expect(second.waitForExit(timeout: 10), "the second trafficmon did not give up")
        second.stop()
        #expect(second.process.terminationReason == .exit)
        #expect(second.process.terminationStatus != 0)
        let stderr = second.stderr
        let inUse = ServeHarness.lines(stderr).filter { $0.contains("already in use") }
        #expect(inUse.count == 1, "stderr: \(stderr)")
        #expect(inUse.first?.hasPrefix("trafficmon: ") == true, "stderr: \(stderr)")
        #expect(inUse.first?.contains("127.0.0.1:\(port)") == true)
        #expect(!stderr.contains("Fatal error") && !stderr.contains("Stack dump"))
        // Nothing else reports an error.
        #expect(ServeHarness.errorLines(stderr).count == 1, "stderr: \(stderr)")
        // The first one is unaffected.
        #expect(try first.get("/readyz").status == 200)
    }

    /// Runs `trafficmon arguments` to completion.
    static func run(_ arguments: [String], environment: [String: String] = ServeHarness.environment()) throws -> TestProcess.Result {
        try TestProcess.run(TestProcess.trafficmon, arguments, environment: environment, timeout: 20)
    }

    @Test func unknownInterfaceIsOneLineNamingIt() throws {
        let port = try TestProcess.freePort()
        let result = try Self.run(["serve", "--interface", "nosuch0", "--listen", "127.0.0.1:\(port)", "--no-db"])
        #expect(result.status != 0)
        let lines = ServeHarness.lines(result.stderr)
        #expect(lines.count == 1, "stderr: \(result.stderr)")
        #expect(lines.first?.hasPrefix("trafficmon: ") == true)
        #expect(lines.first?.contains("nosuch0") == true, "stderr: \(result.stderr)")
        #expect(result.stdout.isEmpty)
    }

    /// Without capture rights (run as user nobody, with setpriv from util-linux):
    /// one line naming the interface and what to do, exit status 2.
    @Test(.enabled(if: isRoot && TestProcess.which("setpriv") != nil, "needs root to become another user"))
    func missingCapturePermissionIsOneClearLine() throws {
        let port = try TestProcess.freePort()
        let setpriv = URL(fileURLWithPath: try #require(TestProcess.which("setpriv")))
        let result = try TestProcess.run(
            setpriv,
            ["--reuid=nobody", "--regid=nogroup", "--clear-groups", TestProcess.trafficmon.path,
             "serve", "--interface", "lo", "--listen", "127.0.0.1:\(port)", "--no-db"],
            environment: ServeHarness.environment(), timeout: 20)
        #expect(result.status == 2)
        let lines = ServeHarness.lines(result.stderr)
        #expect(lines.count == 1, "stderr: \(result.stderr)")
        #expect(lines.first?.hasPrefix("trafficmon: no permission to capture on lo") == true, "stderr: \(result.stderr)")
        #expect(lines.first?.contains("setcap cap_net_raw,cap_net_admin+eip") == true)
    }

    @Test(arguments: [
        (["--interface", "lo", "--read", "/nonexistent.pcap"], "interface and read"),
        ([], "neither interface nor read"),
        (["--read", "CAPTURE", "--listen", "127.0.0.1:99999"], "port past 65535"),
        (["--read", "CAPTURE", "--listen", "localhost"], "no port"),
        (["--read", "CAPTURE", "--listen", "[::1"], "unclosed bracket"),
        (["--read", "CAPTURE", "--listen", "127.0.0.1:http"], "port name"),
        (["--read", "CAPTURE", "--listen", "::1:9000"], "bare IPv6"),
        (["--read", "CAPTURE", "--top", "0"], "--top 0"),
        (["--read", "CAPTURE", "--top", "-3"], "--top -3"),
        (["--read", "CAPTURE", "--window", "0s"], "--window 0s"),
        (["--read", "CAPTURE", "--local-net", "10.0.0.0/33"], "bad CIDR"),
        (["--read", "CAPTURE", "--filter", "udp port"], "bad BPF"),
        (["--read", "/nonexistent/x.pcap"], "missing file"),
        (["--read", "CAPTURE", "--history", "0"], "--history 0"),
        (["--read", "CAPTURE", "--bogus-flag"], "unknown flag"),
        (["--read", "CAPTURE", "--max-connections", "0"], "--max-connections 0"),
        (["--read", "CAPTURE", "--allowed-host", "a b/c"], "bad --allowed-host"),
    ])
    func badCommandLinesAreOneLine(arguments: [String], what: String) throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let capture = dir.appendingPathComponent("c.pcap")
        try SyntheticTraffic(packets: 50, clients: 5, seconds: 1, seed: 1).pcap().write(to: capture)
        var args = ["serve", "--no-db"] + arguments.map { $0 == "CAPTURE" ? capture.path : $0 }
        if !arguments.contains("--listen") { args += ["--listen", "127.0.0.1:\(try TestProcess.freePort())"] }
        let result = try Self.run(args)
        #expect(result.status != 0, "\(what): exit 0")
        let lines = ServeHarness.lines(result.stderr)
        #expect(lines.count == 1, "\(what): stderr: \(result.stderr)")
        #expect(lines.first?.hasPrefix("trafficmon: ") == true, "\(what): stderr: \(result.stderr)")
        #expect(result.stdout.isEmpty, "\(what)")
    }

    @Test func unassignableListenAddressIsAClearError() throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let capture = dir.appendingPathComponent("c.pcap")
        try SyntheticTraffic(packets: 50, clients: 5, seconds: 1, seed: 1).pcap().write(to: capture)
        // 192.0.2.1 (TEST-NET-1) is not an address of this machine.
        let result = try Self.run(["serve", "--read", capture.path, "--listen", "192.0.2.1:\(try TestProcess.freePort())", "--no-db"])
        #expect(result.status != 0)
        let errors = ServeHarness.lines(result.stderr).filter { $0.hasPrefix("trafficmon: ") }
        #expect(errors.count == 1, "stderr: \(result.stderr)")
        #expect(errors.first?.contains("192.0.2.1") == true)
        #expect(!result.stderr.contains("Fatal error"))
    }

    /// `TRAFFICMON_LISTEN`, `TRAFFICMON_READ` (and `TRAFFICMON_LOCAL_NET`) without flags.
    @Test func environmentVariablesWorkWithoutFlags() throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let capture = dir.appendingPathComponent("env.pcap")
        let traffic = SyntheticTraffic(packets: 3_000, clients: 80, seconds: 20, seed: 12)
        try traffic.pcap().write(to: capture)
        let truth = traffic.truth
        let port = try TestProcess.freePort()
        let server = try ServeHarness.Server(
            ["serve"], port: port,
            environment: ServeHarness.environment([
                "TRAFFICMON_LISTEN": "127.0.0.1:\(port)", "TRAFFICMON_READ": capture.path,
                "TRAFFICMON_LOCAL_NET": SyntheticTraffic.localNetworks.joined(separator: ","),
                "TRAFFICMON_NO_DB": "1",
            ]),
            directory: dir)
        defer { server.stop() }
        _ = try server.waitUntilReady()
        var history = ""
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let ready = try? server.get("/readyz").text, ready.contains("replayed") {
                history = try server.get("/stats/history?limit=10000").text
                let count = (try? JSONSerialization.jsonObject(with: Data(history.utf8)) as? [String: Any])?["windows"] as? [Any]
                if count?.count == truth.windowStarts.count { break }
            }
            usleep(50_000)
        }
        let windows = (try JSONSerialization.jsonObject(with: Data(history.utf8)) as? [String: Any])?["windows"] as? [[String: Any]]
        #expect(windows?.count == truth.windowStarts.count)
        let metrics = try server.get("/metrics").text
        var oracle: [String: UInt64] = [:]
        for (flow, counts) in truth.flows { oracle[flow.direction, default: 0] += counts.bytes }
        // With the local networks from the environment, the directions match the oracle.
        #expect(ServeHarness.sum(metrics, "trafficmon_bytes_total", ["direction": "in"]) == Double(oracle["in"] ?? 0))
        #expect(ServeHarness.sum(metrics, "trafficmon_bytes_total", ["direction": "out"]) == Double(oracle["out"] ?? 0))
        // (How it shuts down is the signal tests' business.)
    }
}
