/// Everything one shard counts for one window: scalar counters and the hash tables. A
/// shard fills one set per window in flight and hands it over whole when the window
/// closes; the sets of every shard are merged (`merge(_:)`) into the window's record on
/// the consumer's thread, while the shards fill fresh sets.
///
/// Ownership moves with the object: only one thread touches a set at a time (its shard's
/// thread while it counts, the consumer's after the window closed), which is why it is
/// `@unchecked Sendable`.
public final class WindowTables: @unchecked Sendable {
    /// The input (its index in the coordinator's list) whose shard filled this set.
    var input = 0
    var nonIP = Counts()
    var malformed = Counts()
    var malformedByReason = [UInt64](repeating: 0, count: MalformedReason.allCases.count)
    var late: UInt64 = 0
    var received: UInt64 = 0
    /// Captured frames longer on the wire than the interface's MTU and link header.
    var oversized: UInt64 = 0
    /// Some counts were scaled up from samples (a flow exporter's sampling rate above 1).
    var sampled = false
    /// (client, direction, service) -> counters; `aux` holds the client's dense index
    /// (`PartyIndex.other` for the clients folded into `other`).
    var clientFlows: CounterTable<PartyKey>
    /// (server, direction, service) -> counters, the same way.
    var serverFlows: CounterTable<PartyKey>
    /// Client -> dense index (in `aux`), assigned at admission.
    var clients: CounterTable<PartyKey>
    /// Server -> dense index (in `aux`), assigned at admission.
    var servers: CounterTable<PartyKey>
    /// Distinct clients and servers counted in `other` past `maxClients`.
    var otherClients = DistinctParties()
    var otherServers = DistinctParties()
    /// Parties (dense indices) one shard admitted and another folded into `other`: merged,
    /// their whole traffic counts in `other`, where the distinct count already has them.
    var demotedClients = Set<UInt64>()
    var demotedServers = Set<UInt64>()
    /// Some shard folded more parties than `DistinctParties` can name: a listed party's
    /// figures may miss a part another shard folded (its exact totals are unknown).
    var foldedUnnamed = false
    /// TCP control segments (SYN, SYN-ACK, RST, FIN) per (client, kind, service): the
    /// packets in `packets`.
    var controls = CounterTable<PartyKey>(minimumCapacity: 64)
    /// TCP kinds, size buckets and DNS figures (`ProtocolTallies`).
    var protocols = [UInt64](repeating: 0, count: ProtocolTallies.count)

    init(clientFlowCapacity: Int, serverFlowCapacity: Int, clientCapacity: Int, serverCapacity: Int) {
        clientFlows = CounterTable(minimumCapacity: clientFlowCapacity)
        serverFlows = CounterTable(minimumCapacity: serverFlowCapacity)
        clients = CounterTable(minimumCapacity: clientCapacity)
        servers = CounterTable(minimumCapacity: serverCapacity)
    }

    deinit {
        controls.deallocate()
        clientFlows.deallocate()
        serverFlows.deallocate()
        clients.deallocate()
        servers.deallocate()
        otherClients.deallocate()
        otherServers.deallocate()
    }

    func reset() {
        input = 0
        nonIP = Counts()
        malformed = Counts()
        for i in malformedByReason.indices { malformedByReason[i] = 0 }
        late = 0
        received = 0
        oversized = 0
        sampled = false
        otherClients.removeAll()
        otherServers.removeAll()
        demotedClients.removeAll()
        demotedServers.removeAll()
        foldedUnnamed = false
        clientFlows.removeAll()
        serverFlows.removeAll()
        clients.removeAll()
        servers.removeAll()
        controls.removeAll()
        for i in protocols.indices { protocols[i] = 0 }
    }

    /// A deep copy (a look at a window still being counted).
    func copy() -> WindowTables {
        let c = WindowTables(clientFlowCapacity: 16, serverFlowCapacity: 16, clientCapacity: 16, serverCapacity: 16)
        c.input = input
        c.nonIP = nonIP
        c.malformed = malformed
        c.malformedByReason = malformedByReason
        c.late = late
        c.received = received
        c.oversized = oversized
        c.sampled = sampled
        c.clientFlows.deallocate()
        c.serverFlows.deallocate()
        c.clients.deallocate()
        c.servers.deallocate()
        c.otherClients.deallocate()
        c.otherServers.deallocate()
        c.clientFlows = clientFlows.copy()
        c.serverFlows = serverFlows.copy()
        c.clients = clients.copy()
        c.servers = servers.copy()
        c.otherClients = otherClients.copy()
        c.otherServers = otherServers.copy()
        c.demotedClients = demotedClients
        c.demotedServers = demotedServers
        c.foldedUnnamed = foldedUnnamed
        c.controls.deallocate()
        c.controls = controls.copy()
        c.protocols = protocols
        return c
    }

