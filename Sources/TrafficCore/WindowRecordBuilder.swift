import HeapModule

/// Turns a window's tables into a `WindowRecord`: once per window, never per packet.
///
/// Each side (clients, servers) is built the same way from its flow table: one walk adds
/// each (party, direction, service) entry to its party, through the dense index the
/// aggregator stored in the entry at admission; the parties are sorted by total bytes
/// (then packets, then address) and past `top` folded into `other`; a listed party's
/// services are sorted the same way and folded into one `other` entry per direction past
/// `top`. Every IP packet is in both tables, so the window's totals and services come from
/// the clients' table.
struct WindowRecordBuilder {
    let tables: WindowTables
    let facts: WindowFacts
    /// Frames received per input (`WindowTables.input`).
    let received: [Int: UInt64]
    let top: Int?
    let localNetworks: LocalNetworks
    /// Names each party's network (`--networks`).
    var networks: NamedNetworks? = nil
    /// Gives each client's AS and country (`--asn-db`, `--country-db`).
    var origins: (any OriginLookup)? = nil

    func build(tracking tracked: TrackedParties) -> BuiltWindow {
        let t = tables
        var serviceTotals = CounterTable<PartyKey>(minimumCapacity: 64)
        defer { serviceTotals.deallocate() }
        var clients = PartySide(parties: t.clients, flows: t.clientFlows, demoted: t.demotedClients, serviceTotals: &serviceTotals)
        clients.tcp = Self.controlsByClient(t)
        var protocols = ProtocolCounts(tallies: t.protocols)
        protocols.synClients = clients.synClients()
        let servers = PartySide(parties: t.servers, flows: t.serverFlows, demoted: t.demotedServers)
        let (listedClients, other, clientIndices) = clients.fold(top: top, otherParties: t.otherClients.count, localNetworks: localNetworks)
        let (listedServers, otherServers, serverIndices) = servers.fold(top: top, otherParties: t.otherServers.count, localNetworks: localNetworks)
        let windowIn = clients.totalIn, windowOut = clients.totalOut
        var windowServices = [ServiceCounts]()
        windowServices.reserveCapacity(serviceTotals.count)
        serviceTotals.forEach { entry in
            windowServices.append(ServiceCounts(
                service: entry.key.flowTag.service, direction: entry.key.flowTag.direction, packets: entry.packets, bytes: entry.bytes))
        }

        var reasons = [String: UInt64]()
        for reason in MalformedReason.allCases where t.malformedByReason[Int(reason.rawValue)] > 0 {
            reasons[reason.label] = t.malformedByReason[Int(reason.rawValue)]
        }

        let interfaces = facts.inputs.enumerated().map { i, input in
            InterfaceCounts(
                name: input.name, received: received[i] ?? 0, kernelDropped: input.kernelDropped, interfaceDropped: input.interfaceDropped)
        }
        var record = WindowRecord(
            start: facts.start, end: facts.end, partial: facts.partial, in: windowIn, out: windowOut,
            clients: listedClients, other: other, servers: listedServers, otherServers: otherServers,
            nonIP: t.nonIP,
            malformed: MalformedCounts(packets: t.malformed.packets, bytes: t.malformed.bytes, reasons: reasons),
            latePackets: t.late,
            capture: CaptureCounts(
                received: t.received, kernelDropped: facts.kernelDropped, interfaceDropped: facts.interfaceDropped, oversized: t.oversized,
                interfaces: interfaces),
            services: Self.sortedAndFolded(windowServices, top: top),
            protocols: protocols)
        let networkTotals = addWho(
            to: &record, clients: (clients, clientIndices), servers: (servers, serverIndices))
        return BuiltWindow(
            record: record,
            clientTotals: tracked.clients.map { clients.totals(of: $0, foldedPastLimit: t.otherClients.count > 0, partsUnknown: t.foldedUnnamed) },
            serverTotals: tracked.servers.map { servers.totals(of: $0, foldedPastLimit: t.otherServers.count > 0, partsUnknown: t.foldedUnnamed) },
            networkTotals: networkTotals)
    }

