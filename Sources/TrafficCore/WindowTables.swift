/// Everything one window counts: the scalar totals and the hash tables. The
/// aggregator fills one set while a window is open and hands it over whole when the
/// window closes, so the record can be built on another thread while the next
/// window fills a fresh set.
///
/// Ownership moves with the object: only one thread touches a set at a time (the
/// aggregator's thread while open, the consumer's after `onClose`), which is why it
/// is `@unchecked Sendable`.
final class WindowTables: @unchecked Sendable {
    var start: Int64 = 0
    var end: Int64 = 0
    var openedMidWindow = false
    var total = Counts()
    var nonIP = Counts()
    var malformed = Counts()
    var malformedByReason = [UInt64](repeating: 0, count: MalformedReason.allCases.count)
    var late: UInt64 = 0
    var received: UInt64 = 0
    /// Captured frames longer on the wire than the interface's MTU and link header.
    var oversized: UInt64 = 0
    var drops: (kernel: UInt64, interface: UInt64) = (0, 0)
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

    init(clientFlowCapacity: Int, serverFlowCapacity: Int, clientCapacity: Int, serverCapacity: Int) {
        clientFlows = CounterTable(minimumCapacity: clientFlowCapacity)
        serverFlows = CounterTable(minimumCapacity: serverFlowCapacity)
        clients = CounterTable(minimumCapacity: clientCapacity)
        servers = CounterTable(minimumCapacity: serverCapacity)
    }

    deinit {
        clientFlows.deallocate()
        serverFlows.deallocate()
        clients.deallocate()
        servers.deallocate()
        otherClients.deallocate()
        otherServers.deallocate()
    }

    func reset() {
        total = Counts()
        nonIP = Counts()
        malformed = Counts()
        for i in malformedByReason.indices { malformedByReason[i] = 0 }
        late = 0
        received = 0
        oversized = 0
        drops = (0, 0)
        openedMidWindow = false
        otherClients.removeAll()
        otherServers.removeAll()
        clientFlows.removeAll()
        serverFlows.removeAll()
        clients.removeAll()
        servers.removeAll()
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

    func deallocate() { exact.deallocate() }
}

/// A few spare table sets, so steady-state operation allocates no tables.
final class WindowTablesPool: Sendable {
    private let spares = LockedValue<[WindowTables]>([])
    let flowCapacity: Int
    let partyCapacity: Int

    init(flowCapacity: Int, partyCapacity: Int) {
        self.flowCapacity = flowCapacity
        self.partyCapacity = partyCapacity
    }

    /// A set for the next window: a spare, or a new set whose tables have the capacities of
    /// `sizedLike` (the set of the window that just closed), so that it does not grow through
    /// every doubling again (each a rehash and a fresh allocation, on the counting thread).
    func take(sizedLike previous: WindowTables? = nil) -> WindowTables {
        if let spare = spares.withLock({ $0.popLast() }) { return spare }
        let small = min(partyCapacity, 256)
        return WindowTables(
            clientFlowCapacity: max(flowCapacity, (previous?.clientFlows.capacity ?? 0) / 2),
            serverFlowCapacity: max(small, (previous?.serverFlows.capacity ?? 0) / 2),
            clientCapacity: max(partyCapacity, (previous?.clients.capacity ?? 0) / 2),
            serverCapacity: max(small, (previous?.servers.capacity ?? 0) / 2))
    }

    func give(_ tables: WindowTables) {
        tables.reset()
        spares.withLock { list in
            if list.count < 2 { list.append(tables) }
        }
    }
}

/// A window that has closed, with its tables, ready to become a `WindowRecord`.
///
/// ```swift
/// aggregator.onClose = { closed in
///     let record = closed.record()     // on any thread
///     closed.recycle()                 // give the tables back (optional, saves allocations)
/// }
/// ```
public struct ClosedWindow: @unchecked Sendable {
    let tables: WindowTables
    let pool: WindowTablesPool
    /// The aggregator's `--top` cut (`nil`: list everything).
    public let top: Int?
    /// Whether the window did not run its whole length.
    public let partial: Bool
    /// Marks the listed parties `local`.
    let localNetworks: LocalNetworks

    /// Window start, nanoseconds since the Unix epoch.
    public var start: Int64 { tables.start }
    public var end: Int64 { tables.end }

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
        WindowRecordBuilder(tables: tables, top: top, localNetworks: localNetworks).build(partial: partial, tracking: tracked)
    }

    /// Returns the tables to the aggregator's pool. The value must not be used afterwards.
    public func recycle() {
        pool.give(tables)
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
