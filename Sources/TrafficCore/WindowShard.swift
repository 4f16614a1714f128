import CTrafficCoreShims

/// Counting tables with no clock: one per counting thread, owned by it, so the packet
/// path takes no lock. A shard counts each packet into the table set of the window it is
/// told (`select`), keeps the sets of the few windows in flight, and hands a window's set
/// over whole (`take`) when the window's coordinator closes it; the coordinator merges the
/// sets of every shard (`WindowTables.merge`) into one `ClosedWindow`.
///
/// After warm-up it allocates nothing per packet: table storage is kept from window to
/// window (`WindowTablesPool`). It is a class used by one thread at a time, which is why
/// it is `@unchecked Sendable`: it is created on one thread and handed to its counting
/// thread.
///
/// ```swift
/// let shard = WindowShard(configuration: configuration)
/// shard.prepareDeferred(batch, decoder: decoder)
/// shard.countPlaced(batch)                  // each packet's time names its window
/// let tables = shard.take(before: end)      // when the windows before `end` close
/// ```
public final class WindowShard: @unchecked Sendable {
    public let configuration: WindowAggregator.Configuration
    public let attributor: Attributor
    let windowLength: Int64
    let maxClients: Int
    let maxFlows: Int
    /// `configuration.oversizedAbove` as the packet path compares it.
    let oversizedAbove: UInt64
    let pool: WindowTablesPool
    /// The input this shard counts for (its index in the coordinator's list), stored in
    /// every table set it fills so a closed window can tell per-input figures apart.
    public let input: Int

    /// The window counted into now (`.min`: none) and its bounds, for the packet path's check.
    public private(set) var currentStart: Int64 = .min
    var currentEnd: Int64 = .min
    /// The current window's set. Its hash tables are worked on through the copies below
    /// (no reference counting on the packet path) and written back before anyone else
    /// reads the set (`park`).
    var current: WindowTables
    var clientFlows: CounterTable<PartyKey>
    var serverFlows: CounterTable<PartyKey>
    var clients: CounterTable<PartyKey>
    var servers: CounterTable<PartyKey>
    var controls: CounterTable<PartyKey>
    /// The current window's scalar counters, inline.
    var hot = HotCounters()
    /// The current window's protocol counters (`ProtocolTallies`), worked on through a
    /// pointer and copied in and out with the set.
    let protocols: UnsafeMutablePointer<UInt64>
    /// The sets of the other windows in flight, written back.
    var parked: [(start: Int64, tables: WindowTables)] = []
    /// The capacities the last parked set had grown to: a new set starts that large.
    var lastCapacities = WindowTablesPool.Capacities()

    /// How many packets ahead `count` hashes and prefetches table slots.
    static let lookahead = 8
    /// Party tables up to this many slots (48 KiB, the L1's size) stay in the cache: no
    /// prefetch. Larger ones do not stay in the L2 either, which the flow tables and the
    /// frames stream through, so a flow's first packet would miss on its party's lookup
    /// (README, Performance).
    static let cachedPartySlots = 1024

    /// - Parameters:
    ///   - input: the input it counts for (its index in the coordinator's list).
    ///   - oversizedAbove: this input's threshold for oversized frames (else the configuration's).
    public init(configuration: WindowAggregator.Configuration, input: Int = 0, oversizedAbove: Int? = nil) {
        self.configuration = configuration
        self.attributor = Attributor(localNetworks: configuration.localNetworks, servicePorts: configuration.servicePorts)
        self.windowLength = configuration.windowLength
        self.maxClients = configuration.maxClients
        self.maxFlows = configuration.maxFlows
        self.oversizedAbove = (oversizedAbove ?? configuration.oversizedAbove).map { UInt64(max(0, $0)) } ?? .max
        self.input = input
        pool = WindowTablesPool(flowCapacity: min(configuration.maxFlows, 4096), partyCapacity: min(configuration.maxClients, 1024))
        let first = pool.take()
        current = first
        clientFlows = first.clientFlows
        serverFlows = first.serverFlows
        clients = first.clients
        servers = first.servers
        controls = first.controls
        protocols = .allocate(capacity: ProtocolTallies.count)
        protocols.initialize(repeating: 0, count: ProtocolTallies.count)
    }

    deinit {
        writeBack()
        protocols.deallocate()
    }

    // MARK: Windows in flight

