import CTrafficCoreShims

/// An open-addressing hash table from a 192-bit key to packet and byte counters.
///
/// It exists for the packet path: a lookup hashes three words with a couple of
/// multiplies, probes linearly, and touches one cache line in the common case.
/// Storage grows by doubling and is kept across `removeAll()`, so once a window
/// has seen its busiest traffic no further allocation happens.
///
/// It is a plain struct over manually managed storage, so the packet path does no
/// reference counting: exactly one copy owns the storage at a time (the window's
/// `WindowTables`, or the aggregator's working copy, written back before hand-off), and
/// that owner calls `deallocate()`.
///
/// ```swift
/// var table = CounterTable(minimumCapacity: 1024)
/// table.add(CounterTable.Key(a: 1, b: 2, c: 3), bytes: 60)
/// table.deallocate()
/// ```
struct CounterTable: @unchecked Sendable {
    struct Key: Hashable {
        var a: UInt64
        var b: UInt64
        /// Never zero: a zero `c` marks an empty slot.
        var c: UInt64
    }

    struct Entry {
        var key: Key
        var packets: UInt64
        var bytes: UInt64
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
        storage = .allocate(capacity: cap)
        storage.initialize(repeating: Entry(key: Key(a: 0, b: 0, c: 0), packets: 0, bytes: 0), count: cap)
    }

    /// Frees the storage; the value must not be used afterwards.
    func deallocate() {
        storage.deallocate()
    }

    @inline(__always)
    static func hash(_ key: Key) -> Int {
        var h = key.a &* 0x9E37_79B9_7F4A_7C15
        h ^= key.b &+ (key.c &* 0xC2B2_AE3D_27D4_EB4F)
        h = (h ^ (h >> 31)) &* 0xBF58_476D_1CE4_E5B9
        h ^= h >> 29
        return Int(truncatingIfNeeded: h)
    }

    /// The slot holding `key`, or the empty slot where it would be inserted (negated, minus one).
    @inline(__always)
    func slot(of key: Key) -> Int {
        slot(of: key, hash: Self.hash(key))
    }

    @inline(__always)
    func slot(of key: Key, hash: Int) -> Int {
        var i = hash & mask
        while true {
            let k = storage[i].key
            if k.c == 0 { return -1 - i }
            if k == key { return i }
            i = (i &+ 1) & mask
        }
    }

    /// Starts loading the slot a key with `hash` probes first, for a lookup a few packets later.
    @inline(__always)
    func prefetch(hash: Int) {
        trafficmon_prefetch_for_write(storage + (hash & mask))
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
    mutating func insert(_ key: Key, hash: Int, at emptySlot: Int, packets: UInt64 = 1, bytes: UInt64) {
        var i = emptySlot
        if (count + 1) * 4 > capacity * 3 {
            grow()
            i = slot(of: key, hash: hash)
        }
        storage[-1 - i] = Entry(key: key, packets: packets, bytes: bytes)
        count += 1
    }

    /// Adds to `key`'s counters, inserting it first when absent. Returns `true` when it was inserted.
    @discardableResult
    @inline(__always)
    mutating func add(_ key: Key, packets: UInt64 = 1, bytes: UInt64) -> Bool {
        let hash = Self.hash(key)
        let i = addOrFindSlot(key, hash: hash, packets: packets, bytes: bytes)
        guard i < 0 else { return false }
        insert(key, hash: hash, at: i, packets: packets, bytes: bytes)
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
        storage = .allocate(capacity: capacity)
        storage.initialize(repeating: Entry(key: Key(a: 0, b: 0, c: 0), packets: 0, bytes: 0), count: capacity)
        for j in 0..<oldCapacity where old[j].key.c != 0 {
            let i = -1 - slot(of: old[j].key)
            storage[i] = old[j]
        }
        old.deallocate()
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
        for j in 0..<capacity where storage[j].key.c != 0 { slots.append(Int32(truncatingIfNeeded: j)) }
        return slots
    }

    /// Calls `body` for every entry, in storage order.
    func forEach(_ body: (Entry) -> Void) {
        guard count > 0 else { return }
        for j in 0..<capacity where storage[j].key.c != 0 { body(storage[j]) }
    }
}
