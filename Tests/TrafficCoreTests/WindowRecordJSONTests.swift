import Foundation
import Testing
@testable import TrafficCore
import TrafficTestSupport

@Suite("WindowRecord JSON")
struct WindowRecordJSONTests {
    typealias A = Agg

    /// DESIGN.md's example record, verbatim.
    static let designExample = """
    {"start":"2026-11-25T10:00:00Z","end":"2026-11-25T10:00:05Z","partial":false,
     "packets":25,"bytes":16080,
     "in":{"packets":10,"bytes":900},"out":{"packets":12,"bytes":15000},
     "clients":[{"ip":"198.51.100.7",
                 "in":{"packets":10,"bytes":900},"out":{"packets":12,"bytes":15000},
                 "services":[{"service":"TCP/443","direction":"in","packets":10,"bytes":900},
                             {"service":"TCP/443","direction":"out","packets":12,"bytes":15000}]}],
     "other":{"packets":0,"bytes":0,"clients":0},
     "non_ip":{"packets":3,"bytes":180},"malformed":{"packets":0,"bytes":0},
     "late_packets":0,"capture":{"received":25,"dropped":0}}
    """

    /// The top-level keys in DESIGN.md's order, and the documented additions.
    static let designKeys = ["start", "end", "partial", "packets", "bytes", "in", "out", "clients", "other",
                             "non_ip", "malformed", "late_packets", "capture"]
    static let topLevelAdditions: Set = ["services", "servers", "other_servers", "tcp", "sizes", "dns", "sampled", "sources"]

    /// A window with a bit of everything: IPv4 and IPv6 clients, clients past --max-clients,
    /// services past --top, non-IP, malformed frames, a late packet, drops, an inject.
    static func busyRecords(window: Int64 = Agg.w5) -> [WindowRecord] {
        let (agg, out) = makeAggregator(A.config(window: window, maxClients: 4, top: 3))
        let t0 = A.t0
        let traffic: [(String, Direction, String, Int)] = [
            ("198.51.100.7", .inbound, "TCP/443", 900), ("198.51.100.7", .outbound, "TCP/443", 15000),
            ("2001:db8:2::7", .inbound, "UDP/53", 80), ("2001:db8:2::7", .outbound, "UDP/53", 2000),
            ("203.0.113.9", .inbound, "ICMP", 98), ("203.0.113.9", .inbound, "TCP/22", 500),
            ("203.0.113.9", .inbound, "TCP/80", 400), ("203.0.113.9", .inbound, "SCTP/2905", 300),
            ("203.0.113.9", .inbound, "GRE", 1400), ("::ffff:192.0.2.1", .inbound, "UDP", 1480),
            ("198.51.100.99", .inbound, "IP/89", 64),      // past --max-clients 4: other
            ("2001:db8:3::1", .outbound, "ICMPv6", 128),   // other
        ]
        for (i, (client, direction, service, bytes)) in traffic.enumerated() {
            A.add(agg, client, direction, service, at: t0 + Int64(i) * 1_000_000, bytes: bytes)
        }
        agg.add(nonIPPacket(), timestamp: t0 + seconds(1), wireLength: 60)
        agg.add(malformedPacket(.truncatedTransport), timestamp: t0 + seconds(1), wireLength: 64)
        agg.add(malformedPacket(.badVersion), timestamp: t0 + seconds(1), wireLength: 70)
        agg.add(A.attribution("10.10.10.10", .inbound, "TCP/8000"), timestamp: t0 + seconds(2), wireLength: 1200)
        A.add(agg, "198.51.100.7", at: t0 + window + seconds(1), bytes: 100)
        A.add(agg, "198.51.100.8", at: t0 + seconds(1), bytes: 77)   // late
        agg.finish()
        // Drops as a live capture's coordinator reports them per window.
        var records = out.records
        for (i, drops) in [(3, 1), (7, 3)].enumerated() where i < records.count {
            records[i].capture.kernelDropped = UInt64(drops.0)
            records[i].capture.interfaceDropped = UInt64(drops.1)
        }
        return records
    }

