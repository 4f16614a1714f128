import Foundation

/// The HTTP client of the tests that talk to a real server over a socket: a `trafficmon
/// serve` process, Prometheus, Chromium's DevTools endpoint. (In-process servers are
/// tested through HummingbirdTesting instead.)
///
/// `http://` goes over a plain TCP socket to the loopback address, one request per
/// connection, so the test sees what the server sent and nothing in between retries,
/// follows redirects or pools connections. `https://` goes through curl, since TLS needs
/// a library this target does without; `tls` says what certificate to trust (any, unless
/// told otherwise).
///
/// The blocking calls suit synchronous tests; the `async` ones run them on a Dispatch
/// thread, off the cooperative pool that in-process servers share.
///
/// ```swift
/// let reply = try await TestHTTP.get("http://127.0.0.1:\(port)/metrics")
/// #expect(reply.status == 200)
/// ```
public enum TestHTTP {
    /// A server's reply.
    public struct Response: Sendable, CustomStringConvertible {
        public var status: Int
        /// Header fields by lower-cased name (the last one wins when a name repeats).
        public var headers: [String: String]
        /// The status line and the header lines, as received.
        public var head: String
        /// The body, chunked transfer coding removed.
        public var body: Data

        public var text: String { String(decoding: body, as: UTF8.self) }
        public var description: String { "HTTP \(status): \(text.prefix(300))" }

        public init(status: Int, headers: [String: String], head: String, body: Data) {
            self.status = status
            self.headers = headers
            self.head = head
            self.body = body
        }
    }

    /// Which server certificates an `https://` request accepts.
    public enum TLS: Sendable {
        /// Any certificate (`curl -k`).
        case insecure
        /// Only a chain ending at the PEM certificate at this path (`curl --cacert`).
        case trusting(certificate: String)
    }

    /// Sends one request and reads the whole reply. `headers` are sent as given (a `Host`
    /// or `Connection` among them replaces the default one); a body, or a POST or PUT,
    /// gets a `Content-Length`. Throws when no reply comes within `timeout` seconds of
    /// silence, or what comes is not HTTP.
    public static func request(
        _ method: String, _ url: String, headers: [String: String] = [:], body: Data = Data(), tls: TLS = .insecure,
        timeout: TimeInterval = 10
    ) throws -> Response {
        guard let parts = URLComponents(string: url), let scheme = parts.scheme, let port = parts.port else {
            throw TestProcess.Failure("not an http(s)://host:port URL: \(url)")
        }
        switch scheme {
        case "http":
            guard ["127.0.0.1", "localhost"].contains(parts.host ?? "") else {
                throw TestProcess.Failure("only 127.0.0.1 and localhost are reachable: \(url)")
            }
            let target = (parts.percentEncodedPath.isEmpty ? "/" : parts.percentEncodedPath)
                + (parts.percentEncodedQuery.map { "?" + $0 } ?? "")
            return try overSocket(
                method, port: port, target: target, host: "\(parts.host ?? "127.0.0.1"):\(port)", headers: headers, body: body,
                timeout: timeout)
        case "https":
            return try throughCurl(method, url, headers: headers, body: body, tls: tls, timeout: timeout)
        default:
            throw TestProcess.Failure("not an http(s) URL: \(url)")
        }
    }

    /// `request` on a Dispatch thread.
    public static func request(
        _ method: String, _ url: String, headers: [String: String] = [:], body: Data = Data(), tls: TLS = .insecure,
        timeout: TimeInterval = 10
    ) async throws -> Response {
        try await TestProcess.offload { try request(method, url, headers: headers, body: body, tls: tls, timeout: timeout) }
    }

    public static func get(_ url: String, headers: [String: String] = [:], tls: TLS = .insecure, timeout: TimeInterval = 10) throws -> Response {
        try request("GET", url, headers: headers, tls: tls, timeout: timeout)
    }

    public static func get(
        _ url: String, headers: [String: String] = [:], tls: TLS = .insecure, timeout: TimeInterval = 10
    ) async throws -> Response {
        try await request("GET", url, headers: headers, tls: tls, timeout: timeout)
    }

    // MARK: Plain HTTP