    /// Adds `other`'s counts (another shard's, for the same window) to this set: sums for
    /// the counters; its parties are admitted here up to `maxClients` per side (past it
    /// their flows count as `other`) and its flows up to `maxFlows`; the distinct counts of
    /// `other` merge exactly, or register by register where a sketch took over. A party
    /// folded into `other` by either set counts in `other` whole (never listed with a part
    /// of its traffic). The result does not depend on the order the sets are merged in, but
    /// for which parties are listed once a cap is reached.
    func merge(_ other: WindowTables, maxClients: Int, maxFlows: Int) {
        nonIP += other.nonIP
        malformed += other.malformed
        for i in malformedByReason.indices { malformedByReason[i] &+= other.malformedByReason[i] }
        late &+= other.late
        received &+= other.received
        oversized &+= other.oversized
        sampled = sampled || other.sampled
        let foldsHere = (otherClients.count > 0, otherServers.count > 0)
        otherClients.merge(other.otherClients)
        otherServers.merge(other.otherServers)
        demotedClients.formUnion(other.demotedClients)
        demotedServers.formUnion(other.demotedServers)
        foldedUnnamed = foldedUnnamed || other.foldedUnnamed
        // Parties admitted on one side of the merge and folded on the other.
        if other.otherClients.count > 0 || foldsHere.0 { Self.demote(clients, folded: otherClients, into: &demotedClients, unnamed: &foldedUnnamed) }
        if other.otherServers.count > 0 || foldsHere.1 { Self.demote(servers, folded: otherServers, into: &demotedServers, unnamed: &foldedUnnamed) }
        for i in protocols.indices { protocols[i] &+= other.protocols[i] }
        other.controls.forEach { entry in
            var key = entry.key
            if controls.count >= maxFlows && !controls.contains(key) { key = key.withOtherService }
            controls.add(key, packets: entry.packets, bytes: 0)
        }
        Self.mergeSide(other.clientFlows, into: &clientFlows, parties: &clients, folded: &otherClients, maxClients: maxClients, maxFlows: maxFlows)
        Self.mergeSide(other.serverFlows, into: &serverFlows, parties: &servers, folded: &otherServers, maxClients: maxClients, maxFlows: maxFlows)
    }

    private static func mergeSide(
        _ source: CounterTable<PartyKey>, into flows: inout CounterTable<PartyKey>, parties: inout CounterTable<PartyKey>,
        folded: inout DistinctParties, maxClients: Int, maxFlows: Int
    ) {
        source.forEach { entry in
            let key = entry.key
            let hash = key.hash
            let slot = flows.addOrFindSlot(key, hash: hash, packets: entry.packets, bytes: entry.bytes)
            guard slot < 0 else { return }
            if !key.isOther && !parties.contains(key.party) && folded.contains(key.party) == true {
                // Folded on this side already: the other side's part goes there too.
                let stored = flows.count >= maxFlows ? key.withOtherParty.withOtherService : key.withOtherParty
                flows.add(stored, packets: entry.packets, bytes: entry.bytes, aux: PartyIndex.other)
                return
            }
            let (stored, index, isFolded) = admit(key, parties: &parties, flowCount: flows.count, maxClients: maxClients, maxFlows: maxFlows)
            if isFolded { folded.insert(key.party) }
            if stored == key {
                flows.insert(key, hash: hash, at: slot, packets: entry.packets, bytes: entry.bytes, aux: index)
            } else {
                flows.add(stored, packets: entry.packets, bytes: entry.bytes, aux: index)
            }
        }
    }

    /// Marks the admitted `parties` that `folded` holds (when it can name them; when it
    /// cannot, says so in `unnamed`).
    private static func demote(
        _ parties: CounterTable<PartyKey>, folded: DistinctParties, into demoted: inout Set<UInt64>, unnamed: inout Bool
    ) {
        guard !folded.saturated else {
            unnamed = true
            return
        }
        parties.forEach { entry in
            if folded.contains(entry.key) == true { demoted.insert(entry.aux) }
        }
    }