    /// Each tracked client's TCP control segments (by dense index), from the control table;
    /// `nil` when there were none.
    static func controlsByClient(_ t: WindowTables) -> [PartyTCP]? {
        guard t.controls.count > 0 else { return nil }
        var byClient = [PartyTCP](repeating: PartyTCP(), count: t.clients.count)
        t.controls.forEach { entry in
            guard !entry.key.isOther, let kind = entry.key.controlKind,
                  let client = t.clients.entry(entry.key.party) else { return }
            let i = Int(client.aux)
            switch kind {
            case .syn:
                byClient[i].syn &+= entry.packets
                byClient[i].synServices &+= 1
            case .synack: byClient[i].synack &+= entry.packets
            case .rst: byClient[i].rst &+= entry.packets
            case .fin: byClient[i].fin &+= entry.packets
            case .unknown: break
            }
        }
        return byClient
    }

    /// Sorts by bytes (then packets, service, direction); past `top`, and for the
    /// `other` service itself, folds into one `other` entry per direction, listed last.
    static func sortedAndFolded(_ items: consuming [ServiceCounts], top: Int?) -> [ServiceCounts] {
        var list = items
        let kept = list.withUnsafeMutableBufferPointer { sortAndFold($0, top: top) }
        list.removeLast(list.count - kept)
        return list
    }

    /// `sortedAndFolded` where the items lie: they are sorted, and the folded list (never
    /// longer) written over their front; returns its length.
    static func sortAndFold(_ items: UnsafeMutableBufferPointer<ServiceCounts>, top: Int?) -> Int {
        var items = items
        items.sort { a, b in
            if a.bytes != b.bytes { return a.bytes > b.bytes }
            if a.packets != b.packets { return a.packets > b.packets }
            if a.service != b.service { return a.service < b.service }
            return a.direction.rawValue < b.direction.rawValue
        }
        let limit = top ?? Int.max
        guard items.count > limit || items.contains(where: { $0.service == .other }) else { return items.count }
        // Each item kept moves to `kept` (never past where it was read); the folded ones are
        // added up per direction and written after them: at most one entry per item folded.
        var kept = 0
        var folded = (inbound: Counts.zero, outbound: Counts.zero)
        var hasFolded = (inbound: false, outbound: false)
        for i in 0..<items.count {
            let item = items[i]
            if kept < limit && item.service != .other {
                items[kept] = item
                kept += 1
            } else if item.direction == .inbound {
                folded.inbound.add(packets: item.packets, bytes: item.bytes)
                hasFolded.inbound = true
            } else {
                folded.outbound.add(packets: item.packets, bytes: item.bytes)
                hasFolded.outbound = true
            }
        }
        if hasFolded.inbound {
            items[kept] = ServiceCounts(service: .other, direction: .inbound, packets: folded.inbound.packets, bytes: folded.inbound.bytes)
            kept += 1
        }
        if hasFolded.outbound {
            items[kept] = ServiceCounts(service: .other, direction: .outbound, packets: folded.outbound.packets, bytes: folded.outbound.bytes)
            kept += 1
        }
        return kept
    }
}

/// One side's parties (the clients, or the servers) of a window while its record is
/// built: each party's totals by direction, in the dense-index order of admission.
struct PartySide {
    /// A party's place in the order: by bytes, then packets, then address (kept beside
    /// them, so comparing touches one array). `a < b`: `a` is listed before `b`.
    struct OrderKey: Comparable {
        var bytes: UInt64
        var packets: UInt64
        var address: IPAddress
        var index: Int32

        static func < (a: OrderKey, b: OrderKey) -> Bool {
            if a.bytes != b.bytes { return a.bytes > b.bytes }
            if a.packets != b.packets { return a.packets > b.packets }
            return a.address < b.address
        }
    }

    let parties: CounterTable<PartyKey>
    let flows: CounterTable<PartyKey>
    var addresses: [IPAddress]
    var inbound: [Counts]
    var outbound: [Counts]
    /// Flow entries per party (its services).
    var flowCount: [Int32]
    /// The traffic of the parties past `maxClients` (or not known).
    var otherIn = Counts()
    var otherOut = Counts()
    /// The side's whole traffic (every IP packet of the window), by direction.
    var totalIn = Counts()
    var totalOut = Counts()
    /// Per party (dense index), its TCP control segments (clients only).
    var tcp: [PartyTCP]?
    /// Parties (dense indices) whose traffic counts in `other` (`WindowTables.demotedClients`).
    let demoted: Set<UInt64>