    /// Makes `start` the window counted into: the current set is parked, and `start`'s set
    /// is taken from the parked ones or from the pool.
    public func select(_ start: Int64) {
        guard start != currentStart else { return }
        park()
        if let i = parked.firstIndex(where: { $0.start == start }) {
            bind(parked.remove(at: i).tables)
        } else {
            let fresh = pool.take(sizedLike: lastCapacities)
            fresh.input = input
            bind(fresh)
        }
        currentStart = start
        currentEnd = start &+ windowLength
    }

    /// Detaches `start`'s set (its counts so far), or `nil` when this shard counted nothing
    /// for that window.
    public func take(_ start: Int64) -> WindowTables? {
        if start == currentStart { park() }
        guard let i = parked.firstIndex(where: { $0.start == start }) else { return nil }
        return parked.remove(at: i).tables
    }

    /// Detaches the sets of every window that starts before `end`, oldest first.
    public func take(before end: Int64) -> [(start: Int64, tables: WindowTables)] {
        if currentStart < end { park() }
        let taken = parked.filter { $0.start < end }.sorted { $0.start < $1.start }
        parked.removeAll { $0.start < end }
        return taken
    }

    /// A copy of `start`'s counts so far (for a look at the open window; allocates).
    public func snapshot(_ start: Int64) -> WindowTables? {
        if start == currentStart {
            writeBack()
            return current.copy()
        }
        return parked.first { $0.start == start }?.tables.copy()
    }

    /// Gives a set back to the pool this shard takes new ones from.
    public func recycle(_ tables: WindowTables) {
        pool.give(tables)
    }

    /// Stores the working copies and the hot counters into the current set and parks it.
    private func park() {
        guard currentStart != .min else { return }
        writeBack()
        lastCapacities = WindowTablesPool.Capacities(current)
        parked.append((currentStart, current))
        currentStart = .min
        currentEnd = .min
    }

    private func bind(_ tables: WindowTables) {
        current = tables
        clientFlows = tables.clientFlows
        serverFlows = tables.serverFlows
        clients = tables.clients
        servers = tables.servers
        controls = tables.controls
        hot = HotCounters(from: tables)
        tables.protocols.withUnsafeBufferPointer { protocols.update(from: $0.baseAddress!, count: ProtocolTallies.count) }
    }

