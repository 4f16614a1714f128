import Foundation
import TrafficCore

/// Writes MaxMind DB files (format 2.0, as published at maxmind.github.io/MaxMind-DB) for
/// tests: a binary search tree over IPv4 or IPv6 addresses with 24-, 28- or 32-bit
/// records, a data section, and the metadata map. The records can take the shapes
/// GeoLite2 publishes (`asnRecord`, `countryRecord`), so the real libmaxminddb reads them
/// as it reads MaxMind's files.
///
/// ```swift
/// var writer = MMDBWriter(databaseType: "GeoLite2-ASN")
/// writer.insert(try NetworkPrefix(parsing: "192.0.2.0/24"), MMDBWriter.asnRecord(asn: 64500, organization: "Example"))
/// try writer.write(to: url)
/// ```
///
/// IPv4 blocks in an IPv6 tree sit at `::a.b.c.d/96+n`, where libmaxminddb looks IPv4
/// addresses up. Blocks may nest: the most specific wins, whatever the insertion order.
public struct MMDBWriter {
    /// A value of the data section.
    public indirect enum Value: Hashable {
        case string(String)
        case uint16(UInt16)
        case uint32(UInt32)
        case uint64(UInt64)
        case int32(Int32)
        case bool(Bool)
        case double(Double)
        /// Keys in the order given.
        case map([Pair])
        case array([Value])
    }

    /// A key and its value in a map.
    public struct Pair: Hashable {
        public var key: String
        public var value: Value

        public init(_ key: String, _ value: Value) {
            self.key = key
            self.value = value
        }
    }

    public var databaseType: String
    /// 4 or 6.
    public var ipVersion: Int
    /// 24, 28 or 32; `nil`: the smallest that holds the file.
    public var recordSize: Int?
    public var languages: [String]
    public var description: String
    public var buildEpoch: UInt64
    private var blocks: [(prefix: NetworkPrefix, value: Value)] = []

    public init(
        databaseType: String, ipVersion: Int = 6, recordSize: Int? = nil, languages: [String] = ["en"],
        description: String = "trafficmon test database", buildEpoch: UInt64 = 1_700_000_000
    ) {
        self.databaseType = databaseType
        self.ipVersion = ipVersion
        self.recordSize = recordSize
        self.languages = languages
        self.description = description
        self.buildEpoch = buildEpoch
    }

    /// Adds a block and its record. IPv6 blocks go only into IPv6 trees (an IPv4 tree skips them).
    public mutating func insert(_ prefix: NetworkPrefix, _ value: Value) {
        blocks.append((prefix, value))
    }

    /// A GeoLite2-ASN record.
    public static func asnRecord(asn: UInt32, organization: String) -> Value {
        .map([Pair("autonomous_system_number", .uint32(asn)), Pair("autonomous_system_organization", .string(organization))])
    }

    /// A GeoLite2-Country record: continent, country and registered country, each with a
    /// GeoNames id and names by language.
    public static func countryRecord(
        isoCode: String, name: String, geonameID: UInt32, continentCode: String = "EU", continentName: String = "Europe",
        inEuropeanUnion: Bool = false
    ) -> Value {
        var country: [Pair] = [Pair("geoname_id", .uint32(geonameID))]
        if inEuropeanUnion { country.append(Pair("is_in_european_union", .bool(true))) }
        country += [Pair("iso_code", .string(isoCode)), Pair("names", .map([Pair("en", .string(name)), Pair("fr", .string(name))]))]
        return .map([
            Pair("continent", .map([
                Pair("code", .string(continentCode)), Pair("geoname_id", .uint32(6_255_148)),
                Pair("names", .map([Pair("en", .string(continentName))])),
            ])),
            Pair("country", .map(country)),
            Pair("registered_country", .map(country)),
        ])
    }

    // MARK: Writing

    public func write(to url: URL) throws {
        try Data(bytes()).write(to: url)
    }

