import TrafficCore

/// Where a flow collector listens: `HOST:PORT`, `[IPv6]:PORT`, or `:PORT` (every address,
/// IPv4 and IPv6).
///
/// ```swift
/// let address = try FlowListenAddress(parsing: "[::]:2055")
/// address.host   // "::"
/// ```
public struct FlowListenAddress: Sendable, Equatable, CustomStringConvertible {
    /// A numeric address or a name; empty for every address.
    public var host: String
    public var port: UInt16

    public init(parsing text: String) throws(InputFailure) {
        let bad = InputFailure("'\(text)' is not HOST:PORT (for example 0.0.0.0:2055, [::]:6343 or :2055)")
        var host: Substring
        var portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { throw bad }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
            if host.isEmpty { throw bad }
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw bad }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { throw bad }  // a bare IPv6 address needs brackets
        }
        guard !portText.isEmpty, portText.allSatisfy({ $0.isASCII && $0.isNumber }), let port = UInt16(portText) else { throw bad }
        self.host = String(host)
        self.port = port
    }

    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}
