/// Named networks, ASes and countries of a window, from each party's totals once the
/// record's sides are added up: a lookup per party per window, nothing per packet. The
/// parties folded into `other` past `--max-clients` count under `other`, so every list
/// adds up to the window's IP totals exactly.
extension WindowRecordBuilder {
    /// Adds `networks` (both sides, past `top` per side folded into `other`), `countries` and
    /// `asns` (clients) to `record`, and the same facts to each listed party, for what is
    /// configured. Returns every network's traffic before the fold (for the counters).
    /// Each side comes with its listed parties' dense indices (`PartySide.fold`).
    func addWho(
        to record: inout WindowRecord, clients: (side: PartySide, listed: [Int32]), servers: (side: PartySide, listed: [Int32])
    ) -> [NetworkCounts]? {
        var totals: [NetworkCounts]?
        if let networks {
            let all = Self.networkCounts(clients.side, side: .client, networks: networks, listed: &record.clients, at: clients.listed)
                + Self.networkCounts(servers.side, side: .server, networks: networks, listed: &record.servers, at: servers.listed)
            totals = all
            record.networks = all
            if let top { record.foldWho(top: top) }
        }
        if let origins, origins.providesASN || origins.providesCountry {
            Self.addOrigins(of: clients.side, listedAt: clients.listed, lookup: origins, to: &record, top: top)
        }
        return totals
    }

    /// One side's traffic per named network (sorted), and the network of each listed party
    /// (whose dense indices are `indices`).
    static func networkCounts(
        _ side: PartySide, side label: NetworkSide, networks: NamedNetworks, listed: inout [PartyRecord], at indices: [Int32]
    ) -> [NetworkCounts] {
        let n = networks.names.count
        // Index n is `unknown`.
        var inbound = [Counts](repeating: .zero, count: n + 1)
        var outbound = [Counts](repeating: .zero, count: n + 1)
        var networkOf = [Int32](repeating: Int32(n), count: side.addresses.count)
        for i in side.addresses.indices {
            let k = networks.index(of: side.addresses[i]).map(Int.init) ?? n
            networkOf[i] = Int32(k)
            inbound[k] += side.inbound[i]
            outbound[k] += side.outbound[i]
        }
        var entries: [NetworkCounts] = []
        for k in 0...n where inbound[k] != .zero || outbound[k] != .zero {
            entries.append(NetworkCounts(
                network: k < n ? networks.names[k] : NamedNetworks.unknown, side: label, in: inbound[k], out: outbound[k]))
        }
        entries.append(NetworkCounts(network: NamedNetworks.other, side: label, in: side.otherIn, out: side.otherOut))
        for j in listed.indices {
            let k = Int(networkOf[Int(indices[j])])
            listed[j].network = k < n ? networks.names[k] : NamedNetworks.unknown
        }
        return WindowRecord.sortedAndFolded(entries, top: nil, name: \.network, other: NetworkCounts(network: NamedNetworks.other, side: label))
    }

    /// The clients' traffic per country and per AS (past `top` ASes folded into `other`),
    /// and each listed client's origin (the listed clients' dense indices are `indices`).
    static func addOrigins(of clients: PartySide, listedAt indices: [Int32], lookup: any OriginLookup, to record: inout WindowRecord, top: Int?) {
        let origins = lookup.origins(of: clients.addresses)
        guard origins.count == clients.addresses.count else { return }
        if lookup.providesCountry {
            var byCountry: [String: CountryCounts] = [:]
            for i in origins.indices {
                let label = origins[i].countryLabel
                byCountry[label, default: CountryCounts(country: label)].in += clients.inbound[i]
                byCountry[label, default: CountryCounts(country: label)].out += clients.outbound[i]
            }
            let other = CountryCounts(country: ClientOrigin.other, in: clients.otherIn, out: clients.otherOut)
            record.countries = WindowRecord.sortedAndFolded(
                Array(byCountry.values) + [other], top: nil, name: \.country, other: CountryCounts(country: ClientOrigin.other))
        }
        if lookup.providesASN {
            var byASN: [UInt32: ASNCounts] = [:]
            var unknown = ASNCounts(asn: ClientOrigin.unknown)
            for i in origins.indices {
                guard let asn = origins[i].asn else {
                    unknown.in += clients.inbound[i]
                    unknown.out += clients.outbound[i]
                    continue
                }
                byASN[asn, default: ASNCounts(asn: String(asn), asOrg: origins[i].asOrg)].in += clients.inbound[i]
                byASN[asn, default: ASNCounts(asn: String(asn), asOrg: origins[i].asOrg)].out += clients.outbound[i]
            }
            let other = ASNCounts(asn: ClientOrigin.other, in: clients.otherIn, out: clients.otherOut)
            record.asns = WindowRecord.sortedAndFolded(
                Array(byASN.values) + [unknown, other], top: top, name: \.asn, other: ASNCounts(asn: ClientOrigin.other))
        }
        for j in record.clients.indices {
            let origin = origins[Int(indices[j])]
            if lookup.providesCountry { record.clients[j].country = origin.countryLabel }
            if lookup.providesASN {
                record.clients[j].asn = origin.asnLabel
                record.clients[j].asOrg = origin.asOrg
            }
        }
    }
}
