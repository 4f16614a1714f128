/// Turns a window's tables into a `WindowRecord`: once per window, never per packet.
///
/// Clients are grouped through the dense index the aggregator stored at admission,
/// sorted by total bytes (then packets, then address), and past `top` folded into
/// `other`; services are sorted the same way and folded into one `other` entry per
/// direction past `top`.
struct WindowRecordBuilder {
    /// A client's place in the order: by bytes, then packets, then address (kept beside
    /// them, so comparing touches one array).
    struct ClientOrderKey {
        var bytes: UInt64
        var packets: UInt64
        var address: IPAddress
        var index: Int32
    }

    let tables: WindowTables
    let top: Int?

    func record(partial: Bool) -> WindowRecord {
        let t = tables
        let clientCount = t.clients.count
        var addresses = [IPAddress](repeating: IPAddress(ipv4: 0), count: clientCount)
        t.clients.forEach { entry in
            addresses[Int(entry.packets)] = Self.address(entry.key)
        }

        // Pass 1: per-client totals and per-service totals. Each flow's client is looked
        // up in the clients table (its dense index rides in `packets`), with the slot a
        // few flows ahead prefetched: that table outgrows the cache with many clients.
        let flowSlots = t.flows.occupiedSlots()
        let flowCount = flowSlots.count
        let flowStorage = t.flows.storage
        var inbound = [Counts](repeating: .zero, count: clientCount)
        var outbound = [Counts](repeating: .zero, count: clientCount)
        var serviceCount = [Int32](repeating: 0, count: clientCount)
        var serviceTotals = CounterTable(minimumCapacity: 64)
        defer { serviceTotals.deallocate() }
        // Each flow's client, in the order of `flowSlots` (pass 2 walks the same order).
        var flowClients = [Int32](repeating: 0, count: flowCount)
        let lookahead = WindowAggregator.lookahead
        for k in 0..<flowCount {
            if k &+ lookahead < flowCount {
                let ahead = flowStorage[Int(flowSlots[k &+ lookahead])].key
                t.clients.prefetch(hash: CounterTable.hash(WindowAggregator.clientKey(ahead)))
            }
            let entry = flowStorage[Int(flowSlots[k])]
            let i = clientIndex(entry.key)
            flowClients[k] = Int32(truncatingIfNeeded: i)
            if (entry.key.c >> 32) & 1 == 0 {
                inbound[i].add(packets: entry.packets, bytes: entry.bytes)
            } else {
                outbound[i].add(packets: entry.packets, bytes: entry.bytes)
            }
            serviceCount[i] &+= 1
            serviceTotals.add(Self.serviceKey(entry.key), packets: entry.packets, bytes: entry.bytes)
        }
        t.otherServices.forEach { entry in
            serviceTotals.add(Self.serviceKey(entry.key), packets: entry.packets, bytes: entry.bytes)
        }

        // Order the clients and decide which are listed.
        var keys = [ClientOrderKey]()
        keys.reserveCapacity(clientCount)
        for i in 0..<clientCount {
            keys.append(ClientOrderKey(
                bytes: inbound[i].bytes &+ outbound[i].bytes, packets: inbound[i].packets &+ outbound[i].packets,
                address: addresses[i], index: Int32(truncatingIfNeeded: i)))
        }
        keys.sort { a, b in
            if a.bytes != b.bytes { return a.bytes > b.bytes }
            if a.packets != b.packets { return a.packets > b.packets }
            return a.address < b.address
        }
        let listed = min(clientCount, top ?? Int.max)
        var other = OtherCounts(in: t.otherInbound, out: t.otherOutbound, clients: t.otherClientCount)
        for key in keys[listed...] {
            let i = Int(key.index)
            other.in += inbound[i]
            other.out += outbound[i]
            other.clients &+= 1
        }

        // Pass 2: the listed clients' services, placed by a counting sort into one flat
        // array (each client's run starts at `offsets[position]`).
        var position = [Int32](repeating: -1, count: clientCount)
        var offsets = [Int](repeating: 0, count: listed + 1)
        for p in 0..<listed {
            let i = Int(keys[p].index)
            position[i] = Int32(p)
            offsets[p + 1] = offsets[p] + Int(serviceCount[i])
        }
        var flat = [ServiceCounts](
            repeating: ServiceCounts(service: .other, direction: .inbound, packets: 0, bytes: 0), count: offsets[listed])
        var next = offsets
        for k in 0..<flowCount {
            let p = position[Int(flowClients[k])]
            guard p >= 0 else { continue }
            flat[next[Int(p)]] = Self.serviceCounts(flowStorage[Int(flowSlots[k])])
            next[Int(p)] &+= 1
        }
        var clients = [ClientRecord]()
        clients.reserveCapacity(listed)
        for p in 0..<listed {
            let i = Int(keys[p].index)
            clients.append(ClientRecord(
                ip: keys[p].address, in: inbound[i], out: outbound[i],
                services: Self.sortedAndFolded(Array(flat[offsets[p]..<offsets[p + 1]]), top: top)))
        }

        var windowServices = [ServiceCounts]()
        windowServices.reserveCapacity(serviceTotals.count)
        serviceTotals.forEach { windowServices.append(Self.serviceCounts($0)) }

        var reasons = [String: UInt64]()
        for reason in MalformedReason.allCases where t.malformedByReason[Int(reason.rawValue)] > 0 {
            reasons[reason.label] = t.malformedByReason[Int(reason.rawValue)]
        }

        return WindowRecord(
            start: t.start, end: t.end, partial: partial,
            packets: t.total.packets, bytes: t.total.bytes, in: t.inbound, out: t.outbound,
            clients: clients, other: other, nonIP: t.nonIP,
            malformed: MalformedCounts(packets: t.malformed.packets, bytes: t.malformed.bytes, reasons: reasons),
            latePackets: t.late,
            capture: CaptureCounts(received: t.received, kernelDropped: t.drops.kernel, interfaceDropped: t.drops.interface),
            services: Self.sortedAndFolded(windowServices, top: top))
    }

    @inline(__always)
    private func clientIndex(_ flowKey: CounterTable.Key) -> Int {
        let key = WindowAggregator.clientKey(flowKey)
        return Int(tables.clients.entry(key)?.packets ?? 0)
    }

    private static func address(_ key: CounterTable.Key) -> IPAddress {
        key.c & WindowAggregator.ipv6Marker != 0
            ? IPAddress(ipv6High: key.a, low: key.b)
            : IPAddress(ipv4: UInt32(truncatingIfNeeded: key.b))
    }

    /// A (service, direction) key from a flow or service key.
    private static func serviceKey(_ key: CounterTable.Key) -> CounterTable.Key {
        CounterTable.Key(a: 0, b: 0, c: key.c & (WindowAggregator.entryMarker | 1 << 32 | 0x01FF_FFFF))
    }

    private static func serviceCounts(_ entry: CounterTable.Entry) -> ServiceCounts {
        ServiceCounts(
            service: Service(rawValue: UInt32(truncatingIfNeeded: entry.key.c) & 0x01FF_FFFF),
            direction: (entry.key.c >> 32) & 1 == 0 ? .inbound : .outbound,
            packets: entry.packets, bytes: entry.bytes)
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
}