    /// The whole file.
    public func bytes() -> [UInt8] {
        let depth = ipVersion == 4 ? 32 : 128
        // The data section: each distinct record once.
        var data: [UInt8] = []
        var offsets: [Value: Int] = [:]
        // Tree records: 0 empty, 1 + node index for a node, -(1 + data offset) for data.
        var nodes: [[Int]] = [[0, 0]]
        // Shorter blocks first, so a more specific block splits what a wider one set.
        let ordered = blocks.enumerated().sorted { ($0.element.prefix.length, $0.offset) < ($1.element.prefix.length, $1.offset) }
        for (_, block) in ordered {
            let (bits, length) = Self.bits(of: block.prefix, depth: depth)
            guard length > 0 else { continue }
            let offset: Int
            if let known = offsets[block.value] {
                offset = known
            } else {
                offset = data.count
                Self.encode(block.value, into: &data)
                offsets[block.value] = offset
            }
            var node = 0
            for d in 0..<length {
                let bit = Self.bit(bits, d)
                if d == length - 1 {
                    Self.set(&nodes, node, bit, -(1 + offset))
                    break
                }
                let child = nodes[node][bit]
                if child > 0 {
                    node = child - 1
                } else {
                    // Empty, or a wider block's data: a node whose two halves keep it.
                    nodes.append([child, child])
                    nodes[node][bit] = nodes.count
                    node = nodes.count - 1
                }
            }
        }

        let nodeCount = nodes.count
        let size = recordSize ?? [24, 28, 32].first { nodeCount + 16 + data.count < 1 << $0 } ?? 32
        func recordValue(_ r: Int) -> UInt64 {
            if r == 0 { return UInt64(nodeCount) }
            if r > 0 { return UInt64(r - 1) }
            return UInt64(nodeCount + 16 + (-r - 1))
        }
        var out: [UInt8] = []
        out.reserveCapacity(nodeCount * size / 4 + 16 + data.count + 512)
        for n in nodes {
            let left = recordValue(n[0]), right = recordValue(n[1])
            switch size {
            case 24:
                out += Self.bigEndian(left, bytes: 3) + Self.bigEndian(right, bytes: 3)
            case 28:
                out += Self.bigEndian(left & 0xFF_FFFF, bytes: 3)
                out.append(UInt8(truncatingIfNeeded: (left >> 24) << 4 | (right >> 24) & 0x0F))
                out += Self.bigEndian(right & 0xFF_FFFF, bytes: 3)
            default:
                out += Self.bigEndian(left, bytes: 4) + Self.bigEndian(right, bytes: 4)
            }
        }
        out += [UInt8](repeating: 0, count: 16)
        out += data
        out += [0xAB, 0xCD, 0xEF] + Array("MaxMind.com".utf8)
        Self.encode(.map([
            Pair("binary_format_major_version", .uint16(2)),
            Pair("binary_format_minor_version", .uint16(0)),
            Pair("build_epoch", .uint64(buildEpoch)),
            Pair("database_type", .string(databaseType)),
            Pair("description", .map([Pair("en", .string(description))])),
            Pair("ip_version", .uint16(UInt16(ipVersion))),
            Pair("languages", .array(languages.map { .string($0) })),
            Pair("node_count", .uint32(UInt32(nodeCount))),
            Pair("record_size", .uint16(UInt16(size))),
        ]), into: &out)
        return out
    }

    private static func set(_ nodes: inout [[Int]], _ node: Int, _ bit: Int, _ value: Int) {
        nodes[node][bit] = value
    }

    /// The block's address as 128 bits (IPv4 placed at `::a.b.c.d` in an IPv6 tree) and
    /// its length in the tree; length 0 when the block does not belong in it.
    static func bits(of prefix: NetworkPrefix, depth: Int) -> ((UInt64, UInt64), Int) {
        let a = prefix.address
        if a.isIPv6 {
            guard depth == 128 else { return ((0, 0), 0) }
            return ((a.high, a.low), prefix.length)
        }
        if depth == 32 { return ((a.low << 32, 0), prefix.length) }
        return ((0, a.low), 96 + prefix.length)
    }

    static func bit(_ bits: (UInt64, UInt64), _ i: Int) -> Int {
        i < 64 ? Int((bits.0 >> UInt64(63 - i)) & 1) : Int((bits.1 >> UInt64(127 - i)) & 1)
    }

    static func bigEndian(_ value: UInt64, bytes: Int) -> [UInt8] {
        (0..<bytes).map { UInt8(truncatingIfNeeded: value >> UInt64(8 * (bytes - 1 - $0))) }
    }

    /// The fewest big-endian bytes that hold `value` (none for 0).
    static func minimal(_ value: UInt64) -> [UInt8] {
        var bytes = bigEndian(value, bytes: 8)
        while bytes.first == 0 { bytes.removeFirst() }
        return bytes
    }

    /// A data field: control byte (type and size), the extended type byte for types past
    /// 7, extra size bytes, then the payload.
    static func field(type: Int, size: Int, payload: [UInt8], into out: inout [UInt8]) {
        let sizeBits: Int
        var extra: [UInt8] = []
        switch size {
        case ..<29: sizeBits = size
        case ..<285:
            sizeBits = 29
            extra = [UInt8(size - 29)]
        case ..<65_821:
            sizeBits = 30
            extra = bigEndian(UInt64(size - 285), bytes: 2)
        default:
            sizeBits = 31
            extra = bigEndian(UInt64(size - 65_821), bytes: 3)
        }
        if type <= 7 {
            out.append(UInt8(type << 5 | sizeBits))
        } else {
            out.append(UInt8(sizeBits))
            out.append(UInt8(type - 7))
        }
        out += extra
        out += payload
    }

    static func encode(_ value: Value, into out: inout [UInt8]) {
        switch value {
        case .string(let s):
            let bytes = Array(s.utf8)
            field(type: 2, size: bytes.count, payload: bytes, into: &out)
        case .double(let d):
            field(type: 3, size: 8, payload: bigEndian(d.bitPattern, bytes: 8), into: &out)
        case .uint16(let v):
            let bytes = minimal(UInt64(v))
            field(type: 5, size: bytes.count, payload: bytes, into: &out)
        case .uint32(let v):
            let bytes = minimal(UInt64(v))
            field(type: 6, size: bytes.count, payload: bytes, into: &out)
        case .map(let pairs):
            field(type: 7, size: pairs.count, payload: [], into: &out)
            for p in pairs {
                encode(.string(p.key), into: &out)
                encode(p.value, into: &out)
            }
        case .int32(let v):
            let bytes = minimal(UInt64(UInt32(bitPattern: v)))
            field(type: 8, size: bytes.count, payload: bytes, into: &out)
        case .uint64(let v):
            let bytes = minimal(v)
            field(type: 9, size: bytes.count, payload: bytes, into: &out)
        case .array(let items):
            field(type: 11, size: items.count, payload: [], into: &out)
            for item in items { encode(item, into: &out) }
        case .bool(let b):
            field(type: 14, size: b ? 1 : 0, payload: [], into: &out)
        }
    }
}
