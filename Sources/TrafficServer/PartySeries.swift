import TrafficCore

/// The sticky per-party counters of one side (`trafficmon_client_*_total` or
/// `trafficmon_server_*_total`): which parties have a series, and their totals.
///
/// A party is admitted when it is listed in a closed window's top (`--top`), if fewer
/// than `limit` are tracked; from then on every window adds that party's exact totals,
/// listed or not (the window's build reports them); it keeps its series while it is
/// listed in some window's top within `ttl` (event time: the windows' ends), then the
/// series goes, and Prometheus sees a counter reset if it comes back. So the series
/// count stays at most `limit` per side whatever the traffic.
///
/// ```swift
/// var series = PartySeries(label: "client", ttl: 600 * 1_000_000_000, limit: 1000)
/// let built = closed.build(tracking: TrackedParties(clients: series.addresses))
/// series.add(window: built.record.end, listed: built.record.clients, totals: built.clientTotals)
/// ```
struct PartySeries: Sendable {
    struct Tracked: Sendable {
        /// The end of the last window whose top listed the party.
        var lastListed: Int64
        var totals: PartyTotals
    }

    /// The label name: `client` or `server`.
    let label: String
    let ttl: Int64
    let limit: Int
    private(set) var tracked: [IPAddress: Tracked] = [:]
    /// The tracked parties in a fixed order: the order of `totals` in `add`.
    private(set) var addresses: [IPAddress] = []

    init(label: String, ttl: Int64, limit: Int) {
        self.label = label
        self.ttl = ttl
        self.limit = max(0, limit)
    }

    var count: Int { tracked.count }

    /// Adds a closed window ending at `end`: `totals` are the window's totals of
    /// `addresses` (as they were before this call; `nil` where not known: a party folded
    /// into `other` past `--max-clients`), `listed` the window's top. Returns how many listed
    /// parties were refused a series because `limit` were tracked.
    @discardableResult
    mutating func add(window end: Int64, listed: [PartyRecord], totals: [PartyTotals?]) -> Int {
        var refused = 0
        for (address, window) in zip(addresses, totals) {
            guard let window else { continue }
            tracked[address]?.totals.in += window.in
            tracked[address]?.totals.out += window.out
        }
        for party in listed {
            if tracked[party.ip] != nil {
                tracked[party.ip]?.lastListed = end
            } else if tracked.count < limit {
                // Its first window: the record lists its exact totals.
                tracked[party.ip] = Tracked(lastListed: end, totals: PartyTotals(in: party.in, out: party.out))
            } else {
                refused += 1
            }
        }
        tracked = tracked.filter { end - $0.value.lastListed <= ttl }
        addresses = tracked.keys.sorted()
        return refused
    }

    /// Appends the two counter families (packets, bytes), every series by address and direction.
    func render(packets: String, packetsHelp: String, bytes: String, bytesHelp: String, into out: inout String) {
        guard !tracked.isEmpty else { return }
        for (name, help, pick) in [(packets, packetsHelp, { (c: Counts) in c.packets }), (bytes, bytesHelp, { (c: Counts) in c.bytes })] {
            out += "# HELP \(name) \(help)\n# TYPE \(name) counter\n"
            for address in addresses {
                guard let totals = tracked[address]?.totals else { continue }
                let party = address.description
                out += "\(name){\(label)=\"\(party)\",direction=\"in\"} \(pick(totals.in))\n"
                out += "\(name){\(label)=\"\(party)\",direction=\"out\"} \(pick(totals.out))\n"
            }
        }
    }
}