    /// Makes `current` hold the working copies (they may have grown) and the hot counters.
    /// With no window selected there is nothing to write: `current` may already belong to
    /// a closed window's consumer.
    func writeBack() {
        guard currentStart != .min else { return }
        current.clientFlows = clientFlows
        current.serverFlows = serverFlows
        current.clients = clients
        current.servers = servers
        current.controls = controls
        hot.store(into: current)
        current.protocols.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: protocols, count: ProtocolTallies.count) }
    }

    // MARK: Decoding and attribution

    /// Decodes and attributes one frame into a batch slot, for a later `count`. It reads only
    /// immutable configuration, so a reading thread may call it while another thread counts.
    ///
    /// ```swift
    /// shard.prepare(frame: bytes, decoder: decoder, timestamp: nanos, wireLength: 1514, into: batch + n)
    /// ```
    public func prepare(
        frame: UnsafeRawBufferPointer, decoder: PacketDecoder, timestamp: Int64, wireLength: Int, into slot: UnsafeMutablePointer<PreparedPacket>
    ) {
        prepare(decoder.decode(frame), timestamp: timestamp, wireLength: wireLength, into: &slot.pointee)
    }

    /// Fills every field of `p` where it lies (a batch slot) rather than returning a value,
    /// which would be copied over from a temporary written field by field (a
    /// store-forwarding stall per packet, measured); always inlined, with the decoder and
    /// the attributor, so the decoded packet stays in registers.
    @inline(always)
    func prepare(_ packet: DecodedPacket, timestamp: Int64, wireLength: Int, into p: inout PreparedPacket) {
        p.key = packet.kind == .ip ? attributor.flowKey(packet) : .empty
        p.timestamp = timestamp
        p.bytes = UInt64(truncatingIfNeeded: wireLength)
        p.kind = packet.kind
        p.reason = packet.malformedReason
        p.captured = true
        p.isDeferred = false
        p.isLate = false
        p.tcpFlags = packet.tcpFlags
        p.dns = packet.dns
    }

    /// Decodes and attributes, in place, the packets of `batch` that were left as frames
    /// (`PreparedPacket.storeDeferred`), so the batch can be counted; returns how many.
    /// Like `prepare`, it reads only immutable configuration.
    ///
    /// ```swift
    /// shard.prepareDeferred(batch, decoder: decoder)
    /// shard.countPlaced(batch)
    /// ```
    @discardableResult
    public func prepareDeferred(_ batch: UnsafeMutableBufferPointer<PreparedPacket>, decoder: PacketDecoder) -> Int {
        let n = batch.count
        var decoded = 0
        for i in 0..<n {
            // The frames were read on another core: start loading a later one's headers.
            if i &+ Self.lookahead < n, batch[i &+ Self.lookahead].isDeferred {
                trafficmon_prefetch_for_read(batch[i &+ Self.lookahead].deferredFrame.baseAddress)
            }
            guard batch[i].isDeferred else { continue }
            let frame = batch[i].deferredFrame
            let late = batch[i].isLate
            prepare(decoder.decode(frame), timestamp: batch[i].timestamp, wireLength: Int(batch[i].bytes), into: &batch[i])
            batch[i].isLate = late
            decoded &+= 1
        }
        return decoded
    }

    // MARK: The packet path

    /// Counts a batch a coordinator placed: each packet's time is the start of the window
    /// it counts in (`PacketPump` as a walker stores it so), late ones marked.
    public func countPlaced(_ batch: UnsafeMutableBufferPointer<PreparedPacket>) {
        count(batch, low: currentStart, high: currentEnd) { p in self.select(p.timestamp) }
    }

    /// Counts a live capture's batch: each packet into the window its time names, unless
    /// that window has closed already (it starts before `openWindow()`, the coordinator's
    /// open window): then into the open one, late. A time more than a window ahead of the
    /// open one counts in the next (a clock that jumped).
    public func countLive(_ batch: UnsafeMutableBufferPointer<PreparedPacket>, openWindow: () -> Int64) {
        count(batch, low: currentStart, high: currentEnd) { p in self.placeLive(&p, open: openWindow()) }
    }

    /// Counts an inject (not a captured frame) at `timestamp`, placed as `countLive` places.
    public func countInject(_ attribution: Attribution, timestamp: Int64, wireLength: Int, openWindow: () -> Int64) {
        var p = PreparedPacket(injected: attribution, timestamp: timestamp, wireLength: wireLength)
        placeLive(&p, open: openWindow())
        count(p, hashes: Self.hashes(p.key))
    }

    func placeLive(_ p: inout PreparedPacket, open: Int64) {
        let own = Timestamp.floorDiv(p.timestamp, windowLength) &* windowLength
        if open == .min {
            select(own)
        } else if own < open {
            p.isLate = true
            select(open)
        } else {
            select(min(own, open &+ windowLength))
        }
    }

    /// Counts a batch in order: a packet whose time lies outside the current window's
    /// `[low, high)` goes to `outside` first, which selects its window (and may close
    /// others, or mark it late). Each packet's hashes are computed `lookahead` packets
    /// ahead, with a prefetch of the table slots they point at, so the cache misses of
    /// several packets overlap.
    @inline(__always)
    func count(
        _ batch: UnsafeMutableBufferPointer<PreparedPacket>, low: Int64, high: Int64, outside: (inout PreparedPacket) -> Void
    ) {
        let n = batch.count
        var low = low, high = high
        // The hashes of the next `lookahead` packets, in a ring indexed by packet number.
        withUnsafeTemporaryAllocation(of: FlowHashes.self, capacity: Self.lookahead) { ring in
            for i in 0..<min(Self.lookahead, n) { ring[i] = hashAndPrefetch(batch[i]) }
            for i in 0..<n {
                let hashes = ring[i & (Self.lookahead - 1)]
                if i &+ Self.lookahead < n { ring[i & (Self.lookahead - 1)] = hashAndPrefetch(batch[i &+ Self.lookahead]) }
                if batch[i].timestamp < low || batch[i].timestamp >= high {
                    outside(&batch[i])
                    if low != .min || high != .max { (low, high) = (currentStart, currentEnd) }
                }
                count(batch[i], hashes: hashes)
            }
        }
    }

    /// An IP packet's flow-key hashes (zero for other frames), computed ahead of its count.
    struct FlowHashes {
        var client: Int
        var server: Int
    }

    @inline(__always)
    func hashAndPrefetch(_ p: PreparedPacket) -> FlowHashes {
        guard p.kind == .ip else { return FlowHashes(client: 0, server: 0) }
        let hashes = Self.hashes(p.key)
        clientFlows.prefetch(hash: hashes.client)
        serverFlows.prefetch(hash: hashes.server)
        // A flow's first packet looks its party up too: where a side's parties outgrow the
        // cache (the visitors of a server, the remote servers of an uplink), start that load.
        if clients.capacity > Self.cachedPartySlots { clients.prefetch(hash: p.key.clientSide.party.hash) }
        if servers.capacity > Self.cachedPartySlots { servers.prefetch(hash: p.key.serverSide.party.hash) }
        return hashes
    }

    /// The hashes of a flow key's two sides.
    @inline(__always)
    static func hashes(_ key: FlowKey) -> FlowHashes {
        FlowHashes(client: key.clientSide.hash, server: key.serverSide.hash)
    }

    /// Counts one packet into the current window; `hashes` are its key's (`hashes(_:)`),
    /// for an IP packet. `packets` above 1 counts it as that many packets of `p.bytes /
    /// packets` bytes each (a flow record, a sampled packet scaled up); the packet path
    /// passes nothing and the multiplications fold away.
    @inline(__always)
    func count(_ p: PreparedPacket, hashes: FlowHashes, packets: UInt64 = 1) {
        assert(!p.isDeferred, "a deferred frame is decoded (prepareDeferred) before it is counted")
        assert(currentStart != .min, "a window is selected before counting")
        if p.captured {
            hot.received &+= 1
            if p.bytes > oversizedAbove { hot.oversized &+= 1 }
        }
        if p.isLate { hot.late &+= packets }
        switch p.kind {
        case .ip:
            // Once per side: (client, direction, service) and (server, direction, service).
            let client = p.key.clientSide
            let clientSlot = clientFlows.addOrFindSlot(client, hash: hashes.client, packets: packets, bytes: p.bytes)
            if clientSlot < 0 { addNewClientFlow(client, hash: hashes.client, emptySlot: clientSlot, packets: packets, bytes: p.bytes) }
            let server = p.key.serverSide
            let serverSlot = serverFlows.addOrFindSlot(server, hash: hashes.server, packets: packets, bytes: p.bytes)
            if serverSlot < 0 { addNewServerFlow(server, hash: hashes.server, emptySlot: serverSlot, packets: packets, bytes: p.bytes) }
            let direction = p.key.tag.rawValue & FlowTag.outbound == 0 ? 0 : 1
            let size = packets == 1 ? p.bytes : p.bytes / packets
            protocols[ProtocolTallies.size(ProtocolTallies.sizeBucket(size), direction)] &+= packets
            if p.tcpFlags & TCPFlags.counted != 0 {
                countTCP(TCPFlags(rawValue: p.tcpFlags), client: client, direction: direction, packets: packets)
            }
            if p.dns != 0 { countDNS(DNSFacts(rawValue: p.dns), packets: packets) }
        case .nonIP:
            hot.nonIP.add(packets: packets, bytes: p.bytes)
        case .malformed:
            hot.malformed.add(packets: packets, bytes: p.bytes)
            current.malformedByReason[Int(p.reason.rawValue)] &+= packets
        }
    }

    /// A TCP segment with SYN, RST or FIN (or cut before its flags): by kind and direction,
    /// and by client, kind and service in the control table (a client folded into `other`
    /// counts there as `other`; past `maxFlows` entries the service folds into `other`).
    @inline(never)
    func countTCP(_ flags: TCPFlags, client: PartyKey, direction: Int, packets: UInt64) {
        flags.forEachKind { kind in
            protocols[ProtocolTallies.tcp(kind, direction)] &+= packets
            guard kind != .unknown else { return }
            var key = client.control(kind)
            if !client.isOther && !clients.contains(client.party) { key = key.withOtherParty }
            if controls.count >= maxFlows && !controls.contains(key) { key = key.withOtherService }
            controls.add(key, packets: packets, bytes: 0)
        }
    }

    /// A DNS message: a query by type, a response by code, malformed or cut.
    @inline(never)
    func countDNS(_ dns: DNSFacts, packets: UInt64) {
        switch dns.kind {
        case .query(let type): protocols[ProtocolTallies.queries + type] &+= packets
        case .response(let code): protocols[ProtocolTallies.responses + code] &+= packets
        case .malformed: protocols[ProtocolTallies.dnsMalformed] &+= packets
        case .cut: protocols[ProtocolTallies.dnsCut] &+= packets
        case .none: break
        }
    }

    /// `addNewFlow` on the clients' side (kept out of the packet path's inlined body: only a
    /// flow's first packet comes here).
    @inline(never)
    func addNewClientFlow(_ key: PartyKey, hash: Int, emptySlot: Int, packets: UInt64, bytes: UInt64) {
        if addNewFlow(key, hash: hash, emptySlot: emptySlot, packets: packets, bytes: bytes, flows: &clientFlows, parties: &clients) {
            current.otherClients.insert(key.party)
        }
    }

    /// `addNewFlow` on the servers' side.
    @inline(never)
    func addNewServerFlow(_ key: PartyKey, hash: Int, emptySlot: Int, packets: UInt64, bytes: UInt64) {
        if addNewFlow(key, hash: hash, emptySlot: emptySlot, packets: packets, bytes: bytes, flows: &serverFlows, parties: &servers) {
            current.otherServers.insert(key.party)
        }
    }

    /// The first packet of a (party, direction, service) on one side in this window;
    /// `emptySlot` is where the lookup that missed it would insert it in `flows`. Admits
    /// the party (up to `maxClients` per side; past it the party counts as `other`), and
    /// past `maxFlows` folds the service into `other`. Returns whether the party was folded
    /// into `other` (for its side's distinct count).
    @inline(__always)
    func addNewFlow(
        _ key: PartyKey, hash: Int, emptySlot: Int, packets: UInt64, bytes: UInt64,
        flows: inout CounterTable<PartyKey>, parties: inout CounterTable<PartyKey>
    ) -> Bool {
        let (stored, index, folded) = WindowTables.admit(key, parties: &parties, flowCount: flows.count, maxClients: maxClients, maxFlows: maxFlows)
        if stored == key {
            flows.insert(key, hash: hash, at: emptySlot, packets: packets, bytes: bytes, aux: index)
        } else {
            flows.add(stored, packets: packets, bytes: bytes, aux: index)
        }
        return folded
    }
}

