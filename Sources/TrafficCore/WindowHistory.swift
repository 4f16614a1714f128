/// Something that belongs to one window, known by the window's start.
public protocol WindowStarting: Sendable {
    var start: Int64 { get }
}

extension WindowRecord: WindowStarting {}
extension RenderedRecord: WindowStarting {}

/// The newest `capacity` closed windows, kept sorted by start (oldest first). A window
/// whose start is already held replaces the old one, so a replayed or reloaded window
/// never appears twice. Holds records, or records with their JSON (`RenderedRecord`).
///
/// ```swift
/// var history = WindowHistory<WindowRecord>(capacity: 720)
/// history.append(record)
/// history.last(10)   // up to 10 records, oldest first
/// ```
public struct WindowHistory<Element: WindowStarting>: Sendable {
    public let capacity: Int
    private var records: [Element] = []

    public init(capacity: Int) {
        self.capacity = max(1, capacity)
        records.reserveCapacity(min(self.capacity, 4096))
    }

    public var count: Int { records.count }
    public var isEmpty: Bool { records.isEmpty }

    public mutating func append(_ record: Element) {
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
    public var all: [Element] { records }

    /// The newest record.
    public var newest: Element? { records.last }

    /// The oldest record held.
    public var oldest: Element? { records.first }

    /// Up to `n` newest records, oldest first.
    public func last(_ n: Int) -> [Element] {
        Array(records.suffix(max(0, n)))
    }

    /// Records whose start lies in `since..<until` (nanoseconds), oldest first, at most `limit`
    /// (the newest ones when more match).
    public func windows(since: Int64?, until: Int64?, limit: Int) -> [Element] {
        let matching = records.filter { r in
            (since.map { r.start >= $0 } ?? true) && (until.map { r.start < $0 } ?? true)
        }
        return Array(matching.suffix(max(0, limit)))
    }
}
