import CTrafficCoreShims

/// Adds up packets per client, server, direction and service in epoch-aligned tumbling
/// windows, and hands every closed window to `onClose`.
///
/// It is single-threaded by design: the capture thread owns it, so the packet path
/// takes no lock, and after warm-up it allocates nothing per packet (hash tables keep
/// their storage from window to window). A closed window leaves with its tables, so
/// the consumer can turn it into a `WindowRecord` on another thread.
///
/// ```swift
/// let aggregator = WindowAggregator(configuration: .init(localNetworks: local)) { closed in
///     print(closed.record().jsonString)
/// }
/// aggregator.add(decoder.decode(bytes), timestamp: nanos, wireLength: 1514)
/// aggregator.finish()
/// ```
public final class WindowAggregator {
    public struct Configuration: Sendable {
        /// Window length in nanoseconds.
        public var windowLength: Int64
        public var localNetworks: LocalNetworks
        /// Ports that are the server side whenever they appear (`--service-port`).
        public var servicePorts: ServicePorts
        /// Distinct clients (and, apart, distinct servers) tracked one by one per window;
        /// later new ones go to `other` (`other_servers`).
        public var maxClients: Int
        /// Distinct (client, direction, service) entries per window, and apart (server,
        /// direction, service) entries; past it a tracked party's new services are counted
        /// under the service `other`.
        public var maxFlows: Int
        /// List only this many clients, servers (and services) per record, folding the rest
        /// into `other`; `nil` lists everything.
        public var top: Int?
        /// Captured frames longer than this on the wire are counted as oversized (a live
        /// interface's MTU plus link header: merged GRO/LRO frames); `nil`: not checked.
        public var oversizedAbove: Int?

        public init(
            windowLength: Int64 = 5 * Timestamp.nanosPerSecond, localNetworks: LocalNetworks = LocalNetworks(),
            servicePorts: ServicePorts = ServicePorts(), maxClients: Int = 100_000, maxFlows: Int? = nil, top: Int? = nil,
            oversizedAbove: Int? = nil
        ) {
            self.windowLength = max(1, windowLength)
            self.localNetworks = localNetworks
            self.servicePorts = servicePorts
            self.maxClients = max(0, maxClients)
            self.maxFlows = maxFlows ?? max(4 * self.maxClients, 65_536)
            self.top = top
            self.oversizedAbove = oversizedAbove
        }
    }

    public let configuration: Configuration
    public let attributor: Attributor
    let windowLength: Int64
    let maxClients: Int
    let maxFlows: Int
    /// `configuration.oversizedAbove` as the packet path compares it.
    let oversizedAbove: UInt64
    let pool: WindowTablesPool

    /// Receives each closed window, on the thread that drives the aggregator.
    public var onClose: (ClosedWindow) -> Void
    /// Returns the capture's cumulative (kernel, interface) drops; read when a window closes.
    public var dropCounter: (() -> (kernel: UInt64, interface: UInt64))?

    /// The open window's tables (valid while `isOpen`).
    var tables: WindowTables {
        didSet { bindTables() }
    }
    /// The working copies of `tables`' hash tables: the packet path updates these (no
    /// reference counting), and `writeBackTables()` stores them back before anyone else
    /// reads `tables`.
    var clientFlows: CounterTable<PartyKey>
    var serverFlows: CounterTable<PartyKey>
    var clients: CounterTable<PartyKey>
    var servers: CounterTable<PartyKey>
    /// The open window's hot counters, stored inline (copied into `tables` at close).
    var hot = HotCounters()
    public private(set) var isOpen = false
    /// `windowStart`/`windowEnd` are `.max`/`.min` while no window is open, so every packet
    /// takes the slow path of the clock then.
    var windowStart = Int64.max
    var windowEnd = Int64.min
    var lastDrops: (kernel: UInt64, interface: UInt64) = (0, 0)

    /// The latest packet (or inject) time seen: the stream's event-time clock.
    public var eventTime: Int64 { latestTime }
    var latestTime: Int64 = .min
    /// The end of the last closed window: time before it belongs to closed windows.
    var closedUntil: Int64 = .min

    /// How many packets ahead `count(_:)` hashes and prefetches table slots.
    static let lookahead = 8

