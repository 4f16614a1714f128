import Foundation
import Hummingbird

/// The `Host` names a server listening on a loopback address answers to, against DNS
/// rebinding: a page on another site can point its own name at 127.0.0.1 and have the
/// visitor's browser read the API, but the browser still sends that name as `Host`. Such a
/// server answers only `localhost` and `*.localhost` (RFC 6761: browsers resolve them to
/// loopback themselves), loopback literals (`127.x.x.x`, `[::1]`, `[::ffff:127.x.x.x]`),
/// with or without a port, and the names given with `--allowed-host`. A request without
/// `Host` (HTTP/1.0 tools) is served: a browser always sends one.
///
/// A server listening on any other address is reached by IP or by name (Prometheus scrapes
/// either): every `Host` is served there.
///
/// ```swift
/// let check = HostCheck(listen: try ListenAddress(parsing: "127.0.0.1:9000"), allowedHosts: ["monitor.lan"])
/// check.allows("localhost:9000")       // true
/// check.allows("evil.example.com")     // false
/// ```
public struct HostCheck: Sendable {
    /// Whether the check applies (the server listens on loopback).
    public let enforced: Bool
    /// `--allowed-host` names, lower case, without a trailing dot or a port.
    let allowed: Set<String>

    public init(listen: ListenAddress, allowedHosts: [String]) {
        enforced = listen.isLoopback
        allowed = Set(allowedHosts.compactMap { Self.hostPart(of: $0) })
    }

    /// Whether a request with this `Host` header is served.
    public func allows(_ host: String?) -> Bool {
        guard enforced, let host else { return true }
        guard let name = Self.hostPart(of: host) else { return false }
        return Self.isLoopback(name) || allowed.contains(name)
    }

    /// The host of a `Host` value (`name`, `name:port`, `[v6]`, `[v6]:port`): lower case,
    /// without a port, brackets or a trailing dot; `nil` when it is not of that form.
    public static func hostPart(of value: String) -> String? {
        var text = Substring(value.trimmingCharacters(in: .whitespaces).lowercased())
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            let rest = text[text.index(after: close)...]
            guard rest.isEmpty || isPort(rest.dropFirst()) && rest.first == ":" else { return nil }
            let inner = text[text.index(after: text.startIndex)..<close]
            return inner.isEmpty ? nil : String(inner)
        }
        if let colon = text.lastIndex(of: ":") {
            guard isPort(text[text.index(after: colon)...]) else { return nil }
            text = text[..<colon]
        }
        if text.hasSuffix(".") { text = text.dropLast() }
        // A bare IPv6 address (colons left) is not a valid Host; neither is an empty name.
        guard !text.isEmpty, !text.contains(":"), !text.contains("/"), !text.contains("@") else { return nil }
        return String(text)
    }

    private static func isPort(_ text: Substring) -> Bool {
        !text.isEmpty && text.count <= 5 && text.allSatisfy { $0.isASCII && $0.isNumber }
    }

    /// `localhost`, `*.localhost`, an IPv4 address in 127.0.0.0/8, `::1`, or an IPv4-mapped
    /// loopback address.
    static func isLoopback(_ host: String) -> Bool {
        if host == "localhost" || host.hasSuffix(".localhost") { return true }
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 {
            return UInt32(bigEndian: v4.s_addr) >> 24 == 127
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            let bytes = withUnsafeBytes(of: &v6) { Array($0) }
            if bytes[0..<15].allSatisfy({ $0 == 0 }) && bytes[15] == 1 { return true }
            let mapped = bytes[0..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xFF && bytes[11] == 0xFF
            return mapped && bytes[12] == 127
        }
        return false
    }

    /// The answer to a request whose `Host` is refused.
    static func refusal(_ host: String) -> HTTPError {
        HTTPError(
            .misdirectedRequest,
            message: "this server listens on a loopback address and answers only to localhost, a loopback address "
                + "or a name given with --allowed-host, not to Host '\(host.prefix(100))'")
    }
}

/// Refuses requests whose `Host` the check does not allow, with 421 and a JSON error.
struct HostCheckMiddleware<Context: RequestContext>: RouterMiddleware {
    let check: HostCheck

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let host = request.head.authority, !check.allows(host) {
            throw HostCheck.refusal(host)
        }
        return try await next(request, context)
    }
}
