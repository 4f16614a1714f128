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
    var inbound = Counts()
    var outbound = Counts()
    var nonIP = Counts()
    var malformed = Counts()
    var malformedByReason = [UInt64](repeating: 0, count: MalformedReason.allCases.count)
    /// Traffic of the clients past `maxClients`, by direction.
    var otherInbound = Counts()
    var otherOutbound = Counts()
    var late: UInt64 = 0
    var received: UInt64 = 0
    var drops: (kernel: UInt64, interface: UInt64) = (0, 0)
    /// Distinct clients past `maxClients`: counted exactly up to `exactOtherLimit`, then
    /// estimated by the sketch.
    var otherClients = DistinctCounter()
    var exactOtherClients = CounterTable(minimumCapacity: 64)
    var exactOtherSaturated = false
    static let exactOtherLimit = 4096
    /// (client, direction, service) -> counters.
    var flows: CounterTable
    /// client -> dense index (in `packets`), assigned at admission.
    var clients: CounterTable
    /// (service, direction) -> counters, for the clients past `maxClients`.
    var otherServices = CounterTable(minimumCapacity: 64)

    init(flowCapacity: Int, clientCapacity: Int) {
        flows = CounterTable(minimumCapacity: flowCapacity)
        clients = CounterTable(minimumCapacity: clientCapacity)
    }

    deinit {
        flows.deallocate()
        clients.deallocate()
        otherServices.deallocate()
        exactOtherClients.deallocate()
    }

    /// Notes a client counted in `other` because `maxClients` were tracked already.
    func countOtherClient(_ key: CounterTable.Key) {
        otherClients.insert(hash: UInt64(bitPattern: Int64(CounterTable.hash(key))))
        guard !exactOtherSaturated else { return }
        if exactOtherClients.count < Self.exactOtherLimit {
            exactOtherClients.add(key, packets: 0, bytes: 0)
        } else if !exactOtherClients.contains(key) {
            exactOtherSaturated = true
        }
    }

    /// How many distinct clients went to `other` past `maxClients`.
    var otherClientCount: UInt64 {
        exactOtherSaturated ? max(otherClients.estimate, UInt64(Self.exactOtherLimit)) : UInt64(exactOtherClients.count)
    }

    func reset() {
        total = Counts()
        inbound = Counts()
        outbound = Counts()
        nonIP = Counts()
        malformed = Counts()
        for i in malformedByReason.indices { malformedByReason[i] = 0 }
        otherInbound = Counts()
        otherOutbound = Counts()
        late = 0
        received = 0
        drops = (0, 0)
        openedMidWindow = false
        otherClients.removeAll()
        exactOtherClients.removeAll()
        exactOtherSaturated = false
        flows.removeAll()
        clients.removeAll()
        otherServices.removeAll()
    }
}

/// A few spare table sets, so steady-state operation allocates no tables.
final class WindowTablesPool: Sendable {
    private let spares = LockedValue<[WindowTables]>([])
    let flowCapacity: Int
    let clientCapacity: Int

    init(flowCapacity: Int, clientCapacity: Int) {
        self.flowCapacity = flowCapacity
        self.clientCapacity = clientCapacity
    }

    /// A set for the next window: a spare, or a new set whose tables have the capacities of
    /// `sizedLike` (the set of the window that just closed), so that it does not grow through
    /// every doubling again (each a rehash and a fresh allocation, on the counting thread).
    func take(sizedLike previous: WindowTables? = nil) -> WindowTables {
        if let spare = spares.withLock({ $0.popLast() }) { return spare }
        return WindowTables(
            flowCapacity: max(flowCapacity, (previous?.flows.capacity ?? 0) / 2),
            clientCapacity: max(clientCapacity, (previous?.clients.capacity ?? 0) / 2))
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

    /// Window start, nanoseconds since the Unix epoch.
    public var start: Int64 { tables.start }
    public var end: Int64 { tables.end }

    /// Builds the record (sorting clients, folding past `top` into `other`).
    public func record() -> WindowRecord {
        WindowRecordBuilder(tables: tables, top: top).record(partial: partial)
    }

    /// Returns the tables to the aggregator's pool. The value must not be used afterwards.
    public func recycle() {
        pool.give(tables)
    }
}