    public init(configuration: Configuration, onClose: @escaping (ClosedWindow) -> Void) {
        self.configuration = configuration
        self.attributor = Attributor(localNetworks: configuration.localNetworks, servicePorts: configuration.servicePorts)
        self.windowLength = configuration.windowLength
        self.maxClients = configuration.maxClients
        self.maxFlows = configuration.maxFlows
        self.oversizedAbove = configuration.oversizedAbove.map { UInt64(max(0, $0)) } ?? .max
        self.onClose = onClose
        pool = WindowTablesPool(
            flowCapacity: min(configuration.maxFlows, 4096), partyCapacity: min(configuration.maxClients, 1024))
        let first = pool.take()
        tables = first
        clientFlows = first.clientFlows
        serverFlows = first.serverFlows
        clients = first.clients
        servers = first.servers
    }

    deinit {
        writeBackTables()
    }

    private func bindTables() {
        clientFlows = tables.clientFlows
        serverFlows = tables.serverFlows
        clients = tables.clients
        servers = tables.servers
    }

    /// Makes `tables` hold the current state of the working copies (they may have grown).
    func writeBackTables() {
        tables.clientFlows = clientFlows
        tables.serverFlows = serverFlows
        tables.clients = clients
        tables.servers = servers
    }

    /// Convenience: receive each closed window as a finished record, built on this thread.
    public convenience init(configuration: Configuration, onRecord: @escaping (WindowRecord) -> Void) {
        self.init(configuration: configuration) { closed in
            onRecord(closed.record())
            closed.recycle()
        }
    }

    /// Window start (nanoseconds) of the open window, if one is open.
    public var openWindowStart: Int64? { isOpen ? windowStart : nil }

    // MARK: The packet path

    /// Counts one captured frame of `wireLength` bytes at `timestamp` (nanoseconds).
    public func add(_ packet: DecodedPacket, timestamp: Int64, wireLength: Int) {
        let p = prepare(packet, timestamp: timestamp, wireLength: wireLength)
        count(p, hashes: p.kind == .ip ? Self.hashes(p.key) : FlowHashes(client: 0, server: 0))
    }

    /// Decodes and counts one captured frame. `frame` holds the captured bytes only;
    /// `wireLength` is the length on the wire.
    public func add(frame: UnsafeRawBufferPointer, decoder: PacketDecoder, timestamp: Int64, wireLength: Int) {
        add(decoder.decode(frame), timestamp: timestamp, wireLength: wireLength)
    }

    /// Decodes and attributes one frame for a later `count(_:)`. It reads only immutable
    /// configuration, so a reading thread may call it while another thread counts.
    ///
    /// ```swift
    /// buffer[i] = aggregator.prepare(frame: bytes, decoder: decoder, timestamp: nanos, wireLength: 1514)
    /// buffer.withUnsafeMutableBufferPointer { aggregator.count($0) }
    /// ```
    @inline(__always)
    public func prepare(frame: UnsafeRawBufferPointer, decoder: PacketDecoder, timestamp: Int64, wireLength: Int) -> PreparedPacket {
        prepare(decoder.decode(frame), timestamp: timestamp, wireLength: wireLength)
    }

    /// `prepare(frame:decoder:timestamp:wireLength:)` written straight into a batch slot
    /// (the packet path of another module: no temporary copied over).
    public func prepare(
        frame: UnsafeRawBufferPointer, decoder: PacketDecoder, timestamp: Int64, wireLength: Int, into slot: UnsafeMutablePointer<PreparedPacket>
    ) {
        prepare(decoder.decode(frame), timestamp: timestamp, wireLength: wireLength, into: &slot.pointee)
    }

    @inline(__always)
    func prepare(_ packet: DecodedPacket, timestamp: Int64, wireLength: Int) -> PreparedPacket {
        var p = PreparedPacket()
        prepare(packet, timestamp: timestamp, wireLength: wireLength, into: &p)
        return p
    }

