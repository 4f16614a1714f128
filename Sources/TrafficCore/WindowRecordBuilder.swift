/// Turns a window's tables into a `WindowRecord`: once per window, never per packet.
///
/// One walk of the flows table adds each (client, server, direction, service) entry to
/// its client, its server and its service, through the dense indexes the aggregator
/// stored in the entry at admission. Each side's parties are then sorted by total bytes
/// (then packets, then address) and past `top` folded into `other`; a listed party's
/// services are its entries merged by (service, direction), sorted the same way and folded
/// into one `other` entry per direction past `top`.
struct WindowRecordBuilder {
    let tables: WindowTables
    let top: Int?
    let localNetworks: LocalNetworks

    func build(partial: Bool, tracking tracked: TrackedParties) -> BuiltWindow {
        let t = tables
        let flowSlots = t.flows.occupiedSlots()
        let flows = t.flows.storage
        var clients = PartySide(table: t.clients)
        var servers = PartySide(table: t.servers)
        var windowIn = Counts(), windowOut = Counts()
        var serviceTotals = CounterTable<PartyKey>(minimumCapacity: 64)
        defer { serviceTotals.deallocate() }
        for slot in flowSlots {
            let entry = flows[Int(slot)]
            let counts = Counts(packets: entry.packets, bytes: entry.bytes)
            let outbound = entry.key.tag.direction == .outbound
            if outbound { windowOut += counts } else { windowIn += counts }
            clients.add(index: PartyIndex.client(entry.aux), outbound: outbound, counts)
            servers.add(index: PartyIndex.server(entry.aux), outbound: outbound, counts)
            serviceTotals.add(entry.key.tag.serviceKey, packets: entry.packets, bytes: entry.bytes)
        }
        let (listedClients, other) = clients.fold(
            top: top, otherParties: t.otherClients.count, localNetworks: localNetworks, flowSlots: flowSlots, flows: flows
        ) { PartyIndex.client($0) }
        let (listedServers, otherServers) = servers.fold(
            top: top, otherParties: t.otherServers.count, localNetworks: localNetworks, flowSlots: flowSlots, flows: flows
        ) { PartyIndex.server($0) }

        var windowServices = [ServiceCounts]()
        windowServices.reserveCapacity(serviceTotals.count)
        serviceTotals.forEach { entry in
            let (service, direction) = entry.key.serviceAndDirection
            windowServices.append(ServiceCounts(service: service, direction: direction, packets: entry.packets, bytes: entry.bytes))
        }

        var reasons = [String: UInt64]()
        for reason in MalformedReason.allCases where t.malformedByReason[Int(reason.rawValue)] > 0 {
            reasons[reason.label] = t.malformedByReason[Int(reason.rawValue)]
        }

        let record = WindowRecord(
            start: t.start, end: t.end, partial: partial,
            packets: t.total.packets, bytes: t.total.bytes, in: windowIn, out: windowOut,
            clients: listedClients, other: other, servers: listedServers, otherServers: otherServers,
            nonIP: t.nonIP,
            malformed: MalformedCounts(packets: t.malformed.packets, bytes: t.malformed.bytes, reasons: reasons),
            latePackets: t.late,
            capture: CaptureCounts(
                received: t.received, kernelDropped: t.drops.kernel, interfaceDropped: t.drops.interface, oversized: t.oversized),
            services: Self.sortedAndFolded(windowServices, top: top))
        return BuiltWindow(
            record: record,
            clientTotals: tracked.clients.map { clients.totals(of: $0, in: t.clients, foldedPastLimit: t.otherClients.count > 0) },
            serverTotals: tracked.servers.map { servers.totals(of: $0, in: t.servers, foldedPastLimit: t.otherServers.count > 0) })
    }

    /// Sorts by bytes (then packets, service, direction); past `top`, and for the
    /// `other` service itself, folds into one `other` entry per direction, listed last.
    static func sortedAndFolded(_ items: consuming [ServiceCounts], top: Int?) -> [ServiceCounts] {
        var sorted = items
        sorted.sort { a, b in
            if a.bytes != b.bytes { return a.bytes > b.bytes }
            if a.packets != b.packets { return a.packets > b.packets }
            if a.service != b.service { return a.service < b.service }
            return a.direction.rawValue < b.direction.rawValue
        }
        let limit = top ?? Int.max
        guard sorted.count > limit || sorted.contains(where: { $0.service == .other }) else { return sorted }
        var result = [ServiceCounts]()
        var folded = [Counts](repeating: .zero, count: 2)
        var hasFolded = [false, false]
        for item in sorted {
            if result.count < limit && item.service != .other {
                result.append(item)
            } else {
                folded[Int(item.direction.rawValue)].add(packets: item.packets, bytes: item.bytes)
                hasFolded[Int(item.direction.rawValue)] = true
            }
        }
        for direction in Direction.allCases where hasFolded[Int(direction.rawValue)] {
            let c = folded[Int(direction.rawValue)]
            result.append(ServiceCounts(service: .other, direction: direction, packets: c.packets, bytes: c.bytes))
        }
        return result
    }

