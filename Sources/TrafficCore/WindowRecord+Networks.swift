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
        // Sorted by keys of plain integers (a file of 10,000 networks lists thousands per
        // side per window): the names are compared only where the figures tie.
        var order = named.indices.map { i in
            let t = named[i].total
            return (bytes: t.bytes, packets: t.packets, index: i)
        }
        order.sort { a, b in
            if a.bytes != b.bytes { return a.bytes > b.bytes }
            if a.packets != b.packets { return a.packets > b.packets }
            return named[a.index][keyPath: name] < named[b.index][keyPath: name]
        }
        named = order.map { named[$0.index] }
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