    /// Adds up each party's flows.
    init(parties: CounterTable<PartyKey>, flows: CounterTable<PartyKey>, demoted: Set<UInt64> = []) {
        var none = CounterTable<PartyKey>(minimumCapacity: 0)
        defer { none.deallocate() }
        self.init(parties: parties, flows: flows, demoted: demoted, serviceTotals: &none, withServices: false)
    }

    /// Adds up each party's flows, and each (service, direction) in `serviceTotals`.
    init(parties: CounterTable<PartyKey>, flows: CounterTable<PartyKey>, demoted: Set<UInt64> = [], serviceTotals: inout CounterTable<PartyKey>) {
        self.init(parties: parties, flows: flows, demoted: demoted, serviceTotals: &serviceTotals, withServices: true)
    }

    private init(
        parties: CounterTable<PartyKey>, flows: CounterTable<PartyKey>, demoted: Set<UInt64>,
        serviceTotals: inout CounterTable<PartyKey>, withServices: Bool
    ) {
        self.parties = parties
        self.flows = flows
        self.demoted = demoted
        let n = parties.count
        var addresses = [IPAddress](repeating: IPAddress(ipv4: 0), count: n)
        parties.forEach { entry in addresses[Int(entry.aux)] = entry.key.address }
        self.addresses = addresses
        var inbound = [Counts](repeating: .zero, count: n)
        var outbound = [Counts](repeating: .zero, count: n)
        var flowCount = [Int32](repeating: 0, count: n)
        var otherIn = Counts(), otherOut = Counts()
        var totalIn = Counts(), totalOut = Counts()
        flows.forEach { entry in
            let isOut = entry.key.flowTag.direction == .outbound
            if isOut { totalOut.add(packets: entry.packets, bytes: entry.bytes) } else { totalIn.add(packets: entry.packets, bytes: entry.bytes) }
            if withServices { serviceTotals.add(entry.key.serviceTotal, packets: entry.packets, bytes: entry.bytes) }
            guard entry.aux != PartyIndex.other && (demoted.isEmpty || !demoted.contains(entry.aux)) else {
                if isOut { otherOut.add(packets: entry.packets, bytes: entry.bytes) } else { otherIn.add(packets: entry.packets, bytes: entry.bytes) }
                return
            }
            let i = Int(entry.aux)
            if isOut { outbound[i].add(packets: entry.packets, bytes: entry.bytes) } else { inbound[i].add(packets: entry.packets, bytes: entry.bytes) }
            flowCount[i] &+= 1
        }
        self.inbound = inbound
        self.outbound = outbound
        self.flowCount = flowCount
        self.otherIn = otherIn
        self.otherOut = otherOut
        self.totalIn = totalIn
        self.totalOut = totalOut
    }

