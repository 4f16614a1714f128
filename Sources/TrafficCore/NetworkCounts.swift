/// Which party of a packet a network figure counts: its client or its server.
public enum NetworkSide: String, Codable, Hashable, Sendable, CaseIterable {
    case client, server
}

/// One named network's traffic on one side in a window (`networks` in the record):
/// the packets and bytes of the parties of that side whose address lies in it.
///
/// ```swift
/// let office = record.networks?.first { $0.network == "office" && $0.side == .client }
/// office?.out.bytes
/// ```
public struct NetworkCounts: Codable, Hashable, Sendable {
    /// The network's name, `unknown` (no block matched) or `other` (parties past
    /// `--max-clients`, and networks folded past `--top`).
    public var network: String
    public var side: NetworkSide
    public var `in`: Counts
    public var out: Counts

    public init(network: String, side: NetworkSide, in: Counts = .zero, out: Counts = .zero) {
        self.network = network
        self.side = side
        self.in = `in`
        self.out = out
    }

    public var total: Counts { self.in + out }
}

/// One country's client traffic in a window (`countries` in the record).
public struct CountryCounts: Codable, Hashable, Sendable {
    /// ISO 3166-1 alpha-2 code, `unknown`, or `other` (clients past `--max-clients`).
    public var country: String
    public var `in`: Counts
    public var out: Counts

    public init(country: String, in: Counts = .zero, out: Counts = .zero) {
        self.country = country
        self.in = `in`
        self.out = out
    }

    public var total: Counts { self.in + out }
}

/// One autonomous system's client traffic in a window (`asns` in the record).
public struct ASNCounts: Codable, Hashable, Sendable {
    /// The AS number as decimal text (`"64500"`), `unknown`, or `other` (clients past
    /// `--max-clients`, and ASes folded past `--top`).
    public var asn: String
    /// The AS organisation (empty for `unknown` and `other`).
    public var asOrg: String
    public var `in`: Counts
    public var out: Counts

    public init(asn: String, asOrg: String = "", in: Counts = .zero, out: Counts = .zero) {
        self.asn = asn
        self.asOrg = asOrg
        self.in = `in`
        self.out = out
    }

    public var total: Counts { self.in + out }

    enum CodingKeys: String, CodingKey {
        case asn, `in`, out
        case asOrg = "as_org"
    }
}