    /// Fills every field of `p` where it lies (a batch slot): the compiler may keep this out
    /// of line, and a returned value would then be copied over from a temporary written
    /// field by field (a store-forwarding stall per packet, measured).
    @inline(__always)
    func prepare(_ packet: DecodedPacket, timestamp: Int64, wireLength: Int, into p: inout PreparedPacket) {
        p.key = packet.kind == .ip ? attributor.flowKey(packet) : .empty
        p.timestamp = timestamp
        p.bytes = UInt64(truncatingIfNeeded: wireLength)
        p.kind = packet.kind
        p.reason = packet.malformedReason
        p.captured = true
        p.isDeferred = false
    }

    /// Decodes and attributes, in place, the packets of `batch` that were left as frames
    /// (`PreparedPacket.deferred`), so the batch can be counted. Like `prepare`, it reads
    /// only immutable configuration: the counting thread calls it for a reader that left
    /// it the work.
    ///
    /// ```swift
    /// aggregator.prepareDeferred(batch, decoder: decoder)
    /// aggregator.count(batch)
    /// ```
    /// Returns how many it decoded.
    @discardableResult
    public func prepareDeferred(_ batch: UnsafeMutableBufferPointer<PreparedPacket>, decoder: PacketDecoder) -> Int {
        let n = batch.count
        var decoded = 0
        for i in 0..<n {
            // The frames were read on the other core: start loading a later one's headers.
            if i &+ Self.lookahead < n, batch[i &+ Self.lookahead].isDeferred {
                trafficmon_prefetch_for_read(batch[i &+ Self.lookahead].deferredFrame.baseAddress)
            }
            guard batch[i].isDeferred else { continue }
            let frame = batch[i].deferredFrame
            prepare(decoder.decode(frame), timestamp: batch[i].timestamp, wireLength: Int(batch[i].bytes), into: &batch[i])
            decoded &+= 1
        }
        return decoded
    }