    /// The listed parties (at most `top`, with their services) and `other`: the unlisted
    /// ones plus the `otherParties` counted past `maxClients`; and the listed parties' dense
    /// indices, in the order listed.
    func fold(top: Int?, otherParties: UInt64, localNetworks: LocalNetworks) -> ([PartyRecord], OtherCounts, [Int32]) {
        let count = addresses.count
        var keys = [OrderKey]()
        keys.reserveCapacity(count)
        for i in 0..<count where demoted.isEmpty || !demoted.contains(UInt64(i)) {
            keys.append(OrderKey(
                bytes: inbound[i].bytes &+ outbound[i].bytes, packets: inbound[i].packets &+ outbound[i].packets,
                address: addresses[i], index: Int32(truncatingIfNeeded: i)))
        }
        Self.orderFirst(top ?? keys.count, of: &keys, count: count)
        var other = OtherCounts(in: otherIn, out: otherOut, clients: otherParties)
        let listed = TopFold.parties(count: keys.count, top: top, into: &other) { (inbound[Int(keys[$0].index)], outbound[Int(keys[$0].index)]) }

        // The listed parties' services, placed by a counting sort into one flat array (each
        // party's run starts at `offsets[position]`).
        var position = [Int32](repeating: -1, count: count)
        var offsets = [Int](repeating: 0, count: listed + 1)
        for p in 0..<listed {
            let i = Int(keys[p].index)
            position[i] = Int32(p)
            offsets[p + 1] = offsets[p] + Int(flowCount[i])
        }
        var flat = [ServiceCounts](
            repeating: ServiceCounts(service: .other, direction: .inbound, packets: 0, bytes: 0), count: offsets[listed])
        var next = offsets
        if listed > 0 {
            flows.forEach { entry in
                guard entry.aux != PartyIndex.other else { return }
                let p = position[Int(entry.aux)]
                guard p >= 0 else { return }
                flat[next[Int(p)]] = ServiceCounts(
                    service: entry.key.flowTag.service, direction: entry.key.flowTag.direction, packets: entry.packets, bytes: entry.bytes)
                next[Int(p)] &+= 1
            }
        }
        // Each run sorted and folded where it lies; the parties' lists are runs of `flat`
        // (one allocation for all of them), packed into an array of their own length when
        // `--top` folded some away.
        var ends = offsets
        flat.withUnsafeMutableBufferPointer { all in
            for p in 0..<listed {
                let run = UnsafeMutableBufferPointer(rebasing: all[offsets[p]..<offsets[p + 1]])
                ends[p] = offsets[p] + WindowRecordBuilder.sortAndFold(run, top: top)
            }
        }
        var parties = [PartyRecord]()
        parties.reserveCapacity(listed)
        var kept = 0
        for p in 0..<listed {
            let i = Int(keys[p].index)
            parties.append(PartyRecord(
                ip: keys[p].address, local: localNetworks.contains(keys[p].address), in: inbound[i], out: outbound[i],
                services: ServiceList(flat, range: offsets[p]..<ends[p]),
                tcp: tcp.flatMap { $0[i] == PartyTCP() ? nil : $0[i] }))
            kept += ends[p] - offsets[p]
        }
        if kept < flat.count { ServiceList.pack(&parties) }
        return (parties, other, keys.prefix(listed).map(\.index))
    }

    /// Puts the first `k` parties in listing order at the front of `keys` and the others
    /// after them in no particular order (they are only added up into `other`). With `k`
    /// well under the party count (`serve`'s `--top 50` of 65,000 clients) this is one pass
    /// keeping the best `k` in a heap rather than a sort of them all. `count` bounds the
    /// dense indices.
    static func orderFirst(_ k: Int, of keys: inout [OrderKey], count: Int) {
        guard k < keys.count else {
            sortAll(&keys)
            return
        }
        guard k > 0 else { return }
        var ordered = Self.smallest(k, of: keys)
        ordered.reserveCapacity(keys.count)
        var listed = [Bool](repeating: false, count: count)
        for key in ordered { listed[Int(key.index)] = true }
        for key in keys where !listed[Int(key.index)] { ordered.append(key) }
        keys = ordered
    }

    /// Sorts every key into listing order (`report` lists every party): a radix sort by
    /// bytes (stable, so parties with equal bytes keep their order), then only runs of equal
    /// bytes compared in full. Sorting 50,000 keys so takes a fifth of the time of a
    /// comparison sort of them (measured). Byte totals from 2^40 on (a terabyte per party
    /// and window) sort the keys by comparison.
    static func sortAll(_ keys: inout [OrderKey]) {
        let n = keys.count
        let byteBits = 40, indexBits = 64 - byteBits
        guard n > 1, n < 1 << indexBits, !keys.contains(where: { $0.bytes >> byteBits != 0 }) else {
            keys.sort()
            return
        }
        // Each key as one word: the complement of its bytes (most bytes first) above its
        // place in `keys`.
        let most = UInt64(1) << byteBits - 1
        var words = [UInt64](unsafeUninitializedCapacity: n) { buffer, initialized in
            for i in 0..<n { buffer[i] = (most - keys[i].bytes) << indexBits | UInt64(i) }
            initialized = n
        }
        radixSort(&words, from: indexBits)
        let indexMask = UInt64(1) << indexBits - 1
        var sorted = [OrderKey](unsafeUninitializedCapacity: n) { buffer, initialized in
            for i in 0..<n { buffer.initializeElement(at: i, to: keys[Int(words[i] & indexMask)]) }
            initialized = n
        }
        var start = 0
        while start < n {
            var end = start + 1
            while end < n && sorted[end].bytes == sorted[start].bytes { end += 1 }
            // Sorted where they lie: a slice of the array would be copied out and back.
            if end - start > 1 { sorted.withUnsafeMutableBufferPointer { $0[start..<end].sort() } }
            start = end
        }
        keys = sorted
    }