/// A shard's per-window scalar counters, kept inline while the window is counted into.
struct HotCounters {
    var nonIP = Counts()
    var malformed = Counts()
    var late: UInt64 = 0
    var received: UInt64 = 0
    var oversized: UInt64 = 0

    init() {}

    init(from t: WindowTables) {
        nonIP = t.nonIP
        malformed = t.malformed
        late = t.late
        received = t.received
        oversized = t.oversized
    }

    func store(into t: WindowTables) {
        t.nonIP = nonIP
        t.malformed = malformed
        t.late = late
        t.received = received
        t.oversized = oversized
    }
}

/// A frame decoded and attributed but not yet counted (a shard's `prepare` makes it, its
/// `count` hashes and counts it, on the same thread or another). 64 bytes (one cache
/// line), no references: never the packet bytes.
public struct PreparedPacket: Sendable {
    var key = FlowKey.empty
    var timestamp: Int64 = 0
    var bytes: UInt64 = 0
    var kind: DecodedPacket.Kind = .nonIP
    var reason: MalformedReason = .truncatedLink
    /// A captured frame (counted in `capture.received`), not an inject.
    var captured = true
    /// Not decoded yet: `key.clientHigh` holds the frame's address and `key.clientLow` its
    /// captured length (`WindowShard.prepareDeferred` decodes it before it is counted).
    var isDeferred = false
    /// Older than its window: counted in it as late (the coordinator says so).
    var isLate = false
    /// `DecodedPacket.tcpFlags` and `.dns`.
    var tcpFlags: UInt8 = 0
    var dns: UInt8 = 0