    /// Where a (party, direction, service) that is new on its side is stored: its party's
    /// dense index (the party admitted when new and fewer than `maxClients` are tracked),
    /// or `other` (and the key with its party folded) past that; past `maxFlows` flows its
    /// service folds into `other`. `folded` says the party went to `other` here.
    @inline(__always)
    static func admit(
        _ key: PartyKey, parties: inout CounterTable<PartyKey>, flowCount: Int, maxClients: Int, maxFlows: Int
    ) -> (stored: PartyKey, index: UInt64, folded: Bool) {
        var stored = key
        var index = PartyIndex.other
        var folded = false
        if !key.isOther {
            let party = key.party
            let hash = party.hash
            let slot = parties.slot(of: party, hash: hash)
            if slot >= 0 {
                index = parties.storage[slot].aux
            } else if parties.count < maxClients {
                index = UInt64(parties.count)
                parties.insert(party, hash: hash, at: slot, packets: 0, bytes: 0, aux: index)
            } else {
                folded = true
                stored = stored.withOtherParty
            }
        }
        if flowCount >= maxFlows { stored = stored.withOtherService }
        return (stored, index, folded)
    }
}

/// A party's dense index in a window (the order of admission), stored in flow entries.
enum PartyIndex {
    /// The index of `other`: a party past `maxClients`, or a server not known.
    static let other: UInt64 = .max
}

/// How many distinct parties went to `other` past `maxClients`: counted exactly up to
/// `exactLimit`, then estimated by a HyperLogLog sketch.
struct DistinctParties {
    static let exactLimit = 4096
    var sketch = DistinctCounter()
    var exact = CounterTable<PartyKey>(minimumCapacity: 64)
    var saturated = false

    mutating func insert(_ key: PartyKey) {
        sketch.insert(hash: UInt64(bitPattern: Int64(key.hash)))
        guard !saturated else { return }
        if exact.count < Self.exactLimit {
            exact.add(key, packets: 0, bytes: 0)
        } else if !exact.contains(key) {
            saturated = true
        }
    }

    var count: UInt64 {
        saturated ? max(sketch.estimate, UInt64(Self.exactLimit)) : UInt64(exact.count)
    }

    mutating func removeAll() {
        sketch.removeAll()
        exact.removeAll()
        saturated = false
    }

    /// Whether `key` went to `other`; `nil` once the sketch took over (it cannot tell).
    func contains(_ key: PartyKey) -> Bool? {
        saturated ? nil : exact.contains(key)
    }

    /// Adds another count of the same window's parties: the union of the exact sets while
    /// it stays exact, the register-wise maximum of the sketches.
    mutating func merge(_ other: DistinctParties) {
        sketch.merge(other.sketch)
        if other.saturated { saturated = true }
        guard !saturated else { return }
        other.exact.forEach { entry in
            guard !saturated else { return }
            if exact.count < Self.exactLimit {
                exact.add(entry.key, packets: 0, bytes: 0)
            } else if !exact.contains(entry.key) {
                saturated = true
            }
        }
    }

    func copy() -> DistinctParties {
        var c = DistinctParties()
        c.exact.deallocate()
        c.sketch = sketch
        c.exact = exact.copy()
        c.saturated = saturated
        return c
    }

    func deallocate() { exact.deallocate() }
}

/// A few spare table sets, so steady-state operation allocates no tables.
final class WindowTablesPool: Sendable {
    private let spares = LockedValue<[WindowTables]>([])
    /// Sets kept for reuse: a shard's next window, the windows its consumer still builds
    /// records of (two wait at most), and one being handed over.
    static let spareCount = 4
    let flowCapacity: Int
    let partyCapacity: Int

    init(flowCapacity: Int, partyCapacity: Int) {
        self.flowCapacity = flowCapacity
        self.partyCapacity = partyCapacity
    }

    /// The capacities a set's tables have grown to.
    struct Capacities {
        var clientFlows = 0, serverFlows = 0, clients = 0, servers = 0

        init() {}

        init(_ tables: WindowTables) {
            clientFlows = tables.clientFlows.capacity
            serverFlows = tables.serverFlows.capacity
            clients = tables.clients.capacity
            servers = tables.servers.capacity
        }
    }

