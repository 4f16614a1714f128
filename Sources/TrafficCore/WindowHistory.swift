/// The newest `capacity` closed windows, kept sorted by start (oldest first). A window
/// whose start is already held replaces the old one, so a replayed or reloaded window
/// never appears twice.
///
/// ```swift
/// var history = WindowHistory(capacity: 720)
/// history.append(record)
/// history.last(10)   // up to 10 records, oldest first
/// ```
public struct WindowHistory: Sendable {
    public let capacity: Int
    private var records: [WindowRecord] = []

    public init(capacity: Int) {
        self.capacity = max(1, capacity)
        records.reserveCapacity(min(self.capacity, 4096))
    }

    public var count: Int { records.count }
    public var isEmpty: Bool { records.isEmpty }

    public mutating func append(_ record: WindowRecord) {
        if let last = records.last, record.start <= last.start {
            // Out of order or a repeat: find its place.
            var low = 0, high = records.count
            while low < high {
                let mid = (low + high) / 2
                if records[mid].start < record.start { low = mid + 1 } else { high = mid }
            }
            if low < records.count && records[low].start == record.start {
                records[low] = record
                return
            }
            records.insert(record, at: low)
        } else {
            records.append(record)
        }
        if records.count > capacity { records.removeFirst(records.count - capacity) }
    }

    /// Every record, oldest first.
    public var all: [WindowRecord] { records }

    /// The newest record.
    public var newest: WindowRecord? { records.last }

    /// The oldest record held.
    public var oldest: WindowRecord? { records.first }

    /// Up to `n` newest records, oldest first.
    public func last(_ n: Int) -> [WindowRecord] {
        Array(records.suffix(max(0, n)))
    }

    /// Records whose start lies in `since..<until` (nanoseconds), oldest first, at most `limit`
    /// (the newest ones when more match).
    public func windows(since: Int64?, until: Int64?, limit: Int) -> [WindowRecord] {
        let matching = records.filter { r in
            (since.map { r.start >= $0 } ?? true) && (until.map { r.start < $0 } ?? true)
        }
        return Array(matching.suffix(max(0, limit)))
    }
}