    public init() {}

    /// An attributed packet that was not captured (`/debug/inject`).
    init(injected attribution: Attribution, timestamp: Int64, wireLength: Int) {
        key = FlowKey(attribution)
        self.timestamp = timestamp
        bytes = UInt64(truncatingIfNeeded: wireLength)
        kind = .ip
        captured = false
    }

    /// Marks the packet late: older than the window it is counted in.
    public mutating func markLate() { isLate = true }

    /// Stores in `slot` a frame left to be decoded and attributed later, on whichever thread
    /// counts it (`WindowShard.prepareDeferred`). Its bytes must stay where they are until
    /// then (a capture file's memory map, not libpcap's buffer).
    public static func storeDeferred(
        frame: UnsafeRawPointer, capturedLength: Int, timestamp: Int64, wireLength: Int, into slot: UnsafeMutablePointer<PreparedPacket>
    ) {
        var p = PreparedPacket()
        p.key.clientHigh = UInt64(UInt(bitPattern: frame))
        p.key.clientLow = UInt64(capturedLength)
        p.timestamp = timestamp
        p.bytes = UInt64(truncatingIfNeeded: wireLength)
        p.isDeferred = true
        slot.pointee = p
    }

    /// The frame of a deferred packet.
    var deferredFrame: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: UInt(key.clientHigh)), count: Int(key.clientLow))
    }
}
