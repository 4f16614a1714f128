import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Synchronization
import Testing
import TrafficCapture
import TrafficCore
import TrafficServer
import TrafficStore
import TrafficTestSupport

#if canImport(Glibc)
import Glibc
#endif

// Shared helpers of the Store*, Stream*, Auth* and TLS* suites (the file is named
// Store*Tests.swift only to fit the folder's naming rule; it holds no tests).

/// In-process `TrafficServer`s with persistence and security options, capture files,
/// and the external tools (`sqlite3`, `openssl`, `curl`) the suites check against.
enum Rig {
    static let second: Int64 = 1_000_000_000

    static var logger: Logger {
        var logger = Logger(label: "trafficmon-h6-test")
        logger.logLevel = .error
        return logger
    }

    /// A server over `source` with `options` (store, tokens, TLS, queue limit).
    static func server(
        source: PacketSource, windowLength: Int64 = second, top: Int = 50, historySize: Int = 720,
        enableDebugInject: Bool = false, options: TrafficServer.Options = TrafficServer.Options()
    ) async throws -> TrafficServer {
        var configuration = ServerConfiguration()
        configuration.top = top
        configuration.historySize = historySize
        configuration.enableDebugInject = enableDebugInject
        configuration.version = "9.9.9-test"
        let local = LocalNetworks(try SyntheticTraffic.localNetworks.map { try NetworkPrefix(parsing: $0) })
        let aggregation = WindowAggregator.Configuration(windowLength: windowLength, localNetworks: local, top: top)
        return try await TrafficServer(
            configuration: configuration, source: source, aggregation: aggregation, options: options, logger: logger)
    }

    /// A capture file holding only its header: the replay ends at once and windows then
    /// come from injects, closed on the wall clock.
    static func emptyCapture(in directory: URL) throws -> URL {
        let url = directory.appendingPathComponent("empty.pcap")
        try PcapWriter(linkType: 1).write(to: url)
        return url
    }

    static func write(_ traffic: SyntheticTraffic, in directory: URL, name: String = "capture.pcap", snapLength: Int = 262_144) throws -> URL {
        let url = directory.appendingPathComponent(name)
        try traffic.pcap(snapLength: snapLength).write(to: url)
        return url
    }

    struct Timeout: Error, CustomStringConvertible {
        var what: String
        var description: String { "timed out waiting for \(what)" }
    }