    static func overSocket(
        _ method: String, port: Int, target: String, host: String, headers: [String: String], body: Data, timeout: TimeInterval
    ) throws -> Response {
        let socket = try RawSocket(port: port, receiveTimeout: max(1, Int(timeout.rounded(.up))))
        defer { socket.disconnect() }
        let names = Set(headers.keys.map { $0.lowercased() })
        var request = "\(method) \(target) HTTP/1.1\r\n"
        if !names.contains("host") { request += "Host: \(host)\r\n" }
        if !names.contains("connection") { request += "Connection: close\r\n" }
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        if !body.isEmpty || method == "POST" || method == "PUT" { request += "Content-Length: \(body.count)\r\n" }
        request += "\r\n"
        let sent = socket.send(bytes: Array(request.utf8) + Array(body))
        var received = [UInt8]()
        while true {
            let chunk: [UInt8]
            do {
                chunk = try socket.receive()
            } catch {
                throw TestProcess.Failure("\(method) \(target) on port \(port): \(error) after \(received.count) bytes")
            }
            if chunk.isEmpty { break }
            received += chunk
            // A server that keeps the connection open (Chromium's DevTools) is done once the
            // body is complete.
            if let (reply, complete) = try? parse(received, method: method), complete { return reply }
        }
        do {
            return try parse(received, method: method).response
        } catch {
            throw TestProcess.Failure("\(method) \(target) on port \(port)\(sent ? "" : " (not all sent)"): \(error)")
        }
    }

    /// Parses a reply; the body is what follows the head (chunks joined). `complete`: the
    /// body is all there, by `Content-Length`, a last chunk, or a status that has none.
    static func parse(_ bytes: [UInt8], method: String) throws -> (response: Response, complete: Bool) {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = (0..<max(0, bytes.count - 3)).first(where: { bytes[$0..<$0 + 4].elementsEqual(separator) }) else {
            throw TestProcess.Failure("no HTTP reply head in \(bytes.count) bytes: \(String(decoding: bytes.prefix(100), as: UTF8.self))")
        }
        let head = String(decoding: bytes[0..<end], as: UTF8.self)
        let statusParts = head.prefix { $0 != "\r" }.split(separator: " ")
        guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/"), let status = Int(statusParts[1]) else {
            throw TestProcess.Failure("not an HTTP status line: \(head.prefix { $0 != "\r" })")
        }
        let headers = fields(of: head)
        var body = Array(bytes[(end + 4)...])
        var complete = false
        if method == "HEAD" || (100..<200).contains(status) || status == 204 || status == 304 {
            body = []
            complete = true
        } else if headers["transfer-encoding"]?.lowercased() == "chunked" {
            var decoded = [UInt8]()
            var i = 0
            while i + 1 < body.count {
                guard let lineEnd = (i..<(body.count - 1)).first(where: { body[$0] == 13 && body[$0 + 1] == 10 }),
                      let size = Int(String(decoding: body[i..<lineEnd], as: UTF8.self).split(separator: ";").first ?? "", radix: 16)
                else { break }
                if size == 0 {
                    complete = true
                    break
                }
                guard lineEnd + 2 + size <= body.count else { break }
                decoded += body[(lineEnd + 2)..<(lineEnd + 2 + size)]
                i = lineEnd + 2 + size + 2
            }
            body = decoded
        } else if let length = headers["content-length"].flatMap({ Int($0) }) {
            complete = body.count >= length
        }
        return (Response(status: status, headers: headers, head: head, body: Data(body)), complete)
    }

    /// The header fields of a reply head, by lower-cased name.
    static func fields(of head: String) -> [String: String] {
        var fields: [String: String] = [:]
        for line in head.components(separatedBy: "\r\n").dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return fields
    }

    // MARK: HTTPS

    static func throughCurl(
        _ method: String, _ url: String, headers: [String: String], body: Data, tls: TLS, timeout: TimeInterval
    ) throws -> Response {
        let files = FileManager.default.temporaryDirectory.appendingPathComponent("test-http-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: files, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: files) }
        let headFile = files.appendingPathComponent("head"), bodyFile = files.appendingPathComponent("body")
        var arguments = ["-s", "-S", "--max-time", "\(Int(timeout.rounded(.up)))", "-D", headFile.path, "-o", bodyFile.path,
                         "-w", "%{http_code}", "-X", method]
        switch tls {
        case .insecure: arguments.append("-k")
        case .trusting(let certificate): arguments += ["--cacert", certificate]
        }
        for (name, value) in headers { arguments += ["-H", "\(name): \(value)"] }
        if !body.isEmpty || method == "POST" || method == "PUT" { arguments += ["--data-binary", "@-"] }
        arguments.append(url)
        let curl = URL(fileURLWithPath: TestProcess.which("curl") ?? "/usr/bin/curl")
        let result = try TestProcess.run(curl, arguments, input: body, timeout: timeout + 5)
        let status = Int(result.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        guard status != 0 else {
            throw TestProcess.Failure("\(method) \(url): no HTTP reply (curl exit \(result.status)): \(result.stderr)")
        }
        // The last head curl saw (after any 100 Continue).
        let heads = ((try? String(contentsOf: headFile, encoding: .utf8)) ?? "")
            .components(separatedBy: "\r\n\r\n").filter { !$0.isEmpty }
        let head = heads.last ?? ""
        return Response(status: status, headers: fields(of: head), head: head, body: (try? Data(contentsOf: bodyFile)) ?? Data())
    }
}