    /// Counts a batch of prepared packets (`prepare`, on this thread or another), in
    /// order. Each packet's hashes are computed `lookahead` packets ahead, with a prefetch
    /// of the table slots they point at, so the cache misses of several packets overlap.
    ///
    /// ```swift
    /// prepared.withUnsafeMutableBufferPointer { aggregator.count($0) }
    /// ```
    public func count(_ batch: UnsafeMutableBufferPointer<PreparedPacket>) {
        let n = batch.count
        // The hashes of the next `lookahead` packets, in a ring indexed by packet number.
        withUnsafeTemporaryAllocation(of: FlowHashes.self, capacity: Self.lookahead) { ring in
            for i in 0..<min(Self.lookahead, n) { ring[i] = hashAndPrefetch(batch[i]) }
            for i in 0..<n {
                let hashes = ring[i & (Self.lookahead - 1)]
                if i &+ Self.lookahead < n { ring[i & (Self.lookahead - 1)] = hashAndPrefetch(batch[i &+ Self.lookahead]) }
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

    /// Party tables up to this many slots (384 KiB) stay in the cache: no prefetch.
    static let cachedPartySlots = 8192

    /// The hashes of a flow key's two sides.
    @inline(__always)
    static func hashes(_ key: FlowKey) -> FlowHashes {
        FlowHashes(client: key.clientSide.hash, server: key.serverSide.hash)
    }

    /// Counts one already-attributed packet (the `/debug/inject` path): same windows, same
    /// party bookkeeping, but not a captured frame.
    public func add(_ attribution: Attribution, timestamp: Int64, wireLength: Int) {
        var p = PreparedPacket()
        p.key = FlowKey(attribution)
        p.timestamp = timestamp
        p.bytes = UInt64(truncatingIfNeeded: wireLength)
        p.kind = .ip
        p.captured = false
        count(p, hashes: Self.hashes(p.key))
    }

    /// Counts one packet; `hashes` are its key's (`hashes(_:)`), for an IP packet.
    @inline(__always)
    func count(_ p: PreparedPacket, hashes: FlowHashes) {
        assert(!p.isDeferred, "a deferred frame is decoded (prepareDeferred) before it is counted")
        if p.timestamp < windowStart || p.timestamp >= windowEnd { moveClock(to: p.timestamp) }
        if p.timestamp > latestTime { latestTime = p.timestamp }
        if p.captured {
            hot.received &+= 1
            if p.bytes > oversizedAbove { hot.oversized &+= 1 }
        }
        hot.total.add(bytes: p.bytes)
        switch p.kind {
        case .ip:
            // Once per side: (client, direction, service) and (server, direction, service).
            let client = p.key.clientSide
            let clientSlot = clientFlows.addOrFindSlot(client, hash: hashes.client, bytes: p.bytes)
            if clientSlot < 0 { addNewClientFlow(client, hash: hashes.client, emptySlot: clientSlot, bytes: p.bytes) }
            let server = p.key.serverSide
            let serverSlot = serverFlows.addOrFindSlot(server, hash: hashes.server, bytes: p.bytes)
            if serverSlot < 0 { addNewServerFlow(server, hash: hashes.server, emptySlot: serverSlot, bytes: p.bytes) }
        case .nonIP:
            hot.nonIP.add(bytes: p.bytes)
        case .malformed:
            hot.malformed.add(bytes: p.bytes)
            tables.malformedByReason[Int(p.reason.rawValue)] &+= 1
        }
    }

    /// `addNewFlow` on the clients' side (kept out of the packet path's inlined body: only a
    /// flow's first packet comes here).
    @inline(never)
    func addNewClientFlow(_ key: PartyKey, hash: Int, emptySlot: Int, bytes: UInt64) {
        if addNewFlow(key, hash: hash, emptySlot: emptySlot, bytes: bytes, flows: &clientFlows, parties: &clients) {
            tables.otherClients.insert(key.party)
        }
    }

    /// `addNewFlow` on the servers' side.
    @inline(never)
    func addNewServerFlow(_ key: PartyKey, hash: Int, emptySlot: Int, bytes: UInt64) {
        if addNewFlow(key, hash: hash, emptySlot: emptySlot, bytes: bytes, flows: &serverFlows, parties: &servers) {
            tables.otherServers.insert(key.party)
        }
    }

    /// The first packet of a (party, direction, service) on one side in this window;
    /// `emptySlot` is where the lookup that missed it would insert it in `flows`. Admits
    /// the party (up to `maxClients` per side; past it the party counts as `other`), and
    /// past `maxFlows` folds the service into `other`. Returns whether the party was folded
    /// into `other` (for its side's distinct count).
    @inline(__always)
    func addNewFlow(
        _ key: PartyKey, hash: Int, emptySlot: Int, bytes: UInt64,
        flows: inout CounterTable<PartyKey>, parties: inout CounterTable<PartyKey>
    ) -> Bool {
        var stored = key
        var index = PartyIndex.other
        var folded = false
        if !key.isOther {
            index = Self.admit(key.party, into: &parties, limit: maxClients)
            if index == PartyIndex.other {
                folded = true
                stored = stored.withOtherParty
            }
        }
        if flows.count >= maxFlows { stored = stored.withOtherService }
        if stored == key {
            flows.insert(key, hash: hash, at: emptySlot, bytes: bytes, aux: index)
        } else {
            flows.add(stored, bytes: bytes, aux: index)
        }
        return folded
    }

    /// A party's dense index, admitting it when new and fewer than `limit` are tracked;
    /// `PartyIndex.other` past the limit.
    @inline(__always)
    static func admit(_ party: PartyKey, into table: inout CounterTable<PartyKey>, limit: Int) -> UInt64 {
        let hash = party.hash
        let slot = table.slot(of: party, hash: hash)
        if slot >= 0 { return table.storage[slot].aux }
        guard table.count < limit else { return PartyIndex.other }
        let index = UInt64(table.count)
        table.insert(party, hash: hash, at: slot, packets: 0, bytes: 0, aux: index)
        return index
    }

    /// The slow path of the clock: opens the first window, moves to a later one, or
    /// marks a late packet (it stays in the open window).
    func moveClock(to timestamp: Int64) {
        if !isOpen {
            // A closed window never reopens: a packet for it goes late into the next one.
            if timestamp < closedUntil {
                open(containing: closedUntil, midWindow: false)
                hot.late &+= 1
            } else {
                open(containing: timestamp, midWindow: false)
            }
        } else if timestamp >= windowEnd {
            close(partial: tables.openedMidWindow)
            open(containing: timestamp, midWindow: false)
        } else {
            hot.late &+= 1
        }
    }

    // MARK: Wall-clock and end of input

    /// Closes every window that ended at or before `now` (nanoseconds). With
    /// `emitEmpty`, the following window opens right away, so a quiet period still
    /// yields one (empty) record per window, as a live capture must.
    public func advance(to now: Int64, emitEmpty: Bool) {
        if now > latestTime { latestTime = now }
        guard isOpen else {
            if emitEmpty { open(containing: now, midWindow: true) }
            return
        }
        var emitted = 0
        while isOpen && windowEnd <= now {
            let next = windowEnd
            close(partial: tables.openedMidWindow)
            emitted += 1
            guard emitEmpty else { return }
            if emitted >= 1000 || now - next >= 1000 * windowLength {
                // The clock jumped far ahead (suspend, clock step): resume at now.
                open(containing: now, midWindow: true)
                return
            }
            open(at: next, midWindow: false)
        }
    }

    /// Closes the open window, marked partial: end of file, or shutdown.
    public func finish() {
        guard isOpen else { return }
        close(partial: true)
    }

    /// The open window as a record (marked partial: it has not run its length), or `nil`.
    public func snapshot() -> WindowRecord? {
        guard isOpen else { return nil }
        let saved = tables.drops
        tables.drops = currentDrops()
        hot.store(into: tables)
        writeBackTables()
        defer { tables.drops = saved }
        return WindowRecordBuilder(tables: tables, top: configuration.top, localNetworks: configuration.localNetworks)
            .build(partial: true, tracking: TrackedParties()).record
    }

    func open(containing timestamp: Int64, midWindow: Bool) {
        open(at: Timestamp.floorDiv(timestamp, windowLength) * windowLength, midWindow: midWindow)
    }

    func open(at start: Int64, midWindow: Bool) {
        isOpen = true
        windowStart = start
        windowEnd = start + windowLength
        tables.start = start
        tables.end = windowEnd
        tables.openedMidWindow = midWindow
    }

    /// Drops since the last closed window.
    func currentDrops() -> (kernel: UInt64, interface: UInt64) {
        guard let dropCounter else { return (0, 0) }
        let now = dropCounter()
        return (now.kernel &- lastDrops.kernel, now.interface &- lastDrops.interface)
    }

    func close(partial: Bool) {
        if let dropCounter {
            let now = dropCounter()
            tables.drops = (now.kernel &- lastDrops.kernel, now.interface &- lastDrops.interface)
            lastDrops = now
        }
        hot.store(into: tables)
        writeBackTables()
        hot = HotCounters()
        closedUntil = max(closedUntil, windowEnd)
        let closed = ClosedWindow(
            tables: tables, pool: pool, top: configuration.top, partial: partial, localNetworks: configuration.localNetworks)
        tables = pool.take(sizedLike: closed.tables)
        isOpen = false
        windowStart = .max
        windowEnd = .min
        onClose(closed)
    }
}

/// A frame decoded and attributed but not yet counted (`WindowAggregator.prepare` makes it,
/// `WindowAggregator.count(_:)` hashes and counts it, on the same thread or another).
/// 64 bytes (one cache line), no references: never the packet bytes.
public struct PreparedPacket: Sendable {
    var key = FlowKey.empty
    var timestamp: Int64 = 0
    var bytes: UInt64 = 0
    var kind: DecodedPacket.Kind = .nonIP
    var reason: MalformedReason = .truncatedLink
    /// A captured frame (counted in `capture.received`), not an inject.
    var captured = true
    /// Not decoded yet: `key.clientHigh` holds the frame's address and `key.clientLow` its
    /// captured length (`WindowAggregator.prepareDeferred` decodes it before it is counted).
    var isDeferred = false

    public init() {}

    /// Stores in `slot` a frame left to be decoded and attributed later, on whichever thread
    /// counts it (`WindowAggregator.prepareDeferred`). Its bytes must stay where they are
    /// until then (a capture file's memory map, not libpcap's buffer).
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

/// The open window's scalar counters, kept inline in the aggregator.
struct HotCounters {
    var total = Counts()
    var nonIP = Counts()
    var malformed = Counts()
    var late: UInt64 = 0
    var received: UInt64 = 0
    var oversized: UInt64 = 0

    func store(into t: WindowTables) {
        t.total = total
        t.nonIP = nonIP
        t.malformed = malformed
        t.late = late
        t.received = received
        t.oversized = oversized
    }
}
