/// A listed party's services (`PartyRecord.services`), read like an array: a run of one
/// array that every listed party of a record shares, so that building a record of 20,000
/// parties allocates their services once rather than once per party.
///
/// It compares, hashes and encodes as the array of its elements (`[]` in JSON when empty);
/// an array literal makes one.
///
/// ```swift
/// let services: ServiceList = [ServiceCounts(service: .other, direction: .inbound, packets: 1, bytes: 60)]
/// for s in party.services where s.direction == .outbound { total += s.bytes }
/// ```
public struct ServiceList: RandomAccessCollection, Hashable, Sendable, Codable, ExpressibleByArrayLiteral {
    /// The shared array and this list's run in it.
    private let storage: [ServiceCounts]
    private let offset: Int
    public let count: Int

    /// `range` of `storage` (which stays alive while the list does).
    init(_ storage: [ServiceCounts], range: Range<Int>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= storage.count, "a run inside the array")
        self.storage = storage
        offset = range.lowerBound
        count = range.count
    }

    /// The elements of `array`, in its order.
    public init(_ array: [ServiceCounts]) {
        storage = array
        offset = 0
        count = array.count
    }

    public init(arrayLiteral elements: ServiceCounts...) {
        self.init(elements)
    }

    /// How many elements the array this list is a run of holds: what the list keeps alive.
    var storageCount: Int { storage.count }

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }

    public subscript(position: Int) -> ServiceCounts {
        precondition(position >= 0 && position < count, "index out of range")
        return storage[offset &+ position]
    }

    /// Calls `body` with the elements where they lie.
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<ServiceCounts>) throws -> R) rethrows -> R {
        try storage.withUnsafeBufferPointer { all in
            try body(UnsafeBufferPointer(rebasing: all[offset..<offset &+ count]))
        }
    }

    public static func == (a: ServiceList, b: ServiceList) -> Bool {
        a.elementsEqual(b)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(count)
        for s in self { hasher.combine(s) }
    }

    public init(from decoder: any Decoder) throws {
        self.init(try [ServiceCounts](from: decoder))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.unkeyedContainer()
        for s in self { try c.encode(s) }
    }
}

extension ServiceList {
    /// Moves the parties' services into one array that holds exactly them: a list that is a
    /// run of a larger array keeps all of it alive (the services a `--top` cut folded away,
    /// the parties a folded record no longer lists), and a record kept in the history
    /// should hold only what it shows. With `foldingTo`, a list longer than it is sorted and
    /// folded there as it is moved (`WindowRecordBuilder.sortAndFold`).
    ///
    /// ```swift
    /// ServiceList.pack(&record.clients)
    /// ```
    static func pack(_ parties: inout [PartyRecord], foldingTo top: Int? = nil) {
        var storage = [ServiceCounts]()
        storage.reserveCapacity(parties.reduce(0) { $0 + $1.services.count })
        var ends = [Int]()
        ends.reserveCapacity(parties.count)
        for party in parties {
            let start = storage.count
            party.services.withUnsafeBufferPointer { storage.append(contentsOf: $0) }
            if let top, party.services.count > top {
                let kept = storage.withUnsafeMutableBufferPointer { all in
                    WindowRecordBuilder.sortAndFold(UnsafeMutableBufferPointer(rebasing: all[start...]), top: top)
                }
                storage.removeLast(storage.count - start - kept)
            }
            ends.append(storage.count)
        }
        var start = 0
        for i in parties.indices {
            parties[i].services = ServiceList(storage, range: start..<ends[i])
            start = ends[i]
        }
    }
}