    static func json(_ r: WindowRecord) throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(r.jsonBytes()))
        return try #require(object as? [String: Any])
    }

    static func ordered(_ r: WindowRecord) throws -> OrderedJSON {
        try #require(OrderedJSON.parse(r.jsonBytes()), "not JSON: \(r.jsonString)")
    }

    /// `keys` start with `design` (in that order); anything after is one of `additions`.
    static func expectKeys(_ object: OrderedJSON?, _ design: [String], additions: Set<String> = [], required: Set<String> = [],
                           sourceLocation: SourceLocation = #_sourceLocation) {
        let keys = object?.keys ?? []
        #expect(Array(keys.prefix(design.count)) == design, "keys \(keys)", sourceLocation: sourceLocation)
        let extra = Set(keys.dropFirst(design.count))
        #expect(extra.isSubset(of: additions), "undocumented keys \(extra.subtracting(additions))", sourceLocation: sourceLocation)
        #expect(required.isSubset(of: extra), "missing \(required.subtracting(extra))", sourceLocation: sourceLocation)
        #expect(Set(keys).count == keys.count, "repeated keys \(keys)", sourceLocation: sourceLocation)
    }

    @Test func busyRecordsAreConservedAndVaried() throws {
        let records = Self.busyRecords()
        #expect(records.count == 2)
        let r = records[0]
        #expect(r.isConserved)
        #expect(r.clients.count == 3)
        // Listed: the three biggest of the four tracked; other: the fourth, two later clients and the inject's.
        #expect(r.clients.map(\.ip) == [addr("198.51.100.7"), addr("203.0.113.9"), addr("2001:db8:2::7")])
        #expect(r.other.clients == 4)
        #expect(r.services.contains { $0.service == .other })
        #expect(r.malformed.reasons.count == 2)
        #expect(records[1].latePackets == 1)
        #expect(records[1].capture.kernelDropped == 7)
    }

    @Test func keysAreDesignsInDesignsOrder() throws {
        for r in Self.busyRecords() + [WindowRecord(start: 0, end: Agg.w5)] {
            let j = try Self.ordered(r)
            Self.expectKeys(j, Self.designKeys, additions: Self.topLevelAdditions, required: Self.topLevelAdditions)
            #expect(Set(j.keys) == Set(Self.designKeys).union(Self.topLevelAdditions), "exactly the documented top-level keys")
            for key in ["in", "out", "non_ip"] { Self.expectKeys(j[key], ["packets", "bytes"]) }
            // `other` may carry its in/out split after DESIGN's keys.
            Self.expectKeys(j["other"], ["packets", "bytes", "clients"], additions: ["in", "out"])
            Self.expectKeys(j["malformed"], ["packets", "bytes"], additions: ["reasons"], required: ["reasons"])
            Self.expectKeys(j["other_servers"], ["packets", "bytes", "servers", "in", "out"])
            Self.expectKeys(j["capture"], ["received", "dropped"], additions: ["kernel_dropped", "interface_dropped", "oversized", "interfaces"],
                            required: ["kernel_dropped", "interface_dropped", "oversized", "interfaces"])
            for interface in j["capture"]?["interfaces"]?.elements ?? [] {
                #expect(interface.keys == ["name", "received", "kernel_dropped", "interface_dropped"])
            }
            // Each source with its name and traffic; an aggregator's windows name one, `file`,
            // with all the IP traffic (the hand-made empty record names none).
            #expect(j["sources"]?.elements.map(\.keys) == r.sources.map { _ in ["name", "in", "out"] })
            #expect(r.sources.isEmpty || r.sources == [SourceCounts(name: "file", in: r.in, out: r.out)])
            for party in (j["clients"]?.elements ?? []) + (j["servers"]?.elements ?? []) {
                Self.expectKeys(party, ["ip", "in", "out", "services"], additions: ["local", "tcp"], required: ["local"])
                for key in ["in", "out"] { Self.expectKeys(party[key], ["packets", "bytes"]) }
                for service in party["services"]?.elements ?? [] {
                    #expect(service.keys == ["service", "direction", "packets", "bytes"])
                }
            }
            for service in j["services"]?.elements ?? [] {
                #expect(service.keys == ["service", "direction", "packets", "bytes"])
            }
        }
    }

    @Test func valuesMatchTheRecord() throws {
        for r in Self.busyRecords() {
            let j = try Self.json(r)
            #expect(j["partial"] as? Bool == r.partial)
            #expect((j["packets"] as? NSNumber)?.uint64Value == r.packets)
            #expect((j["bytes"] as? NSNumber)?.uint64Value == r.bytes)
            #expect((j["late_packets"] as? NSNumber)?.uint64Value == r.latePackets)
            func counts(_ any: Any?) -> Counts? {
                guard let d = any as? [String: Any], let p = d["packets"] as? NSNumber, let b = d["bytes"] as? NSNumber else { return nil }
                return Counts(packets: p.uint64Value, bytes: b.uint64Value)
            }
            #expect(counts(j["in"]) == r.in)
            #expect(counts(j["out"]) == r.out)
            #expect(counts(j["non_ip"]) == r.nonIP)
            #expect(counts(j["other"]) == Counts(packets: r.other.packets, bytes: r.other.bytes))
            #expect(((j["other"] as? [String: Any])?["clients"] as? NSNumber)?.uint64Value == r.other.clients)
            #expect(counts(j["malformed"]) == Counts(packets: r.malformed.packets, bytes: r.malformed.bytes))
            let reasons = (j["malformed"] as? [String: Any])?["reasons"] as? [String: NSNumber]
            #expect(reasons?.mapValues(\.uint64Value) == r.malformed.reasons)
            let captureObject = j["capture"] as? [String: Any]
            let capture = captureObject?.compactMapValues { $0 as? NSNumber }
            #expect((captureObject?["interfaces"] as? [Any])?.count == r.capture.interfaces.count)
            #expect(capture?["received"]?.uint64Value == r.capture.received)
            #expect(capture?["dropped"]?.uint64Value == r.capture.kernelDropped + r.capture.interfaceDropped)
            #expect(capture?["kernel_dropped"]?.uint64Value == r.capture.kernelDropped)
            #expect(capture?["interface_dropped"]?.uint64Value == r.capture.interfaceDropped)
            #expect(counts(j["other_servers"]) == Counts(packets: r.otherServers.packets, bytes: r.otherServers.bytes))
            #expect(((j["other_servers"] as? [String: Any])?["servers"] as? NSNumber)?.uint64Value == r.otherServers.servers)
            #expect(capture?["oversized"]?.uint64Value == r.capture.oversized)
            let clients = try #require(j["clients"] as? [[String: Any]])
            let servers = try #require(j["servers"] as? [[String: Any]])
            #expect(clients.map { $0["ip"] as? String } == r.clients.map(\.ip.description))
            #expect(servers.map { $0["ip"] as? String } == r.servers.map(\.ip.description))
            #expect(!r.servers.isEmpty)
            for (c, record) in zip(clients + servers, r.clients + r.servers) {
                #expect(counts(c["in"]) == record.in && counts(c["out"]) == record.out)
                #expect(c["local"] as? Bool == record.local)
                let services = try #require(c["services"] as? [[String: Any]])
                #expect(services.map { $0["service"] as? String } == record.services.map(\.service.label))
                #expect(services.map { $0["direction"] as? String } == record.services.map(\.direction.label))
                #expect(services.map { ($0["bytes"] as? NSNumber)?.uint64Value } == record.services.map(\.bytes))
            }
            let services = try #require(j["services"] as? [[String: Any]])
            #expect(services.map { $0["service"] as? String } == r.services.map(\.service.label))
            #expect(services.map { ($0["packets"] as? NSNumber)?.uint64Value } == r.services.map(\.packets))
        }
    }

    @Test func ipv6AndMappedClientsPrintInCanonicalForm() throws {
        let busy = try #require(Self.busyRecords().first).jsonString
        #expect(busy.contains(#""ip":"2001:db8:2::7""#))
        let handMade = Self.handMade.jsonString
        #expect(handMade.contains(#""ip":"2001:db8::1:0:0:1""#))
        #expect(handMade.contains(#""ip":"::ffff:192.0.2.1""#))
        #expect(handMade.contains(#""service":"other","direction":"out""#))
        #expect(handMade.contains(#""service":"IP/0""#))
        #expect(handMade.contains(#""service":"UDP","direction":"in""#))
    }

    /// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`.
    static func isRFC3339UTC(_ s: String) -> Bool {
        s.wholeMatch(of: #/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z/#) != nil
    }

    @Test(arguments: [
        (Agg.w5, Agg.t0, "2023-11-14T22:13:20Z", "2023-11-14T22:13:25Z"),
        (seconds(0, ms: 500), Agg.t0 + seconds(0, ms: 700), "2023-11-14T22:13:20.5Z", "2023-11-14T22:13:21Z"),
        (seconds(60), Agg.t0, "2023-11-14T22:13:00Z", "2023-11-14T22:14:00Z"),
        (seconds(1), Agg.t0 - 1, "2023-11-14T22:13:19Z", "2023-11-14T22:13:20Z"),
    ] as [(Int64, Int64, String, String)])
    func timesAreRFC3339InUTC(window: Int64, at: Int64, start: String, end: String) throws {
        let (agg, out) = makeAggregator(A.config(window: window))
        A.add(agg, "198.51.100.7", at: at, bytes: 100)
        agg.finish()
        let r = try #require(out.records.first)
        let j = try Self.json(r)
        let s = try #require(j["start"] as? String), e = try #require(j["end"] as? String)
        #expect(s == start && e == end)
        #expect(Self.isRFC3339UTC(s) && Self.isRFC3339UTC(e))
        // Foundation reads the same instant.
        let iso = ISO8601DateFormatter()
        iso.formatOptions = s.contains(".") ? [.withInternetDateTime, .withFractionalSeconds] : [.withInternetDateTime]
        let date = try #require(iso.date(from: s))
        #expect(abs(date.timeIntervalSince1970 - Double(r.start) / 1e9) < 0.001)
    }

    @Test func roundTripsThroughJSONDecoder() throws {
        let records = Self.busyRecords() + Self.busyRecords(window: seconds(0, ms: 500)) + [
            WindowRecord(start: -Agg.w5, end: 0, partial: true),
            Self.handMade,
        ]
        for r in records {
            let back = try JSONDecoder().decode(WindowRecord.self, from: Data(r.jsonBytes()))
            #expect(back == r)
            #expect(back.jsonBytes() == r.jsonBytes())
        }
    }

    /// Addresses, services and directions are strings in JSON, read back to the same value;
    /// a string that names none is a decoding error that says what it should have been.
    @Test func textValuesReadBackAndSayWhatAStringShouldBe() throws {
        func decode<T: Decodable>(_ type: T.Type, _ text: String) throws -> T {
            try JSONDecoder().decode(T.self, from: Data("\"\(text)\"".utf8))
        }
        func encoded(_ value: some Encodable) throws -> String {
            let encoder = JSONEncoder()
            encoder.outputFormatting = .withoutEscapingSlashes
            return String(decoding: try encoder.encode(value), as: UTF8.self)
        }
        for text in ["10.0.0.1", "2001:db8::1", "::ffff:192.0.2.1"] {
            let address = try decode(IPAddress.self, text)
            #expect(address == addr(text))
            #expect(try encoded(address) == "\"\(text)\"")
        }
        for text in ["TCP/443", "UDP", "ICMPv6", "GRE", "IP/99", "other"] {
            #expect(try encoded(try decode(Service.self, text)) == "\"\(text)\"")
        }
        for direction in Direction.allCases {
            #expect(try decode(Direction.self, direction.label) == direction)
            #expect(try encoded(direction) == "\"\(direction.label)\"")
        }
        let wrong: [(any Decodable.Type, String, String)] = [
            (IPAddress.self, "10.0.0.256", "not an IP address: 10.0.0.256"),
            (Service.self, "TCP/99999", "not a service label: TCP/99999"),
            (Direction.self, "0", "not a direction (\"in\" or \"out\"): 0"),
        ]
        for (type, text, message) in wrong {
            do {
                _ = try decode(type, text)
                Issue.record("\(text) was read as a \(type)")
            } catch let DecodingError.dataCorrupted(context) {
                #expect(context.debugDescription == message)
            }
        }
    }

    /// A record built by hand: IPv6 and IPv4-mapped clients, `other` and numbered services,
    /// large numbers.
    static let handMade = WindowRecord(
        start: Agg.t0, end: Agg.t0 + Agg.w5, partial: false,
        in: Counts(packets: 20, bytes: 1 << 39), out: Counts(packets: 10, bytes: (1 << 39) - 1000),
        clients: [
            ClientRecord(ip: addr("2001:db8::1:0:0:1"), in: Counts(packets: 19, bytes: (1 << 39) - 1), out: Counts(packets: 9, bytes: (1 << 39) - 1500),
                         services: [
                            ServiceCounts(service: Service(label: "TCP/443")!, direction: .inbound, packets: 18, bytes: (1 << 39) - 2),
                            ServiceCounts(service: Service(label: "IP/0")!, direction: .inbound, packets: 1, bytes: 1),
                            ServiceCounts(service: .other, direction: .outbound, packets: 9, bytes: (1 << 39) - 1500),
                         ]),
            ClientRecord(ip: addr("::ffff:192.0.2.1"), in: Counts(packets: 1, bytes: 1), out: Counts(packets: 1, bytes: 500),
                         services: [ServiceCounts(service: Service(label: "SCTP/65535")!, direction: .outbound, packets: 1, bytes: 500),
                                    ServiceCounts(service: Service(label: "UDP")!, direction: .inbound, packets: 1, bytes: 1)]),
        ],
        other: OtherCounts(in: .zero, out: .zero, clients: 0),
        servers: [
            PartyRecord(ip: addr("10.0.0.1"), local: true, in: Counts(packets: 20, bytes: 1 << 39), out: Counts(packets: 7, bytes: 3000),
                        services: [ServiceCounts(service: Service(label: "TCP/443")!, direction: .inbound, packets: 20, bytes: 1 << 39)]),
        ],
        otherServers: OtherCounts(in: .zero, out: Counts(packets: 3, bytes: 77), clients: 2),
        nonIP: Counts(packets: 6, bytes: 500), malformed: MalformedCounts(packets: 4, bytes: 500, reasons: ["bad_version": 4]),
        latePackets: 3,
        capture: CaptureCounts(
            received: 40, kernelDropped: 1_000_000, interfaceDropped: 1, oversized: 2,
            interfaces: [InterfaceCounts(name: "eth0", received: 30, kernelDropped: 999_990, interfaceDropped: 1),
                         InterfaceCounts(name: "ens1f0\"quoted", received: 10, kernelDropped: 10)]),
        services: [ServiceCounts(service: Service(label: "ICMPv6")!, direction: .inbound, packets: 1, bytes: 64)])

    static let numbers: [UInt64] = [0, 1, 9, 10, 99, 100, 12_345, 1 << 32, (1 << 53) + 1, 10_000_000_000_000_000_000, .max]

    @Test(arguments: numbers)
    func numbersAreWrittenExactly(_ n: UInt64) throws {
        let r = WindowRecord(start: 0, end: Agg.w5, nonIP: Counts(packets: n), latePackets: n, capture: CaptureCounts(received: n))
        let j = try Self.ordered(r)
        #expect(j["packets"] == .number(String(n)))
        #expect(j["late_packets"] == .number(String(n)))
        #expect(j["capture"]?["received"] == .number(String(n)))
        #expect(r.jsonString.contains("\"late_packets\":\(n),"))
        let back = try JSONDecoder().decode(WindowRecord.self, from: Data(r.jsonBytes()))
        #expect(back.packets == n && back.latePackets == n && back.capture.received == n)
    }

    /// Every digit count, at its edges, and zero padding, through both sinks.
    @Test func decimalsAtEveryPowerOfTen() {
        var values: [UInt64] = [0, 1, .max, .max - 1]
        var power: UInt64 = 1
        for _ in 0..<20 {
            values += [power - 1, power, power + 1]
            if power <= UInt64.max / 10 { power *= 10 }
        }
        for value in values {
            for minimumWidth in [0, 1, 2, 4, 9, 20, 25] {
                let digits = String(value)
                let expected = String(repeating: "0", count: max(0, min(minimumWidth, 20) - digits.count)) + digits
                var array = [UInt8]()
                array.appendDecimal(value, minimumWidth: minimumWidth)
                var raw = RawByteBuffer(capacity: 8)
                raw.appendDecimal(value, minimumWidth: minimumWidth)
                #expect(String(decoding: array, as: UTF8.self) == expected)
                #expect(String(decoding: raw.bytes, as: UTF8.self) == expected)
                raw.deallocate()
            }
        }
    }

    @Test func stringsAreEscaped() throws {
        let labels = ["quote\"d", "back\\slash", "new\nline", "tab\tbed", "bell\u{07}", "nul\u{00}", "unit\u{1F}", "del\u{7F}",
                      "é", "🚀 rocket", "slash/", "</script>"]
        var reasons: [String: UInt64] = [:]
        for (i, label) in labels.enumerated() { reasons[label] = UInt64(i + 1) }
        let r = WindowRecord(start: 0, end: Agg.w5, malformed: MalformedCounts(packets: 78, bytes: 100, reasons: reasons))
        let bytes = r.jsonBytes()
        #expect(!bytes.contains { $0 < 0x20 }, "no raw control characters")
        #expect(String(validating: bytes, as: UTF8.self) != nil)
        let j = try Self.json(r)
        let parsed = try #require((j["malformed"] as? [String: Any])?["reasons"] as? [String: NSNumber])
        #expect(parsed.mapValues(\.uint64Value) == reasons)
        #expect(OrderedJSON.parse(bytes)?["malformed"]?["reasons"]?.keys.sorted() == labels.sorted())
        let back = try JSONDecoder().decode(WindowRecord.self, from: Data(bytes))
        #expect(back == r)
    }

    @Test func oneLineAndAppendable() throws {
        for r in Self.busyRecords() {
            let bytes = r.jsonBytes()
            #expect(!bytes.contains(0x0A) && !bytes.contains(0x0D))
            #expect(r.jsonString == String(decoding: bytes, as: UTF8.self))
            var buffer = Array("[1,".utf8)
            r.appendJSON(to: &buffer)
            #expect(buffer == Array("[1,".utf8) + bytes)
        }
    }

    @Test func designExampleDecodesAndReencodes() throws {
        let example = Data(Self.designExample.utf8)
        let r = try JSONDecoder().decode(WindowRecord.self, from: example)
        #expect(r.start == Timestamp.parse("2026-11-25T10:00:00Z"))
        #expect(r.end - r.start == Agg.w5)
        #expect(!r.partial)
        #expect(r.packets == 25 && r.bytes == 16080)
        #expect(r.clients.count == 1)
        #expect(r.clients.first?.ip == addr("198.51.100.7"))
        #expect(r.clients.first?.services.map(\.service.label) == ["TCP/443", "TCP/443"])
        #expect(r.nonIP == Counts(packets: 3, bytes: 180))
        #expect(r.capture.received == 25 && r.capture.dropped == 0)
        #expect(r.services.isEmpty && r.malformed.reasons.isEmpty)
        #expect(r.isConserved, "DESIGN's example is conserved")

        // Re-encoded, every key and value of the example is there, unchanged.
        let original = try JSONSerialization.jsonObject(with: example)
        let again = try JSONSerialization.jsonObject(with: Data(r.jsonBytes()))
        #expect(Self.contains(again, original), "\(r.jsonString)")
        #expect(try JSONDecoder().decode(WindowRecord.self, from: Data(r.jsonBytes())) == r)
    }

    /// Whether `json` has every key and value of `subset` (recursively; arrays element-wise).
    static func contains(_ json: Any, _ subset: Any) -> Bool {
        switch (json, subset) {
        case let (j as [String: Any], s as [String: Any]):
            return s.allSatisfy { key, value in j[key].map { contains($0, value) } ?? false }
        case let (j as [Any], s as [Any]):
            return j.count == s.count && zip(j, s).allSatisfy { contains($0, $1) }
        case let (j as String, s as String):
            return j == s
        case let (j as NSNumber, s as NSNumber):
            return j == s
        case let (j as Bool, s as Bool):
            return j == s
        case let (j as Int, s as Int):
            return j == s
        default:
            return false
        }
    }

    @Test(arguments: [
        #"{"start":"2026-11-25T10:00:00","end":"2026-11-25T10:00:05Z","partial":false,"packets":0,"bytes":0,"in":{"packets":0,"bytes":0},"out":{"packets":0,"bytes":0},"clients":[],"other":{"packets":0,"bytes":0,"clients":0},"non_ip":{"packets":0,"bytes":0},"malformed":{"packets":0,"bytes":0},"late_packets":0,"capture":{"received":0,"dropped":0}}"#,
        #"{"start":"2026-11-25T10:00:00Z","end":"2026-11-25T10:00:05Z","partial":false,"packets":0,"bytes":0,"in":{"packets":0,"bytes":0},"out":{"packets":0,"bytes":0},"clients":[{"ip":"300.1.1.1","in":{"packets":0,"bytes":0},"out":{"packets":0,"bytes":0},"services":[]}],"other":{"packets":0,"bytes":0,"clients":0},"non_ip":{"packets":0,"bytes":0},"malformed":{"packets":0,"bytes":0},"late_packets":0,"capture":{"received":0,"dropped":0}}"#,
        #"{"start":"2026-11-25T10:00:00Z","end":"2026-11-25T10:00:05Z","partial":false,"packets":0,"bytes":0,"in":{"packets":0,"bytes":0},"out":{"packets":0,"bytes":0},"clients":[{"ip":"10.0.0.1","in":{"packets":0,"bytes":0},"out":{"packets":0,"bytes":0},"services":[{"service":"TCP/0","direction":"in","packets":0,"bytes":0}]}],"other":{"packets":0,"bytes":0,"clients":0},"non_ip":{"packets":0,"bytes":0},"malformed":{"packets":0,"bytes":0},"late_packets":0,"capture":{"received":0,"dropped":0}}"#,
        #"{"start":"2026-11-25T10:00:00Z","end":"2026-11-25T10:00:05Z","partial":false,"packets":0,"bytes":0,"in":{"packets":0,"bytes":0},"out":{"packets":0,"bytes":0},"clients":[{"ip":"10.0.0.1","in":{"packets":0,"bytes":0},"out":{"packets":0,"bytes":0},"services":[{"service":"TCP/80","direction":"sideways","packets":0,"bytes":0}]}],"other":{"packets":0,"bytes":0,"clients":0},"non_ip":{"packets":0,"bytes":0},"malformed":{"packets":0,"bytes":0},"late_packets":0,"capture":{"received":0,"dropped":0}}"#,
        #"{"start":"2026-11-25T10:00:00Z","end":"2026-11-25T10:00:05Z","partial":false,"packets":-1,"bytes":0,"in":{"packets":0,"bytes":0},"out":{"packets":0,"bytes":0},"clients":[],"other":{"packets":0,"bytes":0,"clients":0},"non_ip":{"packets":0,"bytes":0},"malformed":{"packets":0,"bytes":0},"late_packets":0,"capture":{"received":0,"dropped":0}}"#,
    ])
    func decodingRejectsBadRecords(_ text: String) {
        #expect(throws: (any Error).self) { try JSONDecoder().decode(WindowRecord.self, from: Data(text.utf8)) }
    }

    /// A record handed on in pieces as it is rendered (`report`'s NDJSON) is, put back
    /// together, the record's JSON line; pieces end only before a party.
    @Test(arguments: [0, 1, 64, 4096, Int.max])
    func drainedLineIsTheRecordsJSON(drainPast: Int) {
        for record in Self.busyRecords() + [WindowFoldingTests.crowd(top: nil)] {
            let lines = RecordLineBuffer()
            var pieces: [[UInt8]] = []
            lines.append(record, drainPast: drainPast) { pieces.append(Array($0)) }
            let rest = lines.withUnsafeBytes { Array($0) }
            #expect(pieces.joined() + rest == record.jsonBytes() + [0x0A])
            if drainPast == Int.max { #expect(pieces.isEmpty) }
            // The 300 clients' record (27 kB) is handed on in pieces at every bound here.
            if drainPast <= 4096 && record.clients.count == 300 { #expect(pieces.count > 1) }
            for piece in pieces { #expect(piece.last == UInt8(ascii: "[") || piece.last == UInt8(ascii: "}")) }
        }
    }

    /// The labels kept while a record is written are the labels: for thousands of services
    /// of every kind (so many share a slot of the cache and replace each other), each
    /// written several times in a shuffled order.
    @Test func keptServiceLabelsAreTheLabels() {
        var rng = SplitMix64(seed: 443)
        // The longest label a raw value names (`ICMPv6/65535`, 12 bytes) and raw values with
        // the bits above the port flag set.
        var services: [Service] = [.other, Service(rawValue: 1 << 24 | 58 << 16 | 65535), Service(rawValue: 0xFFFF_FFFF)]
        for proto: UInt8 in [1, 2, 6, 17, 47, 50, 51, 58, 89, 132, 255] {
            services.append(Service(ipProtocol: proto))
        }
        for _ in 0..<3000 {
            let proto: UInt8 = [6, 17, 132][Int(rng.next() % 3)]
            services.append(Service(ipProtocol: proto, port: UInt16(truncatingIfNeeded: rng.next())))
        }
        var order = services + services + services
        for i in order.indices.reversed() { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        var out = RawByteBuffer(capacity: 64)
        defer { out.deallocate() }
        let labels = ServiceLabelCache()
        for service in order {
            labels.append(service, to: &out)
            out.append(UInt8(ascii: ","))
        }
        let written = String(decoding: out.bytes, as: UTF8.self).split(separator: ",", omittingEmptySubsequences: false).dropLast().map(String.init)
        let expected = order.map(\.label)
        #expect(written.count == expected.count)
        let wrong = zip(written, expected).filter { $0 != $1 }
        #expect(wrong.isEmpty, "\(wrong.count) labels differ, first \(wrong.prefix(3))")
    }
}
