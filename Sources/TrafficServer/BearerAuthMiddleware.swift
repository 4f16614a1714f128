import Foundation
import Hummingbird

/// Requires `Authorization: Bearer <token>` on every route but `/healthz` and the live
/// page's files, comparing against every configured token in constant time (no early
/// exit, no length leak beyond the token count). A WebSocket upgrade may carry the token
/// in `Sec-WebSocket-Protocol` instead, as `bearer.<base64url(token)>`: browsers cannot
/// set `Authorization` on a WebSocket.
///
/// ```swift
/// router.add(middleware: BearerAuthMiddleware(tokens: try BearerAuthMiddleware.loadTokens(path)))
/// ```
public struct BearerAuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let tokens: [[UInt8]]
    let openPaths: Set<String>

    public init(tokens: [String], openPaths: Set<String> = ["/healthz"]) {
        self.tokens = tokens.map { Array($0.utf8) }
        self.openPaths = openPaths
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if openPaths.contains(request.uri.path) { return try await next(request, context) }
        let offered = Self.offeredToken(
            path: request.uri.path, authorization: request.headers[.authorization], upgrade: request.headers[.upgrade],
            webSocketProtocol: request.headers[.secWebSocketProtocol])
        guard let offered, Self.matches(offered, any: tokens) else {
            let hasHeader = request.headers[.authorization] != nil || offered != nil
            throw HTTPError(
                .unauthorized, headers: [.wwwAuthenticate: "Bearer realm=\"trafficmon\""],
                message: hasHeader ? "the bearer token is not valid" : "this route needs Authorization: Bearer <token>")
        }
        return try await next(request, context)
    }

    /// The credentials of an `Authorization: Bearer <token>` header (the scheme name is
    /// case-insensitive, RFC 7235).
    static func bearerToken(_ header: String?) -> [UInt8]? {
        guard let header else { return nil }
        let bytes = Array(header.utf8)
        guard bytes.count > 7, String(decoding: bytes[0..<6], as: UTF8.self).lowercased() == "bearer", bytes[6] == UInt8(ascii: " ") else {
            return nil
        }
        let token = bytes[7...].drop { $0 == UInt8(ascii: " ") }
        return token.isEmpty ? nil : Array(token)
    }

    /// The token a request offers: its `Authorization: Bearer` credentials, or on a
    /// WebSocket upgrade to the stream (the one place), a `Sec-WebSocket-Protocol` entry.
    /// Shared by this middleware and the channel handler that guards upgrades.
    static func offeredToken(path: String, authorization: String?, upgrade: String?, webSocketProtocol: String?) -> [UInt8]? {
        if let token = bearerToken(authorization) { return token }
        let isStreamUpgrade = path == StreamRoute.path && upgrade?.lowercased().split(separator: ",").contains(where: {
            $0.trimmingCharacters(in: .whitespaces) == "websocket"
        }) == true
        return isStreamUpgrade ? subprotocolToken(webSocketProtocol) : nil
    }

    /// The token in a `Sec-WebSocket-Protocol` list entry `bearer.<base64url(token)>`.
    static func subprotocolToken(_ header: String?) -> [UInt8]? {
        guard let header else { return nil }
        for entry in header.split(separator: ",") {
            let value = entry.trimmingCharacters(in: .whitespaces)
            guard value.hasPrefix("bearer."), value.count <= 4096 else { continue }
            var base64 = String(value.dropFirst("bearer.".count))
                .replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
            base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
            if let data = Data(base64Encoded: base64), !data.isEmpty { return [UInt8](data) }
        }
        return nil
    }

    /// Constant-time membership: every token is compared in full.
    static func matches(_ offered: [UInt8], any tokens: [[UInt8]]) -> Bool {
        var found: UInt8 = 0
        for token in tokens {
            var difference: UInt8 = offered.count == token.count ? 0 : 1
            let length = max(offered.count, token.count)
            for i in 0..<length {
                let a = i < offered.count ? offered[i] : 0
                let b = i < token.count ? token[i] : 0
                difference |= a ^ b
            }
            found |= difference == 0 ? 1 : 0
        }
        return found == 1
    }

    /// Reads tokens from a file: one per line; blank lines and `#` comments are skipped.
    public static func loadTokens(_ path: String) throws(TokenFileError) -> [String] {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw TokenFileError(path: path, reason: (error as NSError).localizedDescription)
        }
        let tokens = text.split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        guard !tokens.isEmpty else { throw TokenFileError(path: path, reason: "it holds no token (one per line)") }
        if let bad = tokens.first(where: { $0.contains(where: { $0.isWhitespace }) }) {
            throw TokenFileError(path: path, reason: "a token contains white space: '\(bad.prefix(6))...'")
        }
        return tokens
    }
}

public struct TokenFileError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let reason: String
    public var description: String { "cannot use --auth-token-file \(path): \(reason)" }
}
