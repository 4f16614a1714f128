/// A selection of a window by who took part: a named network, an AS, a country
/// (`/stats/history?network=&asn=&country=`).
///
/// ```swift
/// let office = record.filtered(WhoFilter(network: "office"))
/// office.clients.allSatisfy { $0.network == "office" }   // true
/// ```
public struct WhoFilter: Sendable, Hashable {
    /// A network name (or `unknown`): parties of either side in it.
    public var network: String?
    /// An AS number as decimal text (or `unknown`): clients in it.
    public var asn: String?
    /// A country code (or `unknown`): clients in it.
    public var country: String?

    public init(network: String? = nil, asn: String? = nil, country: String? = nil) {
        self.network = network
        self.asn = asn
        self.country = country
    }

    /// Whether nothing is selected (every record passes unchanged).
    public var isEmpty: Bool { network == nil && asn == nil && country == nil }
}

extension WindowRecord {
    /// The window as seen through `filter`: only the parties that match stay listed (the
    /// rest is added into `other` and `other_servers`, so parties and totals still add up),
    /// and `networks`, `asns` and `countries` keep only the selected entries. The totals,
    /// services and protocol figures are the whole window's.
    public func filtered(_ filter: WhoFilter) -> WindowRecord {
        guard !filter.isEmpty else { return self }
        var r = self
        func keep(_ party: PartyRecord, client: Bool) -> Bool {
            if let network = filter.network, party.network != network { return false }
            guard client else { return true }
            if let asn = filter.asn, party.asn != asn { return false }
            if let country = filter.country, party.country != country { return false }
            return true
        }
        Self.select(&r.clients, into: &r.other) { keep($0, client: true) }
        if filter.network != nil { Self.select(&r.servers, into: &r.otherServers) { keep($0, client: false) } }
        if let network = filter.network { r.networks = r.networks?.filter { $0.network == network } }
        if let asn = filter.asn { r.asns = r.asns?.filter { $0.asn == asn } }
        if let country = filter.country { r.countries = r.countries?.filter { $0.country == country } }
        return r
    }

    /// Keeps the parties `keep` accepts, in order, and adds the others into `other`.
    private static func select(_ parties: inout [PartyRecord], into other: inout OtherCounts, keep: (PartyRecord) -> Bool) {
        var kept: [PartyRecord] = []
        for p in parties {
            if keep(p) {
                kept.append(p)
            } else {
                other.in += p.in
                other.out += p.out
                other.clients &+= 1
            }
        }
        parties = kept
    }
}
