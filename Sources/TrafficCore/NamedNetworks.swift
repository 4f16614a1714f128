/// The named networks of `--networks`: CIDR blocks, each with a name (several blocks may
/// share one), matched by longest prefix.
///
/// Built once at start: the blocks (nested or disjoint, as CIDR blocks are) are flattened
/// into sorted, disjoint address ranges, each carrying the name of the most specific block
/// that covers it, one list for IPv4 and one for IPv6. A lookup is one binary search, so
/// 100,000 blocks cost about 17 comparisons per address. Lookups happen when a window's
/// record is built (once per party per window), never per packet.
///
/// ```swift
/// let networks = try NamedNetworks([
///     .init(prefix: try NetworkPrefix(parsing: "192.0.2.0/24"), name: "office"),
///     .init(prefix: try NetworkPrefix(parsing: "192.0.2.128/25"), name: "lab"),
/// ])
/// networks.name(of: IPAddress("192.0.2.200")!)   // "lab"
/// networks.name(of: IPAddress("198.51.100.1")!)  // nil: network "unknown"
/// ```
public struct NamedNetworks: Sendable {
    /// One block of the file.
    public struct Block: Sendable, Hashable {
        public var prefix: NetworkPrefix
        public var name: String

        public init(prefix: NetworkPrefix, name: String) {
            self.prefix = prefix
            self.name = name
        }
    }

    /// The distinct names, in the order they first appear.
    public let names: [String]
    /// The `labels` given with each name (`trafficmon_network_info`), by name index.
    public let labels: [[(name: String, value: String)]]
    /// How many distinct blocks the table holds.
    public let blockCount: Int

    /// IPv4 ranges: the first address of each, its last, and its name index.
    private let v4Starts: [UInt32]
    private let v4Ends: [UInt32]
    private let v4Names: [Int32]
    /// Per /16 (the top 16 bits of an IPv4 address), and one past the last: the first
    /// range that starts in it or later, so a search looks only at the ranges starting in
    /// the address's /16 (and the one before them). Empty when there are no IPv4 ranges.
    private let v4Buckets: [Int32]
    /// IPv6 ranges, the same way.
    private let v6Starts: [UInt128]
    private let v6Ends: [UInt128]
    private let v6Names: [Int32]

    /// The name traffic with no matching block counts under.
    public static let unknown = "unknown"
    /// The name of the traffic whose parties are not known one by one (past `--max-clients`),
    /// and in metrics and folded records of the networks past the cut.
    public static let other = "other"

    /// Builds the table. The same block given twice under one name counts once; under two
    /// names it is refused (`NamedNetworksError.conflict`, with the two positions in `blocks`),
    /// and so is a name that is empty, `unknown` or `other` (`.reservedName`).
    ///
    /// - Parameter labels: per name, the labels exported with it; names not in it have none.
    public init(_ blocks: [Block], labels: [String: [(name: String, value: String)]] = [:]) throws(NamedNetworksError) {
        var names: [String] = []
        var nameIndex: [String: Int32] = [:]
        var seen: [NetworkPrefix: Int] = [:]
        seen.reserveCapacity(blocks.count)
        nameIndex.reserveCapacity(blocks.count)
        var v4: [(start: UInt128, end: UInt128, length: Int, name: Int32)] = []
        var v6: [(start: UInt128, end: UInt128, length: Int, name: Int32)] = []
        for (position, block) in blocks.enumerated() {
            guard block.name != Self.unknown && block.name != Self.other && !block.name.isEmpty else {
                throw NamedNetworksError.reservedName(position: position)
            }
            let index: Int32
            if let known = nameIndex[block.name] {
                index = known
            } else {
                index = Int32(names.count)
                nameIndex[block.name] = index
                names.append(block.name)
            }
            if let first = seen[block.prefix] {
                guard blocks[first].name == block.name else {
                    throw NamedNetworksError.conflict(prefix: block.prefix, first: first, second: position)
                }
                continue
            }
            seen[block.prefix] = position
            let (start, end) = Self.range(of: block.prefix)
            if block.prefix.address.isIPv6 {
                v6.append((start, end, block.prefix.length, index))
            } else {
                v4.append((start, end, block.prefix.length, index))
            }
        }
        self.names = names
        self.labels = names.map { labels[$0] ?? [] }
        blockCount = seen.count
        let flat4 = Self.flatten(v4)
        v4Starts = flat4.map { UInt32(truncatingIfNeeded: $0.start) }
        v4Ends = flat4.map { UInt32(truncatingIfNeeded: $0.end) }
        v4Names = flat4.map(\.name)
        v4Buckets = Self.buckets(v4Starts)
        let flat6 = Self.flatten(v6)
        v6Starts = flat6.map(\.start)
        v6Ends = flat6.map(\.end)
        v6Names = flat6.map(\.name)
    }

    /// How many disjoint ranges the blocks flattened into (IPv4 and IPv6).
    public var rangeCount: Int { v4Starts.count + v6Starts.count }

