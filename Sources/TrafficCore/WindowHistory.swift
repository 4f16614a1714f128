/// The last `capacity` closed windows, oldest first, in a fixed-size ring.
///
/// ```swift
/// var history = WindowHistory(capacity: 720)
/// history.append(record)
/// history.last(10)   // up to 10 records, oldest first
/// ```
public struct WindowHistory: Sendable {
    public let capacity: Int
    private var ring: [WindowRecord] = []
    private var head = 0  // index of the oldest record once the ring is full

    public init(capacity: Int) {
        self.capacity = max(1, capacity)
        ring.reserveCapacity(min(self.capacity, 4096))
    }

    public var count: Int { ring.count }
    public var isEmpty: Bool { ring.isEmpty }

    public mutating func append(_ record: WindowRecord) {
        if ring.count < capacity {
            ring.append(record)
        } else {
            ring[head] = record
            head = (head + 1) % capacity
        }
    }

    /// Every record, oldest first.
    public var all: [WindowRecord] { last(ring.count) }

    /// The newest record.
    public var newest: WindowRecord? {
        guard !ring.isEmpty else { return nil }
        return ring[(head + ring.count - 1) % ring.count]
    }

    /// The oldest record held.
    public var oldest: WindowRecord? {
        guard !ring.isEmpty else { return nil }
        return ring[head % ring.count]
    }

    /// Up to `n` newest records, oldest first.
    public func last(_ n: Int) -> [WindowRecord] {
        let k = max(0, min(n, ring.count))
        var result = [WindowRecord]()
        result.reserveCapacity(k)
        let count = ring.count
        for i in (count - k)..<count {
            result.append(ring[(head + i) % count])
        }
        return result
    }

    /// Records whose start lies in `since..<until` (nanoseconds), oldest first, at most `limit`
    /// (the newest ones when more match).
    public func windows(since: Int64?, until: Int64?, limit: Int) -> [WindowRecord] {
        let matching = all.filter { r in
            (since.map { r.start >= $0 } ?? true) && (until.map { r.start < $0 } ?? true)
        }
        return Array(matching.suffix(limit))
    }
}