    /// Merges entries of the same (service, direction) (a party's flows with different
    /// counterparts), in place; the order is then by service and direction.
    static func merged(_ items: inout [ServiceCounts]) {
        guard items.count > 1 else { return }
        items.sort { a, b in a.service != b.service ? a.service < b.service : a.direction.rawValue < b.direction.rawValue }
        var kept = 0
        for i in 1..<items.count {
            if items[i].service == items[kept].service && items[i].direction == items[kept].direction {
                items[kept].packets &+= items[i].packets
                items[kept].bytes &+= items[i].bytes
            } else {
                kept += 1
                items[kept] = items[i]
            }
        }
        items.removeSubrange((kept + 1)...)
    }
}

/// One side's parties (the clients, or the servers) of a window while its record is
/// built: each party's totals by direction, in the dense-index order of admission.
struct PartySide {
    /// A party's place in the order: by bytes, then packets, then address (kept beside
    /// them, so comparing touches one array).
    struct OrderKey {
        var bytes: UInt64
        var packets: UInt64
        var address: IPAddress
        var index: Int32
    }

    var addresses: [IPAddress]
    var inbound: [Counts]
    var outbound: [Counts]
    /// Flow entries per party (its services before merging).
    var flowCount: [Int32]
    /// The traffic of the parties past `maxClients`.
    var otherIn = Counts()
    var otherOut = Counts()

    init(table: CounterTable<PartyKey>) {
        let n = table.count
        var addresses = [IPAddress](repeating: IPAddress(ipv4: 0), count: n)
        table.forEach { entry in addresses[Int(entry.aux)] = entry.key.address }
        self.addresses = addresses
        inbound = [Counts](repeating: .zero, count: n)
        outbound = [Counts](repeating: .zero, count: n)
        flowCount = [Int32](repeating: 0, count: n)
    }

    @inline(__always)
    mutating func add(index: UInt32, outbound isOut: Bool, _ counts: Counts) {
        if index == PartyIndex.other {
            if isOut { otherOut += counts } else { otherIn += counts }
            return
        }
        let i = Int(index)
        if isOut { outbound[i] += counts } else { inbound[i] += counts }
        flowCount[i] &+= 1
    }

    /// The listed parties (at most `top`, with their services) and `other`: the unlisted
    /// ones plus the `otherParties` counted past `maxClients`. `partyIndex` picks this
    /// side's index out of a flow entry's `aux`.
    func fold(
        top: Int?, otherParties: UInt64, localNetworks: LocalNetworks, flowSlots: [Int32],
        flows: UnsafeMutablePointer<CounterTable<FlowKey>.Entry>, partyIndex: (UInt64) -> UInt32
    ) -> ([PartyRecord], OtherCounts) {
        let count = addresses.count
        var keys = [OrderKey]()
        keys.reserveCapacity(count)
        for i in 0..<count {
            keys.append(OrderKey(
                bytes: inbound[i].bytes &+ outbound[i].bytes, packets: inbound[i].packets &+ outbound[i].packets,
                address: addresses[i], index: Int32(truncatingIfNeeded: i)))
        }
        keys.sort { a, b in
            if a.bytes != b.bytes { return a.bytes > b.bytes }
            if a.packets != b.packets { return a.packets > b.packets }
            return a.address < b.address
        }
        let listed = min(count, top ?? Int.max)
        var other = OtherCounts(in: otherIn, out: otherOut, clients: otherParties)
        for key in keys[listed...] {
            let i = Int(key.index)
            other.in += inbound[i]
            other.out += outbound[i]
            other.clients &+= 1
        }

        // The listed parties' flows, placed by a counting sort into one flat array (each
        // party's run starts at `offsets[position]`), then merged by service per party.
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
            for slot in flowSlots {
                let entry = flows[Int(slot)]
                let index = partyIndex(entry.aux)
                guard index != PartyIndex.other else { continue }
                let p = position[Int(index)]
                guard p >= 0 else { continue }
                flat[next[Int(p)]] = ServiceCounts(
                    service: entry.key.tag.service, direction: entry.key.tag.direction, packets: entry.packets, bytes: entry.bytes)
                next[Int(p)] &+= 1
            }
        }
        var parties = [PartyRecord]()
        parties.reserveCapacity(listed)
        for p in 0..<listed {
            let i = Int(keys[p].index)
            var services = Array(flat[offsets[p]..<offsets[p + 1]])
            WindowRecordBuilder.merged(&services)
            parties.append(PartyRecord(
                ip: keys[p].address, local: localNetworks.contains(keys[p].address), in: inbound[i], out: outbound[i],
                services: WindowRecordBuilder.sortedAndFolded(services, top: top)))
        }
        return (parties, other)
    }

    /// A party's totals: zero when it sent nothing, `nil` when it may hide in `other`
    /// (some parties were folded past `maxClients`).
    func totals(of address: IPAddress, in table: CounterTable<PartyKey>, foldedPastLimit: Bool) -> PartyTotals? {
        guard let entry = table.entry(PartyKey(address)) else { return foldedPastLimit ? nil : PartyTotals() }
        let i = Int(entry.aux)
        return PartyTotals(in: inbound[i], out: outbound[i])
    }
}