    /// A set for the next window: a spare, or a new set whose tables have the capacities of
    /// `sizedLike` (the last window's), so that it does not grow through every doubling
    /// again (each a rehash and a fresh allocation, on the counting thread).
    func take(sizedLike previous: Capacities = Capacities()) -> WindowTables {
        if let spare = spares.withLock({ $0.popLast() }) { return spare }
        let small = min(partyCapacity, 256)
        return WindowTables(
            clientFlowCapacity: max(flowCapacity, previous.clientFlows / 2),
            serverFlowCapacity: max(small, previous.serverFlows / 2),
            clientCapacity: max(partyCapacity, previous.clients / 2),
            serverCapacity: max(small, previous.servers / 2))
    }

    func give(_ tables: WindowTables) {
        tables.reset()
        spares.withLock { list in
            if list.count < Self.spareCount { list.append(tables) }
        }
    }
}

/// What a window's coordinator knows of a window that no shard counts: its span, whether
/// it ran its whole length, and what the inputs lost and delivered while it was open.
public struct WindowFacts: Sendable {
    /// Window start and end (exclusive), nanoseconds since the Unix epoch.
    public var start: Int64
    public var end: Int64
    /// The window did not run its whole length.
    public var partial: Bool
    /// Frames the kernel and the interfaces dropped while it was open, over every input.
    public var kernelDropped: UInt64 = 0
    public var interfaceDropped: UInt64 = 0
    /// Per live input (`WindowShard.input` indexes it): its name and drops. Empty for files.
    public var inputs: [InputFacts] = []
    /// The name of every source, by input index (`WindowShard.input`): the interfaces of a
    /// live capture, then the flow inputs, then `inject`; `file` for a capture file.
    public var sources: [String] = []

    public init(start: Int64, end: Int64, partial: Bool) {
        self.start = start
        self.end = end
        self.partial = partial
    }
}

/// One live input's name and drops in a window.
public struct InputFacts: Sendable, Hashable {
    public var name: String
    public var kernelDropped: UInt64
    public var interfaceDropped: UInt64

    public init(name: String, kernelDropped: UInt64 = 0, interfaceDropped: UInt64 = 0) {
        self.name = name
        self.kernelDropped = kernelDropped
        self.interfaceDropped = interfaceDropped
    }
}

/// A window that has closed: its facts and every shard's tables for it, ready to become
/// a `WindowRecord` (the shards' tables are merged then, on the consumer's thread).
///
/// ```swift
/// aggregator.onClose = { closed in
///     let record = closed.record()     // on any thread
///     closed.recycle()                 // give the tables back (optional, saves allocations)
/// }
/// ```
public struct ClosedWindow: @unchecked Sendable {
    public let facts: WindowFacts
    let parts: WindowParts
    /// The `--top` cut (`nil`: list everything).
    public let top: Int?
    /// Marks the listed parties `local`.
    let localNetworks: LocalNetworks
    /// Name networks, ASes and countries in the record (`--networks`, `--asn-db`, `--country-db`);
    /// the networks may be given after the window closed (`report` reads the file meanwhile).
    public var networks: NamedNetworks?
    let origins: (any OriginLookup)?

    public init(facts: WindowFacts, tables: [(WindowTables, WindowShard?)], configuration: WindowAggregator.Configuration) {
        self.facts = facts
        self.parts = WindowParts(tables: tables, maxClients: configuration.maxClients, maxFlows: configuration.maxFlows)
        self.top = configuration.top
        self.localNetworks = configuration.localNetworks
        self.networks = configuration.networks
        self.origins = configuration.origins
    }

    /// Window start, nanoseconds since the Unix epoch.
    public var start: Int64 { facts.start }
    public var end: Int64 { facts.end }
    /// Whether the window did not run its whole length.
    public var partial: Bool { facts.partial }

    /// Builds the record (sorting parties, folding past `top` into `other`).
    public func record() -> WindowRecord {
        build().record
    }

    /// Builds the record, and the window's exact totals of the `tracked` parties, listed
    /// or not (zero for one that sent nothing; `nil` for one folded into `other` past
    /// `--max-clients`, whose own figure is not known).
    ///
    /// ```swift
    /// let built = closed.build(tracking: TrackedParties(clients: [a], servers: []))
    /// built.clientTotals[0]?.out.bytes
    /// ```
    public func build(tracking tracked: TrackedParties = TrackedParties()) -> BuiltWindow {
        let tables = parts.merged()
        var built = WindowRecordBuilder(
            tables: tables, facts: facts, received: parts.receivedPerInput, top: top, localNetworks: localNetworks,
            networks: networks, origins: origins
        ).build(tracking: tracked)
        built.record.sampled = tables.sampled
        built.record.sources = parts.sourceCounts(names: facts.sources, window: (built.record.in, built.record.out))
        return built
    }