    /// Sorts `words` by their bits from `lowBit` up, stably (lower bits keep their order):
    /// one counting pass per byte, skipping a byte every word shares.
    static func radixSort(_ words: inout [UInt64], from lowBit: Int) {
        let n = words.count
        var other = [UInt64](repeating: 0, count: n)
        var counts = [Int](repeating: 0, count: 257)
        var shift = lowBit
        while shift < 64 {
            let digitShift = UInt64(shift)
            let moved = words.withUnsafeBufferPointer { from in
                other.withUnsafeMutableBufferPointer { to in
                    counts.withUnsafeMutableBufferPointer { c -> Bool in
                        for d in 0...256 { c[d] = 0 }
                        for w in from { c[Int(truncatingIfNeeded: (w >> digitShift) & 0xFF) &+ 1] &+= 1 }
                        // Every word has this byte alike: already in order by it.
                        guard !c.contains(n) else { return false }
                        for d in 1...256 { c[d] &+= c[d - 1] }
                        for w in from {
                            let d = Int(truncatingIfNeeded: (w >> digitShift) & 0xFF)
                            to[c[d]] = w
                            c[d] &+= 1
                        }
                        return true
                    }
                }
            }
            if moved { swap(&words, &other) }
            shift += 8
        }
    }

    /// The clients whose SYNs reached the most services, most first (`ProtocolCounts.synClients`).
    func synClients() -> [SYNClient] {
        guard let tcp else { return [] }
        /// `a < b`: `a` is listed before `b`.
        struct Rank: Comparable {
            var client: SYNClient
            static func < (a: Rank, b: Rank) -> Bool {
                if a.client.synServices != b.client.synServices { return a.client.synServices > b.client.synServices }
                if a.client.syn != b.client.syn { return a.client.syn > b.client.syn }
                return a.client.ip < b.client.ip
            }
        }
        let found = tcp.indices.lazy.filter { tcp[$0].synServices > 0 }.map { i in
            Rank(client: SYNClient(ip: addresses[i], synServices: tcp[i].synServices, syn: tcp[i].syn))
        }
        return Self.smallest(ProtocolCounts.synClientLimit, of: found).map(\.client)
    }

    /// The `k` smallest of `items` (all of them when fewer), in order: one pass keeping the
    /// best `k` in a heap, so a list cut to a few of many parties sorts only those.
    static func smallest<Key: Comparable>(_ k: Int, of items: some Sequence<Key>) -> [Key] {
        guard k > 0 else { return [] }
        // The best `k` so far; its maximum is the first to give way.
        var best = Heap<Key>()
        for item in items {
            if best.count < k {
                best.insert(item)
            } else if let last = best.max, item < last {
                best.replaceMax(with: item)
            }
        }
        var ordered = [Key]()
        ordered.reserveCapacity(best.count)
        while let item = best.popMin() { ordered.append(item) }
        return ordered
    }

    /// A party's totals: zero when it sent nothing, `nil` when it may hide in `other`
    /// (some parties were folded past `maxClients`), in part (`partsUnknown`) or whole.
    func totals(of address: IPAddress, foldedPastLimit: Bool, partsUnknown: Bool = false) -> PartyTotals? {
        guard let entry = parties.entry(PartyKey(address)) else { return foldedPastLimit ? nil : PartyTotals() }
        guard !partsUnknown, demoted.isEmpty || !demoted.contains(entry.aux) else { return nil }
        let i = Int(entry.aux)
        return PartyTotals(in: inbound[i], out: outbound[i])
    }
}
