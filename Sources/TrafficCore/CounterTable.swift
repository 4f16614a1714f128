import CTrafficCoreShims

/// What a `CounterTable` key provides: an empty value (all zero bytes, so a table can be
/// cleared by zeroing it), whether a slot holds a key, and a hash.
protocol TableKey: Hashable {
    static var empty: Self { get }
    var isOccupied: Bool { get }
    var hash: Int { get }
}

/// An open-addressing hash table from a packed key (`FlowKey`, `PartyKey`) to packet and
/// byte counters and one word of the owner's (`aux`: a dense index, say).
///
/// It exists for the packet path: a lookup hashes a few words with a couple of
/// multiplies, probes linearly, and touches one cache line in the common case (a flow's
/// entry is 64 bytes). Storage grows by doubling and is kept across `removeAll()`, so
/// once a window has seen its busiest traffic no further allocation happens.
///
/// It is a plain struct over manually managed storage, so the packet path does no
/// reference counting: exactly one copy owns the storage at a time (the window's
/// `WindowTables`, or the aggregator's working copy, written back before hand-off), and
/// that owner calls `deallocate()`.
///
/// ```swift
/// var table = CounterTable<PartyKey>(minimumCapacity: 1024)
/// table.add(PartyKey(address), bytes: 60)
/// table.deallocate()
/// ```
struct CounterTable<Key: TableKey>: @unchecked Sendable {
    struct Entry {
        var key: Key
        var packets: UInt64
        var bytes: UInt64
        /// The owner's word: left as inserted, never summed.
        var aux: UInt64
    }

    private(set) var storage: UnsafeMutablePointer<Entry>
    private(set) var capacity: Int
    private(set) var count = 0
    private var mask: Int

    init(minimumCapacity: Int = 1024) {
        var cap = 16
        while cap < minimumCapacity * 2 { cap <<= 1 }
        capacity = cap
        mask = cap - 1
        storage = Self.allocateEmpty(cap)
    }

    private static func allocateEmpty(_ capacity: Int) -> UnsafeMutablePointer<Entry> {
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: capacity * MemoryLayout<Entry>.stride, alignment: max(64, MemoryLayout<Entry>.alignment))
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: capacity * MemoryLayout<Entry>.stride)
        return raw.bindMemory(to: Entry.self, capacity: capacity)
    }

    /// A table with the same entries in storage of its own.
    func copy() -> CounterTable {
        var c = self
        c.storage = Self.allocateEmpty(capacity)
        c.storage.update(from: storage, count: capacity)
        return c
    }

    /// Frees the storage; the value must not be used afterwards.
    func deallocate() {
        UnsafeMutableRawPointer(storage).deallocate()
    }

    /// The slot holding `key`, or the empty slot where it would be inserted (negated, minus one).
    @inline(__always)
    func slot(of key: Key) -> Int {
        slot(of: key, hash: key.hash)
    }

    @inline(__always)
    func slot(of key: Key, hash: Int) -> Int {
        var i = hash & mask
        while true {
            let k = storage[i].key
            if !k.isOccupied { return -1 - i }
            if k == key { return i }
            i = (i &+ 1) & mask
        }
    }

    /// Starts loading the slot a key with `hash` probes first, for a lookup a few packets later:
    /// its cache line and the next one. Those two hold the whole 48-byte entry wherever it
    /// starts, and the key of the slot after it, which a lookup reads when the first slot
    /// holds another key (a line holding only the entry's end would leave that probe to miss).
    @inline(__always)
    func prefetch(hash: Int) {
        let slot = UnsafeMutableRawPointer(storage + (hash & mask))
        trafficmon_prefetch_for_write(slot)
        trafficmon_prefetch_for_write(slot + 64)
    }

    /// Adds to an existing entry and returns its slot; when `key` is absent, changes nothing
    /// and returns the empty slot where it would go, as `-1 - slot` (for `insert(_:hash:at:...)`).
    @inline(__always)
    mutating func addOrFindSlot(_ key: Key, hash: Int, packets: UInt64 = 1, bytes: UInt64) -> Int {
        let i = slot(of: key, hash: hash)
        if i >= 0 {
            storage[i].packets &+= packets
            storage[i].bytes &+= bytes
        }
        return i
    }

    /// Inserts an absent `key` with `hash` at `emptySlot` (`-1 - slot`, as a lookup on this
    /// table, unchanged since, returned it): no second probe unless the table must grow.
    @inline(__always)
    mutating func insert(_ key: Key, hash: Int, at emptySlot: Int, packets: UInt64 = 1, bytes: UInt64, aux: UInt64 = 0) {
        var i = emptySlot
        if (count + 1) * 4 > capacity * 3 {
            grow()
            i = slot(of: key, hash: hash)
        }
        storage[-1 - i] = Entry(key: key, packets: packets, bytes: bytes, aux: aux)
        count += 1
    }

    /// Adds to `key`'s counters, inserting it first (with `aux`) when absent. Returns `true`
    /// when it was inserted.
    @discardableResult
    @inline(__always)
    mutating func add(_ key: Key, packets: UInt64 = 1, bytes: UInt64, aux: UInt64 = 0) -> Bool {
        let hash = key.hash
        let i = addOrFindSlot(key, hash: hash, packets: packets, bytes: bytes)
        guard i < 0 else { return false }
        insert(key, hash: hash, at: i, packets: packets, bytes: bytes, aux: aux)
        return true
    }

    /// Whether `key` is present.
    @inline(__always)
    func contains(_ key: Key) -> Bool { slot(of: key) >= 0 }

    /// The entry for `key`, if present.
    @inline(__always)
    func entry(_ key: Key) -> Entry? {
        let i = slot(of: key)
        return i >= 0 ? storage[i] : nil
    }

    private mutating func grow() {
        let old = storage
        let oldCapacity = capacity
        capacity <<= 1
        mask = capacity - 1
        storage = Self.allocateEmpty(capacity)
        for j in 0..<oldCapacity where old[j].key.isOccupied {
            let i = -1 - slot(of: old[j].key)
            storage[i] = old[j]
        }
        UnsafeMutableRawPointer(old).deallocate()
    }

    /// Empties the table and keeps its storage.
    mutating func removeAll() {
        guard count > 0 else { return }
        UnsafeMutableRawPointer(storage).initializeMemory(as: UInt8.self, repeating: 0, count: capacity * MemoryLayout<Entry>.stride)
        count = 0
    }

    /// The slots holding entries, in storage order (read them through `storage`).
    func occupiedSlots() -> [Int32] {
        var slots = [Int32]()
        slots.reserveCapacity(count)
        for j in 0..<capacity where storage[j].key.isOccupied { slots.append(Int32(truncatingIfNeeded: j)) }
        return slots
    }

    /// Calls `body` for every entry, in storage order.
    func forEach(_ body: (Entry) -> Void) {
        guard count > 0 else { return }
        for j in 0..<capacity where storage[j].key.isOccupied { body(storage[j]) }
    }
}