    /// Returns the tables to their shards' pools. The value must not be used afterwards.
    public func recycle() {
        parts.recycle()
    }
}

/// The shards' tables of one closed window, merged into the first once, when the record
/// is first built.
final class WindowParts: @unchecked Sendable {
    /// Each set with the shard whose pool takes it back (`nil`: none).
    private var tables: [(WindowTables, WindowShard?)]
    private let maxClients: Int
    private let maxFlows: Int
    private var isMerged = false
    /// Frames received per input (before the merge adds them up).
    let receivedPerInput: [Int: UInt64]

    init(tables: [(WindowTables, WindowShard?)], maxClients: Int, maxFlows: Int) {
        self.tables = tables
        self.maxClients = maxClients
        self.maxFlows = maxFlows
        var received: [Int: UInt64] = [:]
        for (t, _) in tables { received[t.input, default: 0] &+= t.received }
        receivedPerInput = received
    }

    /// IP traffic per input by direction, taken before the merge when more than one input
    /// counted into the window (with one, the window's own totals are that input's).
    private var ipPerInput: [Int: (in: Counts, out: Counts)]?

    func merged() -> WindowTables {
        if !isMerged && Set(tables.map { $0.0.input }).count > 1 {
            var perInput: [Int: (in: Counts, out: Counts)] = [:]
            for (t, _) in tables {
                var totals = perInput[t.input] ?? (.zero, .zero)
                t.clientFlows.forEach { entry in
                    if entry.key.flowTag.direction == .inbound {
                        totals.in.add(packets: entry.packets, bytes: entry.bytes)
                    } else {
                        totals.out.add(packets: entry.packets, bytes: entry.bytes)
                    }
                }
                perInput[t.input] = totals
            }
            ipPerInput = perInput
        }
        guard let first = tables.first?.0 else {
            // No shard counted anything: an empty set of the window's own.
            let empty = WindowTables(clientFlowCapacity: 16, serverFlowCapacity: 16, clientCapacity: 16, serverCapacity: 16)
            tables = [(empty, nil)]
            isMerged = true
            return empty
        }
        if !isMerged {
            for (t, _) in tables.dropFirst() { first.merge(t, maxClients: maxClients, maxFlows: maxFlows) }
            isMerged = true
        }
        return first
    }

    func recycle() {
        for (t, shard) in tables { shard?.recycle(t) }
        tables = []
    }

    /// Each named source's IP traffic (`merged()` first): per input when several counted,
    /// else the window's totals for the one that did (or the first name, when none did).
    func sourceCounts(names: [String], window: (in: Counts, out: Counts)) -> [SourceCounts] {
        let only = tables.first?.0.input ?? 0
        let perInput = names.enumerated().map { i, name in
            if let perInput = ipPerInput {
                let totals = perInput[i] ?? (.zero, .zero)
                return SourceCounts(name: name, in: totals.in, out: totals.out)
            }
            return i == only ? SourceCounts(name: name, in: window.in, out: window.out) : SourceCounts(name: name)
        }
        // Inputs of one kind (two --netflow addresses) are one source: summed, in first-seen order.
        guard Set(names).count < names.count else { return perInput }
        var merged: [SourceCounts] = []
        for part in perInput {
            if let k = merged.firstIndex(where: { $0.name == part.name }) {
                merged[k].in += part.in
                merged[k].out += part.out
            } else {
                merged.append(part)
            }
        }
        return merged
    }
}

/// Parties whose exact totals a window's build also reports (the sticky per-party counters).
public struct TrackedParties: Sendable {
    public var clients: [IPAddress]
    public var servers: [IPAddress]

    public init(clients: [IPAddress] = [], servers: [IPAddress] = []) {
        self.clients = clients
        self.servers = servers
    }
}

/// A built window: its record, and the totals of the tracked parties in their order.
public struct BuiltWindow: Sendable {
    public var record: WindowRecord
    public var clientTotals: [PartyTotals?]
    public var serverTotals: [PartyTotals?]
    /// Every named network's traffic per side, before the record's `--top` fold (`nil`
    /// without `--networks`).
    public var networkTotals: [NetworkCounts]? = nil
}

/// One party's packets and bytes in a window, by direction.
public struct PartyTotals: Sendable, Hashable {
    public var `in`: Counts
    public var out: Counts

    public init(in: Counts = .zero, out: Counts = .zero) {
        self.in = `in`
        self.out = out
    }
}