    /// The name index (into `names`) of the most specific block holding `ip`; `nil` when
    /// none does.
    @inline(__always)
    public func index(of ip: IPAddress) -> Int32? {
        if ip.isIPv6 {
            let a = UInt128(ip.high) << 64 | UInt128(ip.low)
            let i = Self.lastStart(atMost: a, in: v6Starts)
            return i >= 0 && a <= v6Ends[i] ? v6Names[i] : nil
        }
        let a = ip.ipv4Value
        guard !v4Buckets.isEmpty else { return nil }
        let bucket = Int(a >> 16)
        let i = Self.lastStart(atMost: a, in: v4Starts, from: Int(v4Buckets[bucket]), to: Int(v4Buckets[bucket + 1]))
        return i >= 0 && a <= v4Ends[i] ? v4Names[i] : nil
    }

    /// `buckets[b]`: the index of the first of the sorted `starts` in /16 `b` or later
    /// (65,537 entries, the last `starts.count`); empty for no starts.
    static func buckets(_ starts: [UInt32]) -> [Int32] {
        guard !starts.isEmpty else { return [] }
        var buckets = [Int32](repeating: Int32(starts.count), count: (1 << 16) + 1)
        var next = 0
        for b in 0..<(1 << 16) {
            while next < starts.count && Int(starts[next] >> 16) < b { next += 1 }
            buckets[b] = Int32(next)
        }
        return buckets
    }

    /// The name of the most specific block holding `ip`; `nil` when none does.
    public func name(of ip: IPAddress) -> String? {
        index(of: ip).map { names[Int($0)] }
    }

    /// The index of the last element of the sorted `starts` that is at most `value`; -1 if none.
    /// Only `starts[from..<to]` are searched: every start before `from` is known to be at
    /// most `value`, every one from `to` on to be above it.
    @inline(__always)
    static func lastStart<T: Comparable>(atMost value: T, in starts: [T], from: Int = 0, to: Int? = nil) -> Int {
        var low = from, high = to ?? starts.count
        while low < high {
            let mid = (low + high) >> 1
            if starts[mid] <= value { low = mid + 1 } else { high = mid }
        }
        return low - 1
    }

    /// A block's first and last address, as 128-bit numbers (IPv4 in the low 32 bits).
    static func range(of prefix: NetworkPrefix) -> (UInt128, UInt128) {
        let a = prefix.address
        if a.isIPv6 {
            let start = UInt128(a.high) << 64 | UInt128(a.low)
            let hostBits = 128 - prefix.length
            let span: UInt128 = hostBits == 128 ? .max : (UInt128(1) << hostBits) - 1
            return (start, start | span)
        }
        let start = UInt128(a.ipv4Value)
        let span = (UInt128(1) << (32 - prefix.length)) - 1
        return (start, start | span)
    }

    /// Turns blocks that are nested or disjoint into sorted disjoint ranges, each named by
    /// the most specific block covering it (a sweep with the enclosing blocks on a stack).
    static func flatten(
        _ blocks: [(start: UInt128, end: UInt128, length: Int, name: Int32)]
    ) -> [(start: UInt128, end: UInt128, name: Int32)] {
        // Outer blocks before the blocks they hold: by start, then shortest prefix first.
        let sorted = blocks.sorted { $0.start != $1.start ? $0.start < $1.start : $0.length < $1.length }
        var out: [(start: UInt128, end: UInt128, name: Int32)] = []
        out.reserveCapacity(sorted.count * 2)
        var stack: [(end: UInt128, name: Int32)] = []
        // The first address not yet covered by an emitted range (nil: past the last address).
        var cursor: UInt128? = 0

        func emit(upTo end: UInt128, name: Int32) {
            guard let from = cursor, from <= end else { return }
            if let last = out.last, last.name == name, last.end &+ 1 == from, last.end != .max {
                out[out.count - 1].end = end
            } else {
                out.append((from, end, name))
            }
            cursor = end == .max ? nil : end + 1
        }

        for block in sorted {
            // Close the enclosing blocks that end before this one starts.
            while let top = stack.last, top.end < block.start {
                emit(upTo: top.end, name: top.name)
                stack.removeLast()
            }
            // The part of the enclosing block before this one.
            if let top = stack.last, block.start > 0 {
                emit(upTo: block.start - 1, name: top.name)
            }
            if cursor.map({ $0 < block.start }) ?? false { cursor = block.start }
            stack.append((block.end, block.name))
        }
        while let top = stack.popLast() { emit(upTo: top.end, name: top.name) }
        return out
    }
}

/// Why a set of named networks cannot be built.
public enum NamedNetworksError: Error, Sendable, Equatable {
    /// The same block under two names: the positions of both in the list given.
    case conflict(prefix: NetworkPrefix, first: Int, second: Int)
    /// A block named `unknown` or `other` (the names of the traffic no block holds and of
    /// the parties not known one by one), or with an empty name.
    case reservedName(position: Int)
}
