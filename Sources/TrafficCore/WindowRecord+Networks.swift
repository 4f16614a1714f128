/// The record's `networks`, `countries` and `asns`: their order, their `--top` cut, and
/// their conservation.
extension WindowRecord {
    /// Whether `networks` (per side), `countries` and `asns` each add up to the IP totals
    /// (`in`, `out`); true for the lists a record does not carry.
    ///
    /// ```swift
    /// #expect(record.whoIsConserved)
    /// ```
    public var whoIsConserved: Bool {
        func adds(_ parts: [(Counts, Counts)]) -> Bool {
            var inbound = Counts(), outbound = Counts()
            for (i, o) in parts {
                inbound += i
                outbound += o
            }
            return inbound == self.in && outbound == out
        }
        if let networks {
            for side in NetworkSide.allCases where !adds(networks.filter { $0.side == side }.map { ($0.in, $0.out) }) { return false }
        }
        if let countries, !adds(countries.map { ($0.in, $0.out) }) { return false }
        if let asns, !adds(asns.map { ($0.in, $0.out) }) { return false }
        return true
    }

    /// Folds `networks` (per side) and `asns` past `top` into their `other` entries.
    mutating func foldWho(top: Int) {
        if let list = networks {
            networks = NetworkSide.allCases.flatMap { side in
                Self.sortedAndFolded(
                    list.filter { $0.side == side }, top: top, name: \.network,
                    other: NetworkCounts(network: NamedNetworks.other, side: side))
            }
        }
        if let list = asns {
            asns = Self.sortedAndFolded(list, top: top, name: \.asn, other: ASNCounts(asn: ClientOrigin.other))
        }
    }

    /// Named entries by bytes, then packets, then name (descending figures); past `top`
    /// named entries, the rest is added into `other`; `unknown` and `other` come last, in
    /// that order, each only when it counted something.
    static func sortedAndFolded<Entry: WhoEntry>(_ entries: [Entry], top: Int?, name: KeyPath<Entry, String>, other: Entry) -> [Entry] {
        var named: [Entry] = []
        var unknown: Entry?
        var rest = other
        var hasRest = false
        for e in entries {
            switch e[keyPath: name] {
            case ClientOrigin.unknown: unknown = unknown.map { $0.adding(e) } ?? e
            case ClientOrigin.other:
                rest = rest.adding(e)
                hasRest = true
            default: named.append(e)
            }
        }
        named.sort { a, b in
            let x = a.total, y = b.total
            if x.bytes != y.bytes { return x.bytes > y.bytes }
            if x.packets != y.packets { return x.packets > y.packets }
            return a[keyPath: name] < b[keyPath: name]
        }
        let limit = min(named.count, max(0, top ?? Int.max))
        for e in named[limit...] {
            rest = rest.adding(e)
            hasRest = true
        }
        named.removeSubrange(limit...)
        if let unknown, unknown.total != .zero { named.append(unknown) }
        if hasRest && rest.total != .zero { named.append(rest) }
        return named
    }
}

/// What `networks`, `countries` and `asns` entries share: traffic by direction.
protocol WhoEntry {
    var `in`: Counts { get set }
    var out: Counts { get set }
    var total: Counts { get }
}

extension WhoEntry {
    /// This entry with `other`'s traffic added (its own name kept).
    func adding(_ other: some WhoEntry) -> Self {
        var e = self
        e.in += other.in
        e.out += other.out
        return e
    }
}

extension NetworkCounts: WhoEntry {}
extension CountryCounts: WhoEntry {}
extension ASNCounts: WhoEntry {}
