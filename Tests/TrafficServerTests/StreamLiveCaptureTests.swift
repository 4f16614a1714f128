import Foundation
import Hummingbird
import HummingbirdTesting
import HummingbirdWSTesting
import Testing
import TrafficCapture
import TrafficCore
import TrafficServer
import TrafficTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// `WS /stats/stream` during a LIVE capture on the loopback interface: the test sends UDP
/// datagrams to a port of its own and knows how many it sent.
@Suite(.enabled(if: getuid() == 0, "a live capture needs root (CI runs as root)"))
struct StreamLiveCaptureTests {
    /// A UDP socket bound to 127.0.0.1 on a free port (it receives what the test sends).
    final class UDPPair: Sendable {
        let receiver: Int32
        let sender: Int32
        let port: UInt16

        init() throws {
            let receiver = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            let sender = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = 0
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p -> Int32 in
                    guard bind(receiver, p, length) == 0 else { return -1 }
                    return getsockname(receiver, p, &length)
                }
            }
            guard bound == 0, receiver >= 0, sender >= 0 else { throw TestProcess.Failure("no UDP socket pair on 127.0.0.1 (errno \(errno))") }
            // Datagrams pile up unread between drains: a big buffer.
            var size: Int32 = 4 << 20
            setsockopt(receiver, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
            self.receiver = receiver
            self.sender = sender
            self.port = UInt16(bigEndian: address.sin_port)
        }

        deinit {
            close(receiver)
            close(sender)
        }

        /// Sends one datagram of `payload` bytes; true when the kernel took it.
        func send(payload: Int) -> Bool {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = port.bigEndian
            let bytes = [UInt8](repeating: 0x5A, count: payload)
            let n = bytes.withUnsafeBytes { buffer in
                withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(sender, buffer.baseAddress, buffer.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
            }
            return n == payload
        }

        /// Reads and discards what arrived.
        func drain() {
            var buffer = [UInt8](repeating: 0, count: 2048)
            while buffer.withUnsafeMutableBytes({ recv(receiver, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }) > 0 {}
        }
    }

    @Test(.timeLimit(.minutes(TestTimeLimit.minutes))) func threeClientsReceiveTheSameLiveWindows() async throws {
        let udp = try UDPPair()
        var live = PacketSource.LiveOptions(interface: "lo")
        live.filter = "udp port \(udp.port)"
        let source = try PacketSource.openLive(live)
        let server = try await ServerHarness.server(source: source, windowLength: ServerHarness.second)
        try await server.application.test(.live) { client in
            let port = try #require(client.port)
            try await ServerHarness.waitUntil("the live capture to run") { server.state.engine.status == .capturing }
            let collectors = (0..<3).map { _ in WSCollector<WindowRecord>() }
            let stop = StopFlag()
            let listeners = StreamWebSocketTests.listen(port: port, into: collectors, stop: stop)
            defer { stop.set(); listeners.cancel() }
            try await ServerHarness.waitUntil("3 subscribers") { server.hub.clientCount == 3 }

            // About 4 s of datagrams, 100 bytes of payload each: 142 wire bytes on lo
            // (14 Ethernet + 20 IPv4 + 8 UDP + 100), and at least 20 of them: a test task
            // the loaded cooperative pool runs rarely keeps sending past the 4 s (up to 30 s).
            let clock = ContinuousClock()
            let end = clock.now + .seconds(4)
            let cap = clock.now + .seconds(30)
            var sent = 0
            var lastSend: Int64 = 0
            while (clock.now < end || sent < 20) && clock.now < cap {
                if udp.send(payload: 100) {
                    sent += 1
                    lastSend = ServerHarness.now()
                }
                udp.drain()
                try await Task.sleep(for: .milliseconds(10))
            }
            // A sanity check of the sender only (sanitizer builds run slowly); what is
            // asserted about trafficmon follows.
            #expect(sent >= 3, "only \(sent) datagrams sent in 4 s")
            // The window holding the last datagram, and the one after it, close.
            let after = (Timestamp.floorDiv(lastSend, ServerHarness.second) + 1) * ServerHarness.second
            try await ServerHarness.waitUntil("every client to get the window after the last datagram", timeout: .seconds(10)) {
                collectors.allSatisfy { ($0.all.last?.start ?? 0) >= after }
            }
            let response = try await client.execute(uri: "/stats/history?limit=10000", method: .get, headers: [:], body: nil)
            let history = try ServerHarness.decodeHistory(response)
            stop.set()
            _ = try? await listeners.value

            // Each client's sequence from the first window all three got.
            let first = collectors.map { $0.all.first?.start ?? .max }.max() ?? .max
            let sequences = collectors.map { c in c.all.filter { $0.start >= first } }
            #expect(sequences[0].count >= 5, "windows: \(sequences[0].map(\.start))")
            #expect(sequences[0] == sequences[1] && sequences[1] == sequences[2], "the three clients' windows differ")
            for (i, c) in collectors.enumerated() {
                let starts = c.all.map(\.start)
                #expect(zip(starts, starts.dropFirst()).allSatisfy { $1 - $0 == ServerHarness.second }, "client \(i): starts \(starts)")
            }
            // Every datagram was sent after all three subscribed, so all of them are in
            // the windows every client received.
            let packets = sequences[0].map(\.packets).reduce(0, +)
            let bytes = sequences[0].map(\.bytes).reduce(0, +)
            #expect(packets == UInt64(sent), "the clients' windows hold \(packets) packets; the test sent \(sent)")
            #expect(bytes == UInt64(sent) * 142)
            // And each window is the one /stats/history has for that start (the clients
            // listened on after the history was read: windows closed since are not in it).
            let byStart = Dictionary(history.map { ($0.start, $0) }, uniquingKeysWith: { a, _ in a })
            let newest = try #require(history.last?.start)
            #expect(newest >= after)
            for w in sequences[0] where w.start <= newest {
                #expect(byStart[w.start] == w, "window \(Timestamp.rfc3339(w.start)) differs from /stats/history")
            }
        }
    }
}
