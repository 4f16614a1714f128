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

// Shared helpers of the Store*, Stream*, Auth* and TLS* suites (the file is named
// Store*Tests.swift only to fit the folder's naming rule; it holds no tests).

/// In-process `TrafficServer`s with persistence and security options, capture files,
/// and the external tools (`sqlite3`, `openssl`) the suites check against.
enum Rig {
    static let second: Int64 = 1_000_000_000

    static var logger: Logger {
        var logger = Logger(label: "trafficmon-test")
        logger.logLevel = .error
        return logger
    }

    /// A server over `source` with `options` (store, tokens, TLS, queue limit).
    static func server(
        source: PacketSource, windowLength: Int64 = second, top: Int = 50, historySize: Int = 720,
        enableDebugInject: Bool = false, options: TrafficServer.Options = TrafficServer.Options()
    ) async throws -> TrafficServer {
        let configuration = HTTPHarness.configuration(top: top, historySize: historySize, enableDebugInject: enableDebugInject)
        let aggregation = WindowAggregator.Configuration(windowLength: windowLength, localNetworks: try HTTPHarness.localNetworks(), top: top)
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

    typealias Timeout = HTTPHarness.Timeout

    static func waitUntil(_ what: String, timeout: Duration = .seconds(30), _ condition: () async throws -> Bool) async throws {
        try await HTTPHarness.waitUntil(what, timeout: timeout, condition)
    }

    /// Waits until a replay has been read to its end and its last window (marked partial)
    /// has been published: the engine says `replayed` as soon as it has closed that window,
    /// a moment before the publisher has handed it on.
    static func waitForReplayEnd(_ server: TrafficServer, timeout: Duration = .seconds(60)) async throws {
        try await waitUntil("the replay's last window in the history", timeout: timeout) {
            server.state.engine.status == .replayed && server.state.history(limit: 1).last?.partial == true
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
        // One local server carries it all.
        let server = PartyRecord(ip: IPAddress(ipv4: 0x0A00_0001), local: true, in: allIn, out: allOut, services: [
            ServiceCounts(service: Service(label: "TCP/443")!, direction: .inbound, packets: allIn.packets, bytes: allIn.bytes),
            ServiceCounts(service: Service(label: "UDP/53")!, direction: .outbound, packets: allOut.packets, bytes: allOut.bytes),
        ])
        return WindowRecord(
            start: start, end: start + length, partial: partial,
            in: allIn, out: allOut, clients: clients, other: other, servers: [server], nonIP: nonIP, malformed: malformed,
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

    /// Runs `program` (searched on PATH) to completion, off the cooperative pool.
    static func run(_ program: String, _ arguments: [String], timeout: TimeInterval = 60) async throws -> TestProcess.Result {
        try await TestProcess.run(program: program, arguments, timeout: timeout)
    }

    /// `sqlite3 db sql`, trimmed stdout; records an issue when sqlite3 fails.
    static func sqlite(_ db: String, _ sql: String) async throws -> String {
        let result = try await run("sqlite3", [db, sql])
        #expect(result.status == 0, "sqlite3 \(sql) failed: \(result.stderr)")
        return result.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
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
}

/// A thread-safe list (what WebSocket client handlers collect).
final class WSCollector<T: Sendable>: Sendable {
    private let items = LockedValue<[T]>([])
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
