import TrafficCore

/// How `trafficmon serve` serves: where it listens and how much it keeps.
///
/// ```swift
/// var configuration = ServerConfiguration()
/// configuration.listen = try ListenAddress(parsing: "0.0.0.0:9000")
/// ```
public struct ServerConfiguration: Sendable {
    /// Address and port to listen on (the MVP's 127.0.0.1:9000 by default).
    public var listen = ListenAddress(host: "127.0.0.1", port: 9000)
    /// Clients, servers (and services) listed one by one in records and per-window metrics.
    public var top = 50
    /// How long a party keeps its sticky counters after it was last in a window's top
    /// (nanoseconds, `--party-ttl`).
    public var partyTTL: Int64 = 600 * 1_000_000_000
    /// Parties with sticky counters, per side (`--max-party-series`).
    public var maxPartySeries = 1000
    /// Named networks with counters of their own (`--max-network-series`): the first ones
    /// of the `--networks` file; the rest count as `network="other"`.
    public var maxNetworkSeries = 100
    /// Closed windows kept in memory for `/stats/history`.
    public var historySize = 720
    /// Serve `POST /debug/inject`.
    public var enableDebugInject = false
    /// Version reported by `trafficmon_build_info`.
    public var version = "0.0.0"
    /// Time and connection limits of the HTTP server.
    public var limits = HTTPLimits()
    /// Names besides loopback ones that a server listening on loopback answers to
    /// (`--allowed-host`; see `HostCheck`).
    public var allowedHosts: [String] = []

    public init() {}
}

/// `HOST:PORT`, `[IPv6]:PORT` or `:PORT` (all interfaces).
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public init(parsing text: String) throws(ListenAddressError) {
        var host: Substring
        var portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw ListenAddressError(text: text)
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw ListenAddressError(text: text) }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { throw ListenAddressError(text: text) }  // bare IPv6 needs brackets
        }
        if host.isEmpty { host = "0.0.0.0" }
        guard portText.allSatisfy({ $0.isASCII && $0.isNumber }), let port = Int(portText), (0...65535).contains(port) else {
            throw ListenAddressError(text: text)
        }
        self.host = String(host)
        self.port = port
    }

    /// Whether only this machine can connect.
    public var isLoopback: Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

public struct ListenAddressError: Error, CustomStringConvertible, Sendable {
    public let text: String
    public var description: String { "--listen '\(text)' is not HOST:PORT (for example 127.0.0.1:9000, [::1]:9000 or :9000)" }
}
