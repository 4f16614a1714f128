import Foundation
import HummingbirdWSClient
import Logging
import TrafficTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Debian's `chromium`, headless, driven over the Chrome DevTools Protocol (a WebSocket
/// to the page's target): navigate, evaluate JavaScript and read the DOM, emulate a
/// phone or a dark colour scheme, take screenshots, and collect every JavaScript
/// exception and console or log error the page produced.
///
/// ```swift
/// let browser = try await HeadlessChromium.launch(profile: dir)
/// defer { browser.close() }
/// try await browser.navigate("http://127.0.0.1:9000/")
/// let title: String = try await browser.evaluate("document.title")
/// #expect(browser.exceptions.isEmpty)
/// ```
final class HeadlessChromium: @unchecked Sendable {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// `chromium` (Debian), or another name it goes by.
    static var executable: String? {
        ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"].lazy.compactMap { TestProcess.which($0) }.first
    }

    private let process: Process
    private let session: DevToolsSession

    private init(process: Process, session: DevToolsSession) {
        self.process = process
        self.session = session
    }

    /// Starts Chromium on about:blank with a fresh profile in `profile` and attaches to
    /// its page.
    static func launch(profile: URL, width: Int = 1280, height: Int = 900) async throws -> HeadlessChromium {
        guard let executable else { throw Failure(description: "chromium is not installed (scripts/test installs it)") }
        try FileManager.default.createDirectory(at: profile, withIntermediateDirectories: true)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--mute-audio", "--hide-scrollbars",
            "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "--remote-allow-origins=*",
            "--user-data-dir=\(profile.path)", "--window-size=\(width),\(height)", "about:blank",
        ]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        do {
            // Chromium writes the port it chose into the profile.
            let portFile = profile.appendingPathComponent("DevToolsActivePort")
            var port: Int?
            let deadline = Date().addingTimeInterval(30)
            while port == nil {
                if let text = try? String(contentsOf: portFile, encoding: .utf8), let first = text.split(separator: "\n").first {
                    port = Int(first)
                }
                if port == nil {
                    guard process.isRunning else { throw Failure(description: "chromium exited with \(process.terminationStatus) at start") }
                    guard Date() < deadline else { throw Failure(description: "chromium did not open its DevTools port within 30 s") }
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            let devtools = port ?? 0
            let targets = try await TestHTTP.get("http://127.0.0.1:\(devtools)/json/list")
            guard let list = try JSONSerialization.jsonObject(with: targets.body) as? [[String: Any]],
                  let page = list.first(where: { $0["type"] as? String == "page" }),
                  let url = page["webSocketDebuggerUrl"] as? String
            else { throw Failure(description: "chromium lists no page target: \(targets.text.prefix(300))") }
            let browser = HeadlessChromium(process: process, session: DevToolsSession(url: url))
            for domain in ["Page.enable", "Runtime.enable", "Log.enable"] { _ = try await browser.session.send(domain) }
            return browser
        } catch {
            stop(process)
            throw error
        }
    }

    /// JavaScript exceptions the page threw (uncaught errors and rejected promises).
    var exceptions: [String] { session.exceptions }
    /// `console.error`/`console.assert` calls and browser log entries at error level
    /// (failed requests, refused WebSocket connections...).
    var logErrors: [String] { session.logErrors }

    /// Loads `url` and waits for its `load` event.
    func navigate(_ url: String) async throws {
        let loaded = session.nextEvent("Page.loadEventFired")
        let result = try await session.send("Page.navigate", ["url": url])
        if let error = result["errorText"] as? String { throw Failure(description: "navigating to \(url): \(error)") }
        try await loaded.value
    }

    /// Reloads the page and waits for its `load` event.
    func reload() async throws {
        let loaded = session.nextEvent("Page.loadEventFired")
        _ = try await session.send("Page.reload")
        try await loaded.value
    }

    /// The value of a JavaScript expression (anything JSON can carry), decoded as `T`.
    func evaluate<T: Decodable>(_ expression: String, as type: T.Type = T.self) async throws -> T {
        let wrapped = "JSON.stringify({ value: (\(expression)) })"
        let result = try await session.send("Runtime.evaluate", ["expression": wrapped, "returnByValue": true, "awaitPromise": true])
        if let details = result["exceptionDetails"] as? [String: Any] {
            throw Failure(description: "evaluating \(expression): \(DevToolsSession.describe(exception: details))")
        }
        guard let inner = result["result"] as? [String: Any], let json = inner["value"] as? String else {
            throw Failure(description: "evaluating \(expression) gave no value")
        }
        return try JSONDecoder().decode(EvaluationBox<T>.self, from: Data(json.utf8)).value
    }

    /// Polls a boolean JavaScript expression until it is true (false after `timeout`).
    func wait(until expression: String, timeout: Duration) async throws -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            if try await evaluate("Boolean(\(expression))", as: Bool.self) { return true }
            try await Task.sleep(for: .milliseconds(100))
        }
        return try await evaluate("Boolean(\(expression))", as: Bool.self)
    }

    /// Types `text` into the focused element, as a keyboard would.
    func type(_ text: String) async throws {
        _ = try await session.send("Input.insertText", ["text": text])
    }

    /// Presses a key (`Enter`, `Tab`...) on the focused element.
    func press(_ key: String, code: Int) async throws {
        for kind in ["keyDown", "keyUp"] {
            var params: [String: Any] = ["type": kind, "key": key, "code": key, "windowsVirtualKeyCode": code]
            if key == "Enter", kind == "keyDown" { params["text"] = "\r" }
            _ = try await session.send("Input.dispatchKeyEvent", params)
        }
    }

    /// Emulates a viewport (a phone: 390 x 844, scale 3, mobile) until `clearViewport()`.
    func emulateViewport(width: Int, height: Int, scale: Double = 1, mobile: Bool = false) async throws {
        _ = try await session.send(
            "Emulation.setDeviceMetricsOverride", ["width": width, "height": height, "deviceScaleFactor": scale, "mobile": mobile])
    }

    func clearViewport() async throws {
        _ = try await session.send("Emulation.clearDeviceMetricsOverride")
    }

    /// Emulates `prefers-color-scheme` (`dark`, `light`, or "" for the default).
    func emulateColorScheme(_ scheme: String) async throws {
        _ = try await session.send("Emulation.setEmulatedMedia", ["features": [["name": "prefers-color-scheme", "value": scheme]]])
    }

    /// A PNG of the whole page (not only the viewport), written to `url`.
    @discardableResult
    func screenshot(to url: URL) async throws -> Data {
        let metrics = try await session.send("Page.getLayoutMetrics")
        let size = metrics["cssContentSize"] as? [String: Any]
        let width = (size?["width"] as? Double) ?? 1280
        let height = (size?["height"] as? Double) ?? 900
        return try await screenshot(to: url, clip: ["x": 0, "y": 0, "width": width, "height": height, "scale": 1])
    }

    /// A PNG of the element `selector` selects (its box, wherever it is on the page).
    @discardableResult
    func screenshot(to url: URL, of selector: String) async throws -> Data {
        struct Box: Decodable { var x, y, width, height: Double }
        let box: Box = try await evaluate("""
            (() => { const r = document.querySelector(\(String(reflecting: selector))).getBoundingClientRect();
                     return { x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height }; })()
            """)
        return try await screenshot(to: url, clip: ["x": box.x, "y": box.y, "width": box.width, "height": box.height, "scale": 1])
    }

    private func screenshot(to url: URL, clip: [String: Double]) async throws -> Data {
        let result = try await session.send("Page.captureScreenshot", [
            "format": "png", "captureBeyondViewport": true, "clip": clip,
        ])
        guard let base64 = result["data"] as? String, let png = Data(base64Encoded: base64) else {
            throw Failure(description: "the screenshot came back empty")
        }
        try png.write(to: url)
        return png
    }

    func close() {
        session.close()
        Self.stop(process)
    }

    /// Ends Chromium and every process it started, at once (a test's browser keeps nothing
    /// worth a graceful exit): Foundation starts a child in a process group of its own,
    /// which the zygote and renderers share, so the group is killed.
    private static func stop(_ process: Process) {
        kill(-process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

/// `{"value": ...}`, what `evaluate` wraps a result in.
struct EvaluationBox<T: Decodable>: Decodable {
    var value: T
}

/// One DevTools WebSocket: numbered commands with their replies, and the events the
/// tests care about (exceptions, console and log errors, and a count of every event).
///
/// ```swift
/// let session = DevToolsSession(url: "ws://127.0.0.1:9222/devtools/page/ID")
/// let loaded = session.nextEvent("Page.loadEventFired")
/// _ = try await session.send("Page.navigate", ["url": "http://127.0.0.1:9000/"])
/// try await loaded.value
/// ```
final class DevToolsSession: @unchecked Sendable {
    private let lock = NSLock()
    private var nextID = 1
    private var replies: [Int: CheckedContinuation<Data, any Error>] = [:]
    private var eventCounts: [String: Int] = [:]
    private var closedError: (any Error)?
    private var exceptionList: [String] = []
    private var logErrorList: [String] = []
    private let outgoing: AsyncStream<String>.Continuation
    private var connection: Task<Void, Never>?

    init(url: String) {
        let (stream, continuation) = AsyncStream.makeStream(of: String.self)
        outgoing = continuation
        var logger = Logger(label: "devtools")
        logger.logLevel = .critical
        connection = Task { [self] in
            do {
                // Screenshots come back as one large message.
                let configuration = WebSocketClientConfiguration(maxFrameSize: 1 << 27)
                try await WebSocketClient.connect(url: url, configuration: configuration, logger: logger) { inbound, outbound, _ in
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            for await text in stream { try await outbound.write(.text(text)) }
                        }
                        group.addTask {
                            for try await message in inbound.messages(maxSize: 1 << 27) {
                                if case .text(let text) = message { self.receive(text) }
                            }
                        }
                        try await group.next()
                        group.cancelAll()
                    }
                }
                finish(HeadlessChromium.Failure(description: "the DevTools connection closed"))
            } catch {
                finish(error)
            }
        }
    }

    var exceptions: [String] { lock.withLock { exceptionList } }
    var logErrors: [String] { lock.withLock { logErrorList } }

    /// Sends a command and returns its `result` object.
    func send(_ method: String, _ params: [String: Any] = [:], timeout: Duration = .seconds(30)) async throws -> [String: Any] {
        let id = lock.withLock { () -> Int in
            defer { nextID += 1 }
            return nextID
        }
        let message = try JSONSerialization.data(withJSONObject: ["id": id, "method": method, "params": params])
        let text = String(decoding: message, as: UTF8.self)
        let timer = Task { [self] in
            try await Task.sleep(for: timeout)
            resolve(id, with: .failure(HeadlessChromium.Failure(description: "\(method) got no reply within \(timeout)")))
        }
        defer { timer.cancel() }
        let data = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Data, any Error>) in
            let failure: (any Error)? = lock.withLock {
                if let closedError { return closedError }
                replies[id] = continuation
                return nil
            }
            if let failure {
                continuation.resume(throwing: failure)
            } else {
                outgoing.yield(text)
            }
        }
        return (try JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
    }

    /// A task that ends when the next `method` event arrives (call before causing it).
    func nextEvent(_ method: String, timeout: Duration = .seconds(30)) -> Task<Void, any Error> {
        let seen = lock.withLock { eventCounts[method, default: 0] }
        return Task { [self] in
            let clock = ContinuousClock()
            let deadline = clock.now + timeout
            while lock.withLock({ eventCounts[method, default: 0] }) == seen {
                if let closedError = lock.withLock({ self.closedError }) { throw closedError }
                guard clock.now < deadline else { throw HeadlessChromium.Failure(description: "no \(method) within \(timeout)") }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    private func resolve(_ id: Int, with result: Result<Data, any Error>) {
        guard let continuation = lock.withLock({ replies.removeValue(forKey: id) }) else { return }
        continuation.resume(with: result)
    }

    private func receive(_ text: String) {
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { return }
        if let id = object["id"] as? Int {
            if let error = object["error"] as? [String: Any] {
                resolve(id, with: .failure(HeadlessChromium.Failure(description: "DevTools error: \(error["message"] ?? error)")))
            } else {
                let result = object["result"] ?? [String: Any]()
                resolve(id, with: Result { try JSONSerialization.data(withJSONObject: result) })
            }
            return
        }
        guard let method = object["method"] as? String else { return }
        let params = object["params"] as? [String: Any] ?? [:]
        switch method {
        case "Runtime.exceptionThrown":
            let details = params["exceptionDetails"] as? [String: Any] ?? [:]
            lock.withLock { exceptionList.append(Self.describe(exception: details)) }
        case "Runtime.consoleAPICalled":
            let kind = params["type"] as? String ?? ""
            guard kind == "error" || kind == "assert" else { break }
            let args = (params["args"] as? [[String: Any]] ?? []).map { "\($0["value"] ?? $0["description"] ?? "")" }
            lock.withLock { logErrorList.append("console.\(kind): \(args.joined(separator: " "))") }
        case "Log.entryAdded":
            let entry = params["entry"] as? [String: Any] ?? [:]
            guard entry["level"] as? String == "error" else { break }
            lock.withLock { logErrorList.append("\(entry["source"] ?? "log"): \(entry["text"] ?? "") \(entry["url"] ?? "")") }
        default:
            break
        }
        lock.withLock { eventCounts[method, default: 0] += 1 }
    }

    static func describe(exception details: [String: Any]) -> String {
        let exception = details["exception"] as? [String: Any]
        let text = (exception?["description"] as? String) ?? (details["text"] as? String) ?? "an exception"
        return "\(text) (line \(details["lineNumber"] ?? "?"), \(details["url"] ?? "inline"))"
    }

    private func finish(_ error: any Error) {
        let pending = lock.withLock { () -> [CheckedContinuation<Data, any Error>] in
            closedError = closedError ?? error
            defer { replies = [:] }
            return Array(replies.values)
        }
        for continuation in pending { continuation.resume(throwing: error) }
    }

    func close() {
        outgoing.finish()
        connection?.cancel()
    }
}
