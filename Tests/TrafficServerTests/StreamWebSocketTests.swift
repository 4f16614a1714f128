import Foundation
import Hummingbird
import HummingbirdTesting
import HummingbirdWSTesting
import Logging
import Testing
import TrafficCapture
import TrafficCore
import TrafficServer
import TrafficTestSupport
import WSClient

#if canImport(Glibc)
import Glibc
#endif

/// `WS /stats/stream` in process: windows come from injects after the replay of an empty
/// file (so they close on the wall clock, one per second), and the test knows exactly
/// what it injected.
@Suite struct StreamWebSocketTests {
    /// Connects to `/stats/stream` and appends every window received to `into` until
    /// `stop` is set (then closes normally) or the server closes.
    static func listen(port: Int, into collector: WSCollector<WindowRecord>, stop: StopFlag, headers: HTTPFields = [:]) async throws {
        let configuration = WebSocketClientConfiguration(maxFrameSize: 1 << 26, additionalHeaders: headers)
        try await WebSocketClient.connect(
            url: "ws://127.0.0.1:\(port)/stats/stream", configuration: configuration, logger: ServerHarness.logger
        ) { inbound, outbound, _ in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for try await message in inbound.messages(maxSize: 1 << 26) {
                        guard case .text(let text) = message else { continue }
                        collector.append(try JSONDecoder().decode(WindowRecord.self, from: Data(text.utf8)))
                    }
                }
                group.addTask {
                    while !stop.isSet { try await Task.sleep(for: .milliseconds(50)) }
                    try? await outbound.close(.normalClosure, reason: nil)
                }
                // Either the server closed (the reader ends) or we did (the closer ends
                // and the reader ends on the server's answer).
                try await group.next()
                if stop.isSet {
                    try await group.next()
                }
                group.cancelAll()
            }
        }
    }

    /// `listen` for every collector at once, in one task: cancel it once `stop` is set.
    static func listen(port: Int, into collectors: [WSCollector<WindowRecord>], stop: StopFlag) -> Task<Void, any Error> {
        Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for c in collectors { group.addTask { try await listen(port: port, into: c, stop: stop) } }
                try await group.waitForAll()
            }
        }
    }

    /// Three clients see the same windows, in order, each equal to the history's; a fourth
    /// that never reads (a hand-made handshake, a 1 KiB receive buffer) falls behind, is
    /// given up on once its queue (`streamQueueLimit` 2) overflows, is disconnected with
    /// close code 1008, and holds nobody back.
    @Test(.timeLimit(.minutes(TestTimeLimit.minutes))) func threeClientsGetEveryWindowWhileAStalledOneIsDropped() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-stream")
        defer { try? FileManager.default.removeItem(at: dir) }
        var options = TrafficServer.Options()
        options.streamQueueLimit = 2
        // Big windows (about 2000 clients listed, some 300 kB of JSON each), so the stalled
        // client's socket buffers fill within a few windows.
        let server = try await ServerHarness.server(
            source: try .file(try ServerHarness.emptyCapture(in: dir)), windowLength: ServerHarness.second, top: 5000, options: options)
        try await server.application.test(.live) { client in
            let port = try #require(client.port)
            try await ServerHarness.waitUntil("the empty replay to end") { server.state.engine.status == .replayed }

            let collectors = (0..<3).map { _ in WSCollector<WindowRecord>() }
            let stop = StopFlag()
            let listeners = Self.listen(port: port, into: collectors, stop: stop)
            defer { stop.set(); listeners.cancel() }
            try await ServerHarness.waitUntil("3 subscribers") { server.hub.clientCount == 3 }

            let stalled = try RawSocket(port: port, receiveBuffer: 1024)
            let handshake = try await stalled.upgraded(path: "/stats/stream", port: port)
            #expect(handshake.status == 101, "stalled client's upgrade: \(handshake.head)")
            try await ServerHarness.waitUntil("the stalled subscriber") { server.hub.clientCount == 4 }

            // 2000 distinct clients per second, one packet of 700 bytes each: about 300 kB
            // of JSON per window.
            let injected = WSCollector<Int>()
            let injector = Task {
                var i = 0
                while !Task.isCancelled {
                    for _ in 0..<200 {
                        ServerHarness.inject(server, clientIndex: i, size: 700)
                        i += 1
                    }
                    injected.append(200)
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
            defer { injector.cancel() }

            // The hub gives up on the stalled client once its queue overflows...
            // (Seconds normally; a sanitizer build fills the socket buffers more slowly.)
            try await ServerHarness.waitUntil("the stalled client to be dropped as too slow", timeout: .seconds(120)) {
                server.hub.droppedCount == 1
            }
            // (How many windows that takes depends on the socket buffers between them: the
            // kernel's send buffer grows to 4 MiB on loopback, some 1.5 MB of records.)
            let markedAfter = server.state.history(limit: 10_000).count
            // ...and disconnects it at once, while it still reads nothing.
            let disconnected = (try? await ServerHarness.waitUntil("the stalled client to be disconnected", timeout: .seconds(3)) {
                server.hub.clientCount == 3
            }) != nil
            #expect(disconnected, """
                the stalled /stats/stream client was dropped after \(markedAfter) windows but is still connected \
                3 s later (hub.clientCount \(server.hub.clientCount))
                """)
            // Reading now, it finds the end of the stream once the queued bytes are through.
            #expect(try await stalled.drained(quiet: 3, limit: 30).eof, "the server did not close the stalled client's connection")
            // The others go on: two more windows after the drop (or the timeout).
            let afterDrop = server.state.history(limit: 10_000).count
            try await ServerHarness.waitUntil("two more windows", timeout: .seconds(10)) {
                server.state.history(limit: 10_000).count >= afterDrop + 2
            }
            injector.cancel()
            _ = await injector.result
            let sent = injected.all.reduce(0, +)
            // The window holding the last inject closes about 1.4 s later.
            try? await ServerHarness.waitUntil("the windows to hold every injected packet", timeout: .seconds(90)) {
                server.state.history(limit: 10_000).map(\.packets).reduce(0, +) >= UInt64(sent)
            }
            let history = try await ServerHarness.history(client)
            try await ServerHarness.waitUntil("every client to get the last window", timeout: .seconds(10)) {
                collectors.allSatisfy { $0.all.last?.start == history.last?.start }
            }
            stop.set()
            _ = await listeners.result

            // Every window reached every client, the same, in order, one second apart.
            #expect(history.count >= 6)
            let expected = history.map(\.packets).reduce(0, +)
            #expect(expected == UInt64(sent), "the windows hold \(expected) packets; the test injected \(sent)")
            for (i, c) in collectors.enumerated() {
                let got = c.all
                #expect(got.count == history.count, "client \(i) got \(got.count) windows of \(history.count)")
                #expect(got == history, "client \(i)'s windows differ from /stats/history")
            }
            #expect(collectors[0].all == collectors[1].all && collectors[1].all == collectors[2].all)
            // In order, on whole seconds (after a replay only windows with injects are
            // emitted, so a slow sanitizer build may leave a second out).
            let starts = history.map(\.start)
            #expect(zip(starts, starts.dropFirst()).allSatisfy { $1 > $0 && ($1 - $0) % ServerHarness.second == 0 }, "starts: \(starts)")

            // What the stalled client was sent: some whole windows in order, then a close
            // frame 1008 (policy violation, "too slow").
            let drained = try await stalled.drained(quiet: 3, limit: 20)
            let frames = RawSocket.frames(drained.bytes)
            let texts = frames.filter { $0.opcode == 1 }.compactMap {
                try? JSONDecoder().decode(WindowRecord.self, from: Data($0.payload))
            }
            #expect(texts.count < history.count, "the stalled client got \(texts.count) windows of \(history.count)")
            #expect(texts == Array(history.prefix(texts.count)), "the stalled client's windows are not the first ones in order")
            // It was cut off: the stream ends. A client that never reads cannot receive the
            // close frame (it queues behind the windows), so the connection is closed after
            // 2 s; when the frame did get through, it says 1008.
            #expect(drained.eof, "the stalled client's connection is still open (\(drained.bytes.count) bytes read)")
            if let close = frames.first(where: { $0.opcode == 8 }), close.payload.count >= 2 {
                #expect(Int(close.payload[0]) << 8 | Int(close.payload[1]) == 1008)
            }
            stalled.disconnect()
        }
    }

    /// A client that vanishes (its TCP connection closed without a WebSocket close frame,
    /// as when a browser tab dies or the network drops) is let go: unsubscribed, its
    /// handler ended; whether its connection ended with a FIN or a reset.
    @Test(.timeLimit(.minutes(TestTimeLimit.minutes)), arguments: [false, true])
    func aClientThatVanishesIsLetGo(reset: Bool) async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-stream-gone")
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try await ServerHarness.server(source: try .file(try ServerHarness.emptyCapture(in: dir)), windowLength: ServerHarness.second)
        try await server.application.test(.live) { client in
            let port = try #require(client.port)
            try await ServerHarness.waitUntil("the empty replay to end") { server.state.engine.status == .replayed }
            let raw = try RawSocket(port: port)
            let answer = try await raw.upgraded(path: "/stats/stream", port: port)
            #expect(answer.status == 101)
            try await ServerHarness.waitUntil("the subscriber") { server.hub.clientCount == 1 }
            if reset { raw.reset() } else { raw.disconnect() }
            let released = (try? await ServerHarness.waitUntil("the vanished client to be let go", timeout: .seconds(5)) {
                server.hub.clientCount == 0
            }) != nil
            // A FIN is seen at once. A reset on an idle connection may only surface at the
            // next write, so such a client is let go with the next window (below).
            if !reset {
                #expect(released, "5 s after its connection closed, the vanished client is still subscribed (hub.clientCount \(server.hub.clientCount))")
            }
            if !released {
                // A window to write makes its writer fail, which ends the handler (so the
                // test server can shut down).
                ServerHarness.inject(server, clientIndex: 1)
                let afterWindow = (try? await ServerHarness.waitUntil("a window to end the handler", timeout: .seconds(5)) {
                    server.hub.clientCount == 0
                }) != nil
                #expect(afterWindow, "even after a window was published the vanished client stays subscribed")
            }
        }
    }

    /// 200 clients at once: each receives the windows that close while they are all connected.
    @Test(.timeLimit(.minutes(TestTimeLimit.minutes))) func twoHundredConcurrentClients() async throws {
        let dir = try TestProcess.temporaryDirectory("trafficmon-stream200")
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try await ServerHarness.server(source: try .file(try ServerHarness.emptyCapture(in: dir)), windowLength: ServerHarness.second)
        try await server.application.test(.live) { client in
            let port = try #require(client.port)
            try await ServerHarness.waitUntil("the empty replay to end") { server.state.engine.status == .replayed }
            let injector = Task {
                var i = 0
                while !Task.isCancelled {
                    ServerHarness.inject(server, clientIndex: i % 7)
                    i += 1
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
            defer { injector.cancel() }
            let collectors = (0..<200).map { _ in WSCollector<WindowRecord>() }
            let stop = StopFlag()
            let failures = WSCollector<String>()
            let listeners = Task {
                await withTaskGroup(of: Void.self) { group in
                    for c in collectors {
                        group.addTask {
                            do { try await Self.listen(port: port, into: c, stop: stop) } catch { failures.append("\(error)") }
                        }
                    }
                }
            }
            defer { stop.set(); listeners.cancel() }
            try await ServerHarness.waitUntil("200 subscribers", timeout: .seconds(30)) { server.hub.clientCount == 200 }
            let before = server.state.history(limit: 10_000).count
            try await ServerHarness.waitUntil("two windows with all 200 connected", timeout: .seconds(10)) {
                server.state.history(limit: 10_000).count >= before + 2
            }
            let closedWhileAllConnected = Array(server.state.history(limit: 10_000)[before..<(before + 2)])
            try? await ServerHarness.waitUntil("every client to get them", timeout: .seconds(10)) {
                collectors.allSatisfy { c in closedWhileAllConnected.allSatisfy { w in c.all.contains(w) } }
            }
            stop.set()
            _ = await listeners.result
            #expect(failures.all.isEmpty, "client errors: \(failures.all.prefix(3))")
            let missing = collectors.indices.filter { i in !closedWhileAllConnected.allSatisfy { collectors[i].all.contains($0) } }
            #expect(missing.isEmpty, "\(missing.count) of 200 clients missed a window closed while all were connected")
            #expect(collectors.allSatisfy { $0.count >= 1 })
        }
    }
}
