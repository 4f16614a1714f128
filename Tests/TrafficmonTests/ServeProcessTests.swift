import Foundation
import Testing
import TrafficCore
import TrafficTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Helpers of the Serve*Tests files: UDP traffic for a live capture on loopback, a large
/// capture written quickly, and the error lines of a server's stderr.
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

    /// Log lines at error level or worse, crashes and stack traces.
    static func errorLines(_ text: String) -> [String] {
        TestProcess.lines(text).filter { line in
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

    /// Live capture on loopback: every datagram sent is counted, exactly once, with one
    /// capture thread and with three (three packet sockets in one PACKET_FANOUT group).
    @Test(.enabled(if: isRoot, "live capture needs root (CI runs as root)"), arguments: [1, 3])
    func liveLoopbackCountsEveryDatagram(threads: Int) throws {
        let receiver = try ServeHarness.boundSocket(type: Int32(SOCK_DGRAM.rawValue))
        defer { close(receiver) }
        let udpPort = try ServeHarness.boundPort(receiver)
        let port = try TestProcess.freePort()
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try ServerProcess.trafficmon(
            ["serve", "--interface", "lo", "--filter", "udp port \(udpPort)", "--window", "1s", "--listen", "127.0.0.1:\(port)", "--no-db",
             "--capture-threads", String(threads)],
            port: port, in: dir)
        defer { server.stop() }
        let ready = try server.waitUntilServing("/readyz").text
        #expect(ready.contains("\"capturing\""), "\(ready)")

        let k = 40
        try ServeHarness.sendDatagrams(count: k, size: 100, to: udpPort)
        // Within two windows plus the close grace (and a margin): all 40, exactly.
        let deadline = Date().addingTimeInterval(5)
        var metrics = ""
        while Date() < deadline {
            metrics = try server.get("/metrics").text
            if try PromExposition.parse(metrics).sum("trafficmon_packets_total") >= Double(k) { break }
            usleep(100_000)
        }
        let m = try PromExposition.parse(metrics)
        #expect(m.sum("trafficmon_packets_total") == Double(k), "\(metrics)")
        // 100-byte payloads: 14 (Ethernet on lo) + 20 + 8 + 100 = 142 wire bytes each.
        #expect(m.sum("trafficmon_bytes_total") == Double(k * 142))
        #expect(m.sum("trafficmon_capture_received_packets_total") == Double(k))
        #expect(m.samples("trafficmon_capture_received_packets_total").map { $0.labels["interface"] } == ["lo"])
        let dropped = m.samples("trafficmon_capture_dropped_packets_total")
        #expect(Set(dropped.compactMap { $0.labels["where"] }) == ["kernel", "interface"])
        #expect(dropped.allSatisfy { $0.labels["interface"] == "lo" })
        // The open window names its interface too.
        let current = try server.get("/stats/current").text
        #expect(current.contains(#""interfaces":[{"name":"lo","received":"#), "\(current)")
        let capture = try server.get("/stats/capture").text
        #expect(capture.contains(#""interfaces":[{"dropped":{"interface":0,"kernel":0},"name":"lo","received":\#(k)}]"#), "\(capture)")
        // A window later: still exactly 40 (nothing counted twice).
        usleep(1_500_000)
        let later = try server.get("/metrics").text
        #expect(try PromExposition.parse(later).sum("trafficmon_packets_total") == Double(k))
        #expect(server.isRunning)
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
        let server = try ServerProcess.trafficmon(
            ["serve", "--read", capture.path, "--window", "1s", "--local-net", "10.0.0.0/29", "--listen", "127.0.0.1:\(port)"]
                + (withDB ? [] : ["--no-db"]),
            port: port, in: dir)
        defer { server.stop() }
        let ready = try server.waitUntilServing("/readyz").text
        let status = (try? server.get("/readyz").text) ?? ready
        let sent = Date()
        server.signal(SIGTERM)
        let exited = server.waitForExit(timeout: 2) != nil
        let elapsed = Date().timeIntervalSince(sent)
        #expect(exited, "still running 2 s after SIGTERM (replay status at SIGTERM: \(status))")
        server.stop(grace: 0)
        #expect(server.exit?.signaled == false)
        #expect(server.exit?.status == 0, "\(String(describing: server.exit)), stderr: \(server.stderr)")
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
        let server = try ServerProcess.trafficmon(
            ["serve", "--read", capture.path, "--listen", "127.0.0.1:\(port)"] + (withDB ? [] : ["--no-db"]),
            port: port, in: dir)
        defer { server.stop() }
        _ = try server.waitUntilServing("/readyz")
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline, (try? server.get("/readyz").text.contains("replayed")) != true { usleep(20_000) }
        server.signal(signal)
        #expect(server.waitForExit(timeout: 2) != nil, "still running 2 s after signal \(signal)")
        server.stop(grace: 0)
        #expect(server.exit?.signaled == false)
        #expect(server.exit?.status == 0, "stderr: \(server.stderr)")
        #expect(ServeHarness.errorLines(server.stderr).isEmpty, "\(server.stderr)")
    }

    /// Eight servers without the store, SIGTERM'd together once replayed: every one exits 0.
    /// (The shutdown order of the service group is racy; several at once make a loss likely.)
    @Test func concurrentShutdownsWithoutTheStoreAllExitZero() throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let capture = dir.appendingPathComponent("small.pcap")
        try SyntheticTraffic(packets: 1_000, clients: 20, seconds: 12, seed: 10).pcap().write(to: capture)
        var servers: [ServerProcess] = []
        defer { for server in servers { server.stop() } }
        for _ in 0..<8 {
            let port = try TestProcess.freePort()
            servers.append(try ServerProcess.trafficmon(
                ["serve", "--read", capture.path, "--listen", "127.0.0.1:\(port)", "--no-db"], port: port, in: dir))
        }
        for server in servers {
            _ = try server.waitUntilServing("/readyz")
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline, (try? server.get("/readyz").text.contains("replayed")) != true { usleep(20_000) }
        }
        for server in servers { server.signal(SIGTERM) }
        for server in servers {
            #expect(server.waitForExit(timeout: 3) != nil, "still running 3 s after SIGTERM")
            server.stop(grace: 0)
            #expect(server.exit?.status == 0, "\(String(describing: server.exit)): \(ServeHarness.errorLines(server.stderr))")
        }
    }

    @Test func portInUseIsOneClearLine() throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let capture = dir.appendingPathComponent("small.pcap")
        try SyntheticTraffic(packets: 300, clients: 10, seconds: 4, seed: 8).pcap().write(to: capture)
        let port = try TestProcess.freePort()
        let arguments = ["serve", "--read", capture.path, "--listen", "127.0.0.1:\(port)", "--no-db"]
        let first = try ServerProcess.trafficmon(arguments, port: port, in: dir)
        defer { first.stop() }
        _ = try first.waitUntilServing("/readyz")

        let second = try ServerProcess.trafficmon(arguments, port: port, in: dir)
        defer { second.stop() }
        #expect(second.waitForExit(timeout: 10) != nil, "the second trafficmon did not give up")
        second.stop(grace: 0)
        #expect(second.exit?.signaled == false)
        #expect(second.exit?.status != 0)
        let stderr = second.stderr
        let inUse = TestProcess.lines(stderr).filter { $0.contains("already in use") }
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
    static func run(_ arguments: [String], environment: [String: String] = TestProcess.environment()) throws -> TestProcess.Result {
        try TestProcess.run(TestProcess.trafficmon, arguments, environment: environment, timeout: 20)
    }

    @Test func unknownInterfaceIsOneLineNamingIt() throws {
        let port = try TestProcess.freePort()
        let result = try Self.run(["serve", "--interface", "nosuch0", "--listen", "127.0.0.1:\(port)", "--no-db"])
        #expect(result.status != 0)
        let lines = TestProcess.lines(result.stderr)
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
            environment: TestProcess.environment(), timeout: 20)
        #expect(result.status == 2)
        let lines = TestProcess.lines(result.stderr)
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
        (["--read", "CAPTURE", "--capture-threads", "2"], "capture threads for a file"),
        (["--interface", "lo", "--capture-threads", "0"], "--capture-threads 0"),
        (["--interface", "lo", "--interface", "lo"], "an interface twice"),
        (["--read", "CAPTURE", "--service-port", "UDP/0"], "bad service port"),
        (["--read", "CAPTURE", "--party-ttl", "0s"], "--party-ttl 0s"),
        (["--read", "CAPTURE", "--max-party-series", "-1"], "--max-party-series -1"),
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
        let lines = TestProcess.lines(result.stderr)
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
        let errors = TestProcess.lines(result.stderr).filter { $0.hasPrefix("trafficmon: ") }
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
        let server = try ServerProcess.trafficmon(
            ["serve"], port: port, in: dir,
            environment: [
                "TRAFFICMON_LISTEN": "127.0.0.1:\(port)", "TRAFFICMON_READ": capture.path,
                "TRAFFICMON_LOCAL_NET": SyntheticTraffic.localNetworks.joined(separator: ","),
                "TRAFFICMON_NO_DB": "1",
            ])
        defer { server.stop() }
        _ = try server.waitUntilServing("/readyz")
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
        let metrics = try PromExposition.parse(try server.get("/metrics").text)
        var oracle: [String: UInt64] = [:]
        for (flow, counts) in truth.flows { oracle[flow.direction, default: 0] += counts.bytes }
        // With the local networks from the environment, the directions match the oracle.
        #expect(metrics.sum("trafficmon_bytes_total", ["direction": "in"]) == Double(oracle["in"] ?? 0))
        #expect(metrics.sum("trafficmon_bytes_total", ["direction": "out"]) == Double(oracle["out"] ?? 0))
        // (How it shuts down is the signal tests' business.)
    }
}