    static func waitUntil(_ what: String, timeout: Duration = .seconds(30), _ condition: () async throws -> Bool) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while true {
            if try await condition() { return }
            if clock.now >= deadline { throw Timeout(what: what) }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Counts one packet of `size` bytes from a distinct client per `index` (10.64.x.y), inbound TCP/8000.
    static func inject(_ server: TrafficServer, clientIndex: Int, size: Int = 1200) {
        let ip = IPAddress(ipv4: 0x0A40_0000 | UInt32(truncatingIfNeeded: clientIndex & 0x3F_FFFF))
        server.state.engine.inject(
            Attribution(client: ip, direction: .inbound, service: Service(label: "TCP/8000")!), wireLength: size)
    }

    /// Wall-clock nanoseconds.
    static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1e9) }

    // MARK: Records

    /// A record with every field set (clients, services, other, non-IP, malformed reasons,
    /// capture counts), so a round trip that loses anything shows.
    static func record(start: Int64, length: Int64 = second, partial: Bool = false, seed: UInt64 = 1) -> WindowRecord {
        var rng = SplitMix64(seed: seed &+ UInt64(bitPattern: start))
        let n = 1 + Int(rng.next() % 4)
        var clients: [ClientRecord] = []
        var allIn = Counts(), allOut = Counts()
        for i in 0..<n {
            let inCounts = Counts(packets: 1 + rng.next() % 50, bytes: 60 + rng.next() % 90_000)
            let outCounts = Counts(packets: rng.next() % 50, bytes: rng.next() % 90_000)
            let ip = i % 2 == 0
                ? IPAddress(ipv4: 0xC633_6400 | UInt32(rng.next() & 0xFF))
                : IPAddress(ipv6High: 0x2001_0db8_0000_0000 | (rng.next() & 0xFFFF), low: rng.next())
            clients.append(ClientRecord(ip: ip, in: inCounts, out: outCounts, services: [
                ServiceCounts(service: Service(label: "TCP/443")!, direction: .inbound, packets: inCounts.packets, bytes: inCounts.bytes),
                ServiceCounts(service: Service(label: "UDP/53")!, direction: .outbound, packets: outCounts.packets, bytes: outCounts.bytes),
            ]))
            allIn += inCounts
            allOut += outCounts
        }
        clients.sort { ($0.in.bytes + $0.out.bytes) > ($1.in.bytes + $1.out.bytes) }
        let other = OtherCounts(in: Counts(packets: 3, bytes: 300), out: Counts(packets: 1, bytes: 70), clients: 2)
        allIn += other.in
        allOut += other.out
        let nonIP = Counts(packets: rng.next() % 5, bytes: 60 * (rng.next() % 5))
        let malformed = MalformedCounts(packets: 2, bytes: 120, reasons: ["truncated-ipv4": 1, "bad-ip-version": 1])
        let packets = allIn.packets + allOut.packets + nonIP.packets + malformed.packets
        let bytes = allIn.bytes + allOut.bytes + nonIP.bytes + malformed.bytes
        return WindowRecord(
            start: start, end: start + length, partial: partial, packets: packets, bytes: bytes,
            in: allIn, out: allOut, clients: clients, other: other, nonIP: nonIP, malformed: malformed,
            latePackets: rng.next() % 3, capture: CaptureCounts(received: packets, kernelDropped: rng.next() % 2, interfaceDropped: 1),
            services: [ServiceCounts(service: Service(label: "TCP/443")!, direction: .inbound, packets: allIn.packets, bytes: allIn.bytes)])
    }

    struct HistoryBody: Decodable {
        var windows: [WindowRecord]
    }

    static func decodeHistory(_ response: TestResponse) throws -> [WindowRecord] {
        try JSONDecoder().decode(HistoryBody.self, from: Data(response.body.readableBytesView)).windows
    }

    static func text(_ response: TestResponse) -> String {
        String(decoding: response.body.readableBytesView, as: UTF8.self)
    }

    /// The `error` string of a `{"error":"..."}` body (nil when the body is not that).
    static func errorMessage(_ response: TestResponse) -> String? {
        let object = try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
        return object?["error"] as? String
    }

    // MARK: External programs

    /// Runs blocking work on a Dispatch thread: a blocked thread of the cooperative pool
    /// (two on a 2-core machine) would stall the in-process servers the tests talk to.
    static func offload<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
        }
    }

    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs `program` (searched on PATH) to completion, with an optional stdin text.
    static func run(_ program: String, _ arguments: [String], input: String? = nil, timeout: TimeInterval = 60) async throws -> Output {
        try await offload { try runBlocking(program, arguments, input: input, timeout: timeout) }
    }

    static func runBlocking(_ program: String, _ arguments: [String], input: String? = nil, timeout: TimeInterval = 60) throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: which(program) ?? program)
        process.arguments = arguments
        let out = Pipe(), err = Pipe(), inp = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input == nil ? FileHandle.nullDevice : inp
        try process.run()
        final class Box: @unchecked Sendable { var data = Data() }
        let outBox = Box(), errBox = Box()
        let group = DispatchGroup()
        for (pipe, box) in [(out, outBox), (err, errBox)] {
            group.enter()
            DispatchQueue.global().async {
                box.data = pipe.fileHandleForReading.readDataToEndOfFile()
                group.leave()
            }
        }
        if let input {
            inp.fileHandleForWriting.write(Data(input.utf8))
            try? inp.fileHandleForWriting.close()
        }
        if group.wait(timeout: .now() + timeout) == .timedOut {
            process.terminate()
            group.wait()
        }
        process.waitUntilExit()
        return Output(
            status: process.terminationStatus, stdout: String(decoding: outBox.data, as: UTF8.self),
            stderr: String(decoding: errBox.data, as: UTF8.self))
    }

    static func which(_ name: String) -> String? {
        if name.hasPrefix("/") { return name }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let dirs = path.split(separator: ":").map(String.init) + ["/usr/bin", "/bin", "/usr/local/bin"]
        return dirs.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// `sqlite3 db sql`, trimmed stdout; records an issue when sqlite3 fails.
    static func sqlite(_ db: String, _ sql: String) async throws -> String {
        let result = try await run("sqlite3", [db, sql])
        #expect(result.status == 0, "sqlite3 \(sql) failed: \(result.stderr)")
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A self-signed certificate and key for localhost / 127.0.0.1, made by openssl.
    static func selfSignedCertificate(in directory: URL) async throws -> (cert: String, key: String) {
        let cert = directory.appendingPathComponent("c.pem").path
        let key = directory.appendingPathComponent("k.pem").path
        let result = try await run("openssl", [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        guard result.status == 0 else { throw Timeout(what: "openssl to make a certificate: \(result.stderr)") }
        return (cert, key)
    }

    /// `curl` status code and body; status 0 when no HTTP answer came (connection or TLS failure).
    static func curl(_ arguments: [String]) async throws -> (status: Int, body: String, exit: Int32) {
        let result = try await run("curl", ["-s", "-S", "--max-time", "10", "-w", "\n%{http_code}"] + arguments)
        var lines = result.stdout.components(separatedBy: "\n")
        let code = Int(lines.popLast() ?? "") ?? 0
        return (code, lines.joined(separator: "\n"), result.status)
    }
}

// MARK: - A hand-made WebSocket client

/// A bare TCP socket that does the WebSocket handshake itself: to see the HTTP status of a
/// refused upgrade, and to play a client that never reads (a tiny receive buffer).
final class RawSocket: @unchecked Sendable {
    let fd: Int32
    private var closed = false

    /// Connects to 127.0.0.1:`port`; `receiveBuffer` (bytes) is set before connecting.
    init(port: Int, receiveBuffer: Int32? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Rig.Timeout(what: "a socket (errno \(errno))") }
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            close(fd)
            throw Rig.Timeout(what: "a connection to port \(port) (errno \(errno))")
        }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { disconnect() }

    /// Resets the connection (SO_LINGER 0, then close: the peer gets an RST), as when a
    /// client process dies with unread data or a middlebox drops the connection.
    func reset() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        disconnect()
    }

    /// Closes the connection at once (no WebSocket close frame): a client that vanishes.
    func disconnect() {
        if !closed {
            closed = true
            close(fd)
        }
    }

    func send(_ text: String) {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            sent += n
        }
    }

    /// Sends an upgrade request for `path` and reads the response head (byte by byte, so
    /// no frame that follows is consumed). Returns the status code and the head.
    func upgrade(path: String, port: Int, headers: [String] = []) -> (status: Int, head: String) {
        var request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        request += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        for header in headers { request += header + "\r\n" }
        request += "\r\n"
        send(request)
        var head = [UInt8]()
        var byte: UInt8 = 0
        while !(head.count >= 4 && head.suffix(4) == [13, 10, 13, 10]) {
            let n = recv(fd, &byte, 1, 0)
            if n <= 0 { break }
            head.append(byte)
        }
        let text = String(decoding: head, as: UTF8.self)
        let parts = text.split(separator: " ", maxSplits: 2)
        let status = parts.count >= 2 ? Int(parts[1]) ?? 0 : 0
        return (status, text)
    }

    /// `upgrade` off the cooperative pool.
    func upgraded(path: String, port: Int, headers: [String] = []) async throws -> (status: Int, head: String) {
        try await Rig.offload { self.upgrade(path: path, port: port, headers: headers) }
    }

    /// `drain` off the cooperative pool.
    func drained(quiet: Double = 3, limit: TimeInterval = 30) async throws -> (bytes: [UInt8], eof: Bool) {
        try await Rig.offload { self.drain(quiet: quiet, limit: limit) }
    }

    /// Reads whatever arrives until EOF, an error, or `quiet` seconds without data.
    func drain(quiet: Double = 3, limit: TimeInterval = 30) -> (bytes: [UInt8], eof: Bool) {
        var all = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        let deadline = Date().addingTimeInterval(limit)
        while Date() < deadline {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&p, 1, Int32(quiet * 1000))
            if ready <= 0 { return (all, false) }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return (all, true) }
            if n < 0 { return (all, errno != EAGAIN) }
            all += buffer[0..<n]
        }
        return (all, false)
    }

    /// Server-to-client WebSocket frames (unmasked) in `bytes`: opcode and payload.
    static func frames(_ bytes: [UInt8]) -> [(opcode: UInt8, payload: [UInt8])] {
        var out: [(UInt8, [UInt8])] = []
        var i = 0
        var message: [UInt8] = []
        var messageOpcode: UInt8 = 0
        while i + 2 <= bytes.count {
            let fin = bytes[i] & 0x80 != 0
            let opcode = bytes[i] & 0x0F
            var length = Int(bytes[i + 1] & 0x7F)
            var offset = i + 2
            if length == 126 {
                guard offset + 2 <= bytes.count else { break }
                length = Int(bytes[offset]) << 8 | Int(bytes[offset + 1])
                offset += 2
            } else if length == 127 {
                guard offset + 8 <= bytes.count else { break }
                length = bytes[offset..<(offset + 8)].reduce(0) { $0 << 8 | Int($1) }
                offset += 8
            }
            guard offset + length <= bytes.count else { break }
            let payload = Array(bytes[offset..<(offset + length)])
            i = offset + length
            if opcode >= 8 {
                out.append((opcode, payload))
            } else {
                if opcode != 0 { messageOpcode = opcode; message = [] }
                message += payload
                if fin { out.append((messageOpcode, message)); message = [] }
            }
        }
        return out
    }
}

/// A thread-safe list (what WebSocket client handlers collect).
final class WSCollector<T: Sendable>: Sendable {
    private let items = Mutex<[T]>([])
    func append(_ item: T) { items.withLock { $0.append(item) } }
    var all: [T] { items.withLock { $0 } }
    var count: Int { items.withLock { $0.count } }
}

/// A flag that WebSocket client handlers poll to know when to close.
final class StopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}
