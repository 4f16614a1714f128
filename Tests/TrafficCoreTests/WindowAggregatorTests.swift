import Testing
@testable import TrafficCore
import TrafficTestSupport

/// Shared pieces of the aggregator tests.
enum Agg {
    /// 2023-11-14T22:13:20Z: a multiple of 5 s (and of 1 s and 500 ms), 20 s past a minute.
    static let t0: Int64 = 1_700_000_000 * nanosPerSecond
    static let w5: Int64 = 5 * nanosPerSecond

    static let local = LocalNetworks([
        NetworkPrefix(address: IPAddress(ipv4: 0x0A00_0000), length: 8),
        NetworkPrefix(address: IPAddress(ipv6High: 0x2001_0DB8_0001_0000, low: 0), length: 48),
    ])
    static let server4 = addr("10.0.0.1")
    static let server6 = addr("2001:db8:1::1")

    static func config(window: Int64 = w5, maxClients: Int = 100_000, maxFlows: Int? = nil, top: Int? = nil)
        -> WindowAggregator.Configuration {
        .init(windowLength: window, localNetworks: local, maxClients: maxClients, maxFlows: maxFlows, top: top)
    }

    /// A packet that DESIGN.md's rules attribute to (client, server, direction, service),
    /// the server being `a.server` or else the local server of the client's family:
    /// in = client:ephemeral -> server:port (an ICMP request), out = server:port ->
    /// client:ephemeral (an ICMP reply). Without ports the destination is the server, so
    /// such a packet only goes in (towards a local server).
    static func packet(for a: Attribution, ephemeral: UInt16 = 50000) -> DecodedPacket {
        let server = a.server ?? (a.client.isIPv6 ? server6 : server4)
        let proto = a.service.ipProtocol
        let port = a.service.port
        let later = port == nil && Service.hasPorts(proto)
        let icmp = proto == IPProtocol.icmp || proto == IPProtocol.icmpv6
        precondition(a.direction == .inbound || port != nil || icmp, "no packet goes out to a client without ports")
        if a.direction == .inbound {
            return TrafficCoreTests.packet(a.client, port.map { _ in ephemeral }, server, port, proto: proto, laterFragment: later)
        }
        return TrafficCoreTests.packet(server, port, a.client, port.map { _ in ephemeral }, proto: proto, laterFragment: later, reply: icmp)
    }

    static func attribution(_ client: String, _ direction: Direction, _ service: String) -> Attribution {
        Attribution(client: addr(client), direction: direction, service: Service(label: service)!)
    }

    /// Adds a packet attributed to (client, direction, service).
    static func add(_ agg: WindowAggregator, _ client: String, _ direction: Direction = .inbound, _ service: String = "TCP/443",
                    at t: Int64, bytes: Int) {
        agg.add(packet(for: attribution(client, direction, service)), timestamp: t, wireLength: bytes)
    }

    static func client(_ r: WindowRecord, _ ip: String) -> ClientRecord? {
        r.clients.first { $0.ip == addr(ip) }
    }
}

@Suite("WindowAggregator: window clock")
struct WindowClockTests {
    typealias A = Agg
    static let t0 = Agg.t0

    static let alignmentCases: [(Int64, Int64, Int64)] = [
        (Agg.w5, Agg.t0 + seconds(3, ms: 200), Agg.t0),
        (Agg.w5, Agg.t0 + seconds(5) - 1, Agg.t0),
        (Agg.w5, Agg.t0 + seconds(5), Agg.t0 + seconds(5)),
        (Agg.w5, Agg.t0 - 1, Agg.t0 - seconds(5)),
        (seconds(1), Agg.t0 + seconds(4) - 1, Agg.t0 + seconds(3)),
        (seconds(1), Agg.t0 + seconds(3), Agg.t0 + seconds(3)),
        (seconds(0, ms: 500), Agg.t0 + seconds(3, ms: 700), Agg.t0 + seconds(3, ms: 500)),
        (seconds(0, ms: 500), Agg.t0 + seconds(3, ms: 500) - 1, Agg.t0 + seconds(3)),
        (seconds(0, ms: 500), Agg.t0 + seconds(3, ms: 500), Agg.t0 + seconds(3, ms: 500)),
        (seconds(60), Agg.t0, Agg.t0 - seconds(20)),
        (seconds(60), Agg.t0 - seconds(20) - 1, Agg.t0 - seconds(80)),
        (seconds(60), Agg.t0 + seconds(40), Agg.t0 + seconds(40)),
        (seconds(7), seconds(100), seconds(98)),
        (Agg.w5, 0, 0),
        (Agg.w5, -1, -seconds(5)),
        (Agg.w5, -seconds(5), -seconds(5)),
    ]

    @Test(arguments: alignmentCases)
    func windowsStartAtMultiplesOfTheirLength(window: Int64, timestamp: Int64, expectedStart: Int64) throws {
        let (agg, out) = makeAggregator(A.config(window: window))
        A.add(agg, "198.51.100.7", at: timestamp, bytes: 100)
        #expect(agg.openWindowStart == expectedStart)
        agg.finish()
        let r = try #require(out.records.first)
        #expect(out.records.count == 1)
        #expect(r.start == expectedStart)
        #expect(r.end == expectedStart + window)
        #expect(r.start % window == 0)
        #expect(r.packets == 1)
    }

    @Test func packetAtTheEndBelongsToTheNextWindow() {
        let (agg, out) = makeAggregator(A.config())
        A.add(agg, "198.51.100.7", at: Self.t0, bytes: 100)
        A.add(agg, "198.51.100.7", at: Self.t0 + A.w5 - 1, bytes: 200)
        A.add(agg, "198.51.100.7", at: Self.t0 + A.w5, bytes: 300)
        A.add(agg, "198.51.100.7", at: Self.t0 + seconds(9, ms: 900), bytes: 400)
        #expect(out.records.count == 1, "the first window closes when a packet of the next arrives")
        agg.finish()
        #expect(out.records.map(\.start) == [Self.t0, Self.t0 + A.w5])
        #expect(out.records.map(\.packets) == [2, 2])
        #expect(out.records.map(\.bytes) == [300, 700])
        #expect(out.records.map(\.partial) == [false, true])
        #expect(out.records.allSatisfy { $0.isConserved })
    }

    @Test func latePacketsGoToTheOpenWindow() throws {
        let (agg, out) = makeAggregator(A.config())
        A.add(agg, "198.51.100.7", at: Self.t0 + seconds(1), bytes: 100)
        A.add(agg, "198.51.100.8", at: Self.t0 + seconds(6), bytes: 200)   // closes [t0, t0+5)
        A.add(agg, "198.51.100.9", at: Self.t0 + seconds(2), bytes: 50)    // late
        agg.add(nonIPPacket(), timestamp: Self.t0 + seconds(3), wireLength: 25)  // late too, whatever its bucket
        A.add(agg, "198.51.100.8", at: Self.t0 + seconds(7), bytes: 10)
        agg.finish()
        #expect(out.records.count == 2)
        let first = out.records[0], second = out.records[1]
        #expect(first.packets == 1 && first.bytes == 100 && first.latePackets == 0)
        #expect(second.start == Self.t0 + A.w5)
        #expect(second.packets == 4 && second.bytes == 285)
        #expect(second.latePackets == 2)
        #expect(second.nonIP == Counts(packets: 1, bytes: 25))
        #expect(A.client(second, "198.51.100.9")?.in == Counts(packets: 1, bytes: 50))
        #expect(second.isConserved)
    }

    @Test func reorderingInsideTheOpenWindowIsNotLate() {
        let (agg, out) = makeAggregator(A.config())
        A.add(agg, "198.51.100.7", at: Self.t0 + seconds(3), bytes: 100)
        A.add(agg, "198.51.100.7", at: Self.t0 + seconds(1), bytes: 100)
        A.add(agg, "198.51.100.7", at: Self.t0, bytes: 100)
        agg.finish()
        #expect(out.records.count == 1)
        #expect(out.records[0].latePackets == 0)
        #expect(out.records[0].packets == 3)
    }

    @Test func finishMarksOnlyTheLastWindowPartial() {
        let (agg, out) = makeAggregator(A.config())
        agg.finish()
        #expect(out.records.isEmpty, "nothing open, nothing to close")
        for i in 0..<3 { A.add(agg, "198.51.100.7", at: Self.t0 + Int64(i) * A.w5 + seconds(1), bytes: 100) }
        agg.finish()
        agg.finish()
        #expect(out.records.map(\.partial) == [false, false, true])
        #expect(out.records.map(\.start) == [Self.t0, Self.t0 + A.w5, Self.t0 + 2 * A.w5])
        #expect(agg.openWindowStart == nil)
        #expect(agg.snapshot() == nil)
    }

    @Test func advanceWithEmptyWindowsCoversQuietPeriods() throws {
        let (agg, out) = makeAggregator(A.config())
        agg.advance(to: Self.t0 + seconds(2), emitEmpty: true)
        #expect(out.records.isEmpty)
        #expect(agg.openWindowStart == Self.t0, "the live capture opens the window it starts in")
        A.add(agg, "198.51.100.7", at: Self.t0 + seconds(3), bytes: 100)
        agg.advance(to: Self.t0 + A.w5 - 1, emitEmpty: true)
        #expect(out.records.isEmpty)
        agg.advance(to: Self.t0 + A.w5, emitEmpty: true)
        #expect(out.records.count == 1)
        #expect(agg.openWindowStart == Self.t0 + A.w5)
        agg.advance(to: Self.t0 + seconds(17), emitEmpty: true)
        #expect(out.records.count == 3)
        #expect(agg.openWindowStart == Self.t0 + seconds(15))
        A.add(agg, "198.51.100.7", at: Self.t0 + seconds(16), bytes: 70)
        agg.finish()

        let r = out.records
        #expect(r.map(\.start) == [Self.t0, Self.t0 + seconds(5), Self.t0 + seconds(10), Self.t0 + seconds(15)])
        #expect(r.map(\.end) == r.map { $0.start + A.w5 })
        // The first window started mid-window (partial), the quiet ones ran their length, the last was cut.
        #expect(r.map(\.partial) == [true, false, false, true])
        #expect(r.map(\.packets) == [1, 0, 0, 1])
        #expect(r.map(\.bytes) == [100, 0, 0, 70])
        for empty in r[1...2] {
            #expect(empty.clients.isEmpty && empty.services.isEmpty)
            #expect(empty.in == .zero && empty.out == .zero && empty.capture.received == 0)
        }
        #expect(r.allSatisfy { $0.isConserved })
    }

    @Test func afterALongQuietPeriodTheOpenWindowIsTheCurrentOne() {
        let (agg, out) = makeAggregator(A.config())
        A.add(agg, "198.51.100.7", at: Self.t0 + seconds(1), bytes: 100)
        let now = Self.t0 + seconds(86_402)
        agg.advance(to: now, emitEmpty: true)
        #expect(agg.openWindowStart == Self.t0 + seconds(86_400))
        agg.finish()
        let starts = out.records.map(\.start)
        #expect(out.records.first?.packets == 1)
        #expect(starts.last == Self.t0 + seconds(86_400))
        #expect(zip(starts, starts.dropFirst()).allSatisfy { $0 < $1 })
        #expect(starts.allSatisfy { $0 % A.w5 == 0 })
        #expect(out.records.allSatisfy { $0.isConserved })
    }

    @Test func advanceWithoutEmptyWindowsOnlyCloses() {
        let (agg, out) = makeAggregator(A.config())
        agg.advance(to: Self.t0, emitEmpty: false)
        #expect(agg.openWindowStart == nil)
        #expect(agg.snapshot() == nil)
        A.add(agg, "198.51.100.7", at: Self.t0 + seconds(1), bytes: 100)
        agg.advance(to: Self.t0 + seconds(4), emitEmpty: false)
        #expect(out.records.isEmpty && agg.openWindowStart == Self.t0)
        agg.advance(to: Self.t0 + seconds(7), emitEmpty: false)
        #expect(out.records.count == 1)
        #expect(agg.openWindowStart == nil)
        agg.advance(to: Self.t0 + seconds(30), emitEmpty: false)
        #expect(out.records.count == 1, "no empty windows without emitEmpty")
        A.add(agg, "198.51.100.7", at: Self.t0 + seconds(31), bytes: 100)
        agg.finish()
        #expect(out.records.map(\.start) == [Self.t0, Self.t0 + seconds(30)])
        #expect(out.records.map(\.partial) == [false, true])
    }

    /// A packet older than the window that just closed, arriving when no window is open
    /// (after `advance(emitEmpty: false)`), is late: it must not bring the closed window back
    /// as a second record with the same start.
    @Test func aPacketForAnAlreadyClosedWindowDoesNotReopenIt() {
        let (agg, out) = makeAggregator(A.config())
        A.add(agg, "198.51.100.7", at: Self.t0 + seconds(1), bytes: 100)
        agg.advance(to: Self.t0 + seconds(7), emitEmpty: false)
        #expect(out.records.count == 1)
        A.add(agg, "198.51.100.7", at: Self.t0 + seconds(2), bytes: 100)
        agg.finish()
        let starts = out.records.map(\.start)
        #expect(Set(starts).count == starts.count, "window starts emitted: \(starts.map(Timestamp.rfc3339))")
        #expect(zip(starts, starts.dropFirst()).allSatisfy { $0 < $1 })
        #expect(out.records.map(\.packets).reduce(0, +) == 2)
        #expect(out.records.map(\.latePackets).reduce(0, +) == 1)
    }

    @Test func eventTimeIsTheLatestPacketTime() {
        let (agg, _) = makeAggregator(A.config())
        A.add(agg, "198.51.100.7", at: Self.t0 + seconds(0, ms: 100), bytes: 100)
        A.add(agg, "198.51.100.7", at: Self.t0 + seconds(1), bytes: 100)
        A.add(agg, "198.51.100.7", at: Self.t0 + seconds(4, ms: 900), bytes: 100)
        #expect(agg.eventTime == Self.t0 + seconds(4, ms: 900))
        A.add(agg, "198.51.100.7", at: Self.t0 + seconds(2), bytes: 100)
        #expect(agg.eventTime == Self.t0 + seconds(4, ms: 900), "an older packet does not move the clock back")
        agg.add(A.attribution("198.51.100.7", .inbound, "TCP/8000"), timestamp: Self.t0 + seconds(6), wireLength: 10)
        #expect(agg.eventTime == Self.t0 + seconds(6))
    }

    @Test func eachWindowStartsEmptyAndHasItsOwnClientBudget() {
        let (agg, out) = makeAggregator(A.config(maxClients: 1))
        A.add(agg, "198.51.100.1", at: Self.t0 + seconds(1), bytes: 100)
        A.add(agg, "198.51.100.2", at: Self.t0 + seconds(2), bytes: 100)      // over the budget: other
        A.add(agg, "198.51.100.2", at: Self.t0 + seconds(6), bytes: 300)      // new window: tracked
        agg.add(malformedPacket(.truncatedIP), timestamp: Self.t0 + seconds(7), wireLength: 30)
        A.add(agg, "198.51.100.3", at: Self.t0 + seconds(11), bytes: 500)
        agg.finish()
        let r = out.records
        #expect(r.count == 3)
        #expect(r[0].clients.map(\.ip) == [addr("198.51.100.1")])
        #expect(r[0].other == OtherCounts(in: Counts(packets: 1, bytes: 100), out: .zero, clients: 1))
        #expect(r[1].clients.map(\.ip) == [addr("198.51.100.2")])
        #expect(r[1].other == OtherCounts())
        #expect(r[1].malformed.packets == 1 && r[1].malformed.reasons == ["truncated_ip": 1])
        #expect(r[2].clients.map(\.ip) == [addr("198.51.100.3")])
        #expect(r[2].malformed.packets == 0 && r[2].malformed.reasons.isEmpty)
        #expect(r.allSatisfy { $0.isConserved })
    }
}

@Suite("WindowAggregator: counting")
struct WindowCountingTests {
    /// The closed-form size bucket agrees with the bounds, for every length up to past jumbo.
    @Test func sizeBucketsFollowTheirBounds() {
        #expect(ProtocolTallies.sizeBuckets == ProtocolTallies.sizeBounds.count + 1)
        for bytes in UInt64(0)...20_000 {
            let expected = ProtocolTallies.sizeBounds.firstIndex { bytes <= $0 } ?? ProtocolTallies.sizeBounds.count
            if ProtocolTallies.sizeBucket(bytes) != expected {
                Issue.record("\(bytes) bytes: bucket \(ProtocolTallies.sizeBucket(bytes)), bounds say \(expected)")
                return
            }
        }
    }

    typealias A = Agg
    static let t0 = Agg.t0

    /// (client, direction, service, bytes) in arrival order, all in one window.
    typealias Traffic = [(String, Direction, String, Int)]

    static func run(_ traffic: Traffic, _ config: WindowAggregator.Configuration) throws -> WindowRecord {
        let (agg, out) = makeAggregator(config)
        for (i, (client, direction, service, bytes)) in traffic.enumerated() {
            A.add(agg, client, direction, service, at: t0 + Int64(i) * 1_000_000, bytes: bytes)
        }
        agg.finish()
        #expect(out.records.count == 1)
        return try #require(out.records.first)
    }

    /// Per-client (in, out) totals and first-seen order, from the traffic list.
    static func totals(_ traffic: Traffic) -> (order: [IPAddress], counts: [IPAddress: (in: Counts, out: Counts)]) {
        var order: [IPAddress] = []
        var counts: [IPAddress: (in: Counts, out: Counts)] = [:]
        for (client, direction, _, bytes) in traffic {
            let ip = addr(client)
            if counts[ip] == nil { order.append(ip); counts[ip] = (.zero, .zero) }
            if direction == .inbound { counts[ip]!.in.add(bytes: UInt64(bytes)) } else { counts[ip]!.out.add(bytes: UInt64(bytes)) }
        }
        return (order, counts)
    }

    static let overflowTraffic: Traffic = [
        ("198.51.100.1", .inbound, "TCP/443", 100),
        ("198.51.100.2", .inbound, "TCP/443", 200),
        ("198.51.100.3", .outbound, "TCP/22", 300),
        ("198.51.100.4", .inbound, "UDP/53", 40),     // past --max-clients 3 from here on
        ("198.51.100.5", .inbound, "UDP/53", 50),
        ("198.51.100.4", .inbound, "UDP/53", 60),
        ("198.51.100.1", .inbound, "TCP/443", 1000),  // tracked before the overflow: still tracked
        ("2001:db8:2::6", .inbound, "TCP/443", 70),
        ("198.51.100.7", .inbound, "ICMP", 80),
        ("198.51.100.2", .outbound, "TCP/443", 5),
    ]

    @Test func maxClientsSendsLaterNewClientsToOther() throws {
        let r = try Self.run(Self.overflowTraffic, A.config(maxClients: 3))
        let (order, counts) = Self.totals(Self.overflowTraffic)
        let tracked = Array(order.prefix(3)), overflow = Array(order.dropFirst(3))
        #expect(Set(r.clients.map(\.ip)) == Set(tracked))
        for c in r.clients {
            #expect(c.in == counts[c.ip]!.in && c.out == counts[c.ip]!.out, "\(c.ip)")
        }
        let overflowTotal = overflow.map { counts[$0]!.in + counts[$0]!.out }.reduce(Counts.zero, +)
        #expect(r.other.packets == overflowTotal.packets)
        #expect(r.other.bytes == overflowTotal.bytes)
        #expect(r.other.in == overflow.map { counts[$0]!.in }.reduce(Counts.zero, +))
        #expect(r.other.out == overflow.map { counts[$0]!.out }.reduce(Counts.zero, +))
        #expect(r.other.clients == UInt64(overflow.count))
        let all = Self.overflowTraffic
        #expect(r.packets == UInt64(all.count))
        #expect(r.bytes == UInt64(all.map(\.3).reduce(0, +)))
        #expect(r.in.bytes == UInt64(all.filter { $0.1 == .inbound }.map(\.3).reduce(0, +)))
        #expect(r.out.bytes == UInt64(all.filter { $0.1 == .outbound }.map(\.3).reduce(0, +)))
        #expect(r.isConserved)
        // The window's services still see the overflow clients' traffic under its real service.
        let udp = r.services.first { $0.service.label == "UDP/53" && $0.direction == .inbound }
        #expect(udp == ServiceCounts(service: Service(label: "UDP/53")!, direction: .inbound, packets: 3, bytes: 150))
        let icmp = r.services.first { $0.service.label == "ICMP" }
        #expect(icmp?.bytes == 80)
    }

    @Test func maxClientsZeroPutsAllIPTrafficInOther() throws {
        let (agg, out) = makeAggregator(A.config(maxClients: 0))
        A.add(agg, "198.51.100.1", at: Self.t0, bytes: 100)
        A.add(agg, "198.51.100.2", .outbound, "UDP/53", at: Self.t0 + 1, bytes: 200)
        agg.add(nonIPPacket(), timestamp: Self.t0 + 2, wireLength: 60)
        agg.finish()
        let r = try #require(out.records.first)
        #expect(r.clients.isEmpty)
        #expect(r.other == OtherCounts(in: Counts(packets: 1, bytes: 100), out: Counts(packets: 1, bytes: 200), clients: 2))
        #expect(r.nonIP == Counts(packets: 1, bytes: 60))
        #expect(r.in == Counts(packets: 1, bytes: 100) && r.out == Counts(packets: 1, bytes: 200))
        #expect(r.isConserved)
    }

    @Test(arguments: [1, 2, 3, 5, 8, 13, 20])
    func otherCountsDistinctOverflowClientsExactly(overflowClients: Int) throws {
        let (agg, out) = makeAggregator(A.config(maxClients: 1))
        A.add(agg, "203.0.113.1", at: Self.t0, bytes: 100)
        var t = Self.t0
        for round in 0..<3 {
            for i in 0..<overflowClients {
                t += 1000
                // Half IPv4, half IPv6; every client three times.
                let client = i % 2 == 0 ? "198.51.100.\(i + 1)" : "2001:db8:77::\(i + 1)"
                A.add(agg, client, round == 1 ? .outbound : .inbound, "TCP/443", at: t, bytes: 10)
            }
        }
        agg.finish()
        let r = try #require(out.records.first)
        #expect(r.other.clients == UInt64(overflowClients))
        #expect(r.other.in == Counts(packets: UInt64(2 * overflowClients), bytes: UInt64(20 * overflowClients)))
        #expect(r.other.out == Counts(packets: UInt64(overflowClients), bytes: UInt64(10 * overflowClients)))
        #expect(r.isConserved)
    }

    /// `OtherCounts.clients`: exact for the clients past --max-clients up to 4,096 of them,
    /// an estimate (HyperLogLog, about 1.6%) beyond.
    @Test(arguments: [60, 100, 250, 1000, 4096, 4097, 6000])
    func otherCountsOverflowClientsExactlyUpTo4096(overflowClients: Int) throws {
        let (agg, out) = makeAggregator(A.config(maxClients: 1))
        A.add(agg, "203.0.113.1", at: Self.t0, bytes: 100)
        for round in 0..<2 {
            for i in 0..<overflowClients {
                let client = IPAddress(ipv4: 0x6440_0000 | UInt32(i + 1))   // 100.64.0.1, 100.64.0.2, ...
                agg.add(A.packet(for: Attribution(client: client, direction: round == 0 ? .inbound : .outbound,
                                                  service: Service(ipProtocol: 6, port: 443))),
                        timestamp: Self.t0 + Int64(i + 1), wireLength: 10)
            }
        }
        agg.finish()
        let r = try #require(out.records.first)
        #expect(r.other.packets == UInt64(2 * overflowClients))
        #expect(r.other.in.packets == UInt64(overflowClients) && r.other.out.packets == UInt64(overflowClients))
        if overflowClients <= 4096 {
            #expect(r.other.clients == UInt64(overflowClients))
        } else {
            #expect(r.other.clients >= 4096)
            #expect(abs(Double(r.other.clients) - Double(overflowClients)) / Double(overflowClients) < 0.05,
                    "estimate \(r.other.clients)")
        }
        #expect(r.isConserved)
    }

    @Test func sameBitsInTwoFamiliesAreTwoClients() throws {
        let r = try Self.run([("1.2.3.4", .inbound, "TCP/443", 100), ("::102:304", .inbound, "TCP/443", 200)], A.config())
        #expect(r.clients.map(\.ip) == [addr("::102:304"), addr("1.2.3.4")])
        #expect(r.clients.map(\.in.bytes) == [200, 100])
    }

    static let fiveClients: Traffic = [
        ("198.51.100.3", .inbound, "TCP/443", 300),
        ("198.51.100.1", .inbound, "TCP/443", 500),
        ("198.51.100.5", .outbound, "UDP/53", 100),
        ("198.51.100.2", .inbound, "TCP/80", 400),
        ("198.51.100.4", .inbound, "ICMP", 200),
    ]

    @Test(arguments: [0, 1, 2, 4, 5, 10])
    func topListsTheBiggestClientsAndFoldsTheRest(top: Int) throws {
        let r = try Self.run(Self.fiveClients, A.config(top: top))
        let byBytes = Self.fiveClients.sorted { $0.3 > $1.3 }
        let listed = Array(byBytes.prefix(top)), folded = Array(byBytes.dropFirst(top))
        #expect(r.clients.map(\.ip) == listed.map { addr($0.0) })
        #expect(r.other.packets == UInt64(folded.count))
        #expect(r.other.bytes == UInt64(folded.map(\.3).reduce(0, +)))
        #expect(r.other.clients == UInt64(folded.count))
        #expect(r.packets == 5 && r.bytes == 1500)
        #expect(r.isConserved)
    }

    @Test func topAndMaxClientsTogether() throws {
        // Tracked: the first three (300, 500, 100 bytes); listed: the two biggest of those.
        let r = try Self.run(Self.fiveClients, A.config(maxClients: 3, top: 2))
        #expect(r.clients.map(\.ip) == [addr("198.51.100.1"), addr("198.51.100.3")])
        // .5 (100, out) folded; .2 (400, in) and .4 (200, in) past --max-clients.
        #expect(r.other == OtherCounts(in: Counts(packets: 2, bytes: 600), out: Counts(packets: 1, bytes: 100), clients: 3))
        #expect(r.isConserved)
    }

    @Test func topFoldsServicesPerDirection() throws {
        let traffic: Traffic = [
            ("198.51.100.9", .inbound, "TCP/443", 1000),
            ("198.51.100.9", .inbound, "TCP/80", 500),
            ("198.51.100.9", .outbound, "TCP/22", 300),
            ("198.51.100.9", .inbound, "UDP/53", 100),
            ("198.51.100.9", .inbound, "UDP/53", 20),
        ]
        let r = try Self.run(traffic, A.config(top: 2))
        let c = try #require(r.clients.first)
        let s = c.services
        let expectedListed = [
            ServiceCounts(service: Service(label: "TCP/443")!, direction: .inbound, packets: 1, bytes: 1000),
            ServiceCounts(service: Service(label: "TCP/80")!, direction: .inbound, packets: 1, bytes: 500),
        ]
        let expectedOther: Set = [
            ServiceCounts(service: .other, direction: .inbound, packets: 2, bytes: 120),
            ServiceCounts(service: .other, direction: .outbound, packets: 1, bytes: 300),
        ]
        #expect(Array(s.prefix(2)) == expectedListed)
        #expect(Set(s.dropFirst(2)) == expectedOther)
        #expect(s.count == 4)
        // The window's services fold the same way (one client here).
        #expect(Array(r.services.prefix(2)) == expectedListed)
        #expect(Set(r.services.dropFirst(2)) == expectedOther)
        #expect(c.in == Counts(packets: 4, bytes: 1620) && c.out == Counts(packets: 1, bytes: 300))
        #expect(r.isConserved)
    }

    @Test func clientsAreSortedByTotalBytesDescending() throws {
        let traffic: Traffic = [
            ("198.51.100.1", .inbound, "TCP/443", 100), ("198.51.100.1", .outbound, "TCP/443", 250),  // 350
            ("198.51.100.2", .inbound, "TCP/80", 300),                                               // 300
            ("2001:db8:2::3", .outbound, "UDP/53", 400),                                              // 400
            ("198.51.100.4", .inbound, "ICMP", 10),                                                  // 10
            ("198.51.100.5", .inbound, "TCP/443", 20), ("198.51.100.5", .inbound, "TCP/443", 20),   // 40
        ]
        let r = try Self.run(traffic, A.config())
        #expect(r.clients.map(\.ip.description) == ["2001:db8:2::3", "198.51.100.1", "198.51.100.2", "198.51.100.5", "198.51.100.4"])
        let (_, counts) = Self.totals(traffic)
        for c in r.clients {
            #expect(c.in == counts[c.ip]!.in)
            #expect(c.out == counts[c.ip]!.out)
            #expect(c.total == c.in + c.out)
        }
        #expect(A.client(r, "198.51.100.5")?.services == [
            ServiceCounts(service: Service(label: "TCP/443")!, direction: .inbound, packets: 2, bytes: 40)])
        #expect(r.isConserved)
    }

    @Test func maxFlowsFoldsNewServicesOfTrackedClientsButKeepsTheirTotals() throws {
        let traffic: Traffic = [
            ("198.51.100.1", .inbound, "TCP/443", 1000),
            ("198.51.100.1", .inbound, "TCP/80", 500),      // two flows: the cap
            ("198.51.100.1", .inbound, "TCP/22", 100),      // new service past the cap: other (in)
            ("198.51.100.1", .outbound, "UDP/53", 60),      // other (out)
            ("198.51.100.1", .inbound, "TCP/443", 1000),    // an existing flow keeps counting
            ("198.51.100.2", .inbound, "TCP/443", 70),      // a new (tracked) client, service past the cap
            ("198.51.100.1", .inbound, "ICMP", 5),          // other (in) again
        ]
        let r = try Self.run(traffic, A.config(maxFlows: 2))
        #expect(r.clients.map(\.ip) == [addr("198.51.100.1"), addr("198.51.100.2")])
        let a = try #require(A.client(r, "198.51.100.1"))
        #expect(a.in == Counts(packets: 5, bytes: 2605))
        #expect(a.out == Counts(packets: 1, bytes: 60))
        #expect(a.services == [
            ServiceCounts(service: Service(label: "TCP/443")!, direction: .inbound, packets: 2, bytes: 2000),
            ServiceCounts(service: Service(label: "TCP/80")!, direction: .inbound, packets: 1, bytes: 500),
            ServiceCounts(service: .other, direction: .inbound, packets: 2, bytes: 105),
            ServiceCounts(service: .other, direction: .outbound, packets: 1, bytes: 60),
        ])
        let b = try #require(A.client(r, "198.51.100.2"))
        #expect(b.in == Counts(packets: 1, bytes: 70))
        #expect(b.services == [ServiceCounts(service: .other, direction: .inbound, packets: 1, bytes: 70)])
        #expect(r.other == OtherCounts())
        #expect(r.isConserved)
    }

    @Test func nonIPAndMalformedSitOutsideInAndOut() throws {
        let (agg, out) = makeAggregator(A.config())
        let reasons: [(MalformedReason, Int)] = [(.truncatedLink, 2), (.badVersion, 1), (.truncatedTransport, 3), (.badHeaderLength, 1)]
        var t = Self.t0, malformedBytes: UInt64 = 0, malformedPackets: UInt64 = 0
        for (reason, n) in reasons {
            for i in 0..<n {
                t += 1
                agg.add(malformedPacket(reason), timestamp: t, wireLength: 50 + i)
                malformedBytes += UInt64(50 + i)
                malformedPackets += 1
            }
        }
        for _ in 0..<4 { t += 1; agg.add(nonIPPacket(), timestamp: t, wireLength: 60) }
        A.add(agg, "198.51.100.1", at: t + 1, bytes: 1000)
        agg.finish()
        let r = try #require(out.records.first)
        #expect(r.malformed.packets == malformedPackets && r.malformed.bytes == malformedBytes)
        #expect(r.malformed.reasons == ["truncated_link": 2, "bad_version": 1, "truncated_transport": 3, "bad_header_length": 1])
        #expect(r.nonIP == Counts(packets: 4, bytes: 240))
        #expect(r.in == Counts(packets: 1, bytes: 1000) && r.out == .zero)
        #expect(r.packets == malformedPackets + 5)
        #expect(r.capture.received == r.packets)
        #expect(r.isConserved)
    }

    @Test func injectsCountLikePacketsButNotAsReceived() throws {
        let (agg, out) = makeAggregator(A.config())
        A.add(agg, "198.51.100.1", at: Self.t0 + seconds(1), bytes: 100)
        agg.add(nonIPPacket(), timestamp: Self.t0 + seconds(1), wireLength: 60)
        agg.add(malformedPacket(.badVersion), timestamp: Self.t0 + seconds(2), wireLength: 70)
        let inject = A.attribution("203.0.113.10", .inbound, "TCP/8000")
        agg.add(inject, timestamp: Self.t0 + seconds(2), wireLength: 1200)
        agg.add(inject, timestamp: Self.t0 + seconds(3), wireLength: 1200)
        agg.add(A.attribution("203.0.113.10", .outbound, "TCP/8000"), timestamp: Self.t0 + seconds(4), wireLength: 300)
        // An inject's timestamp picks its window like a packet's.
        agg.add(inject, timestamp: Self.t0 + seconds(7), wireLength: 5)
        agg.finish()
        #expect(out.records.count == 2)
        let r = out.records[0]
        #expect(r.packets == 6)
        #expect(r.bytes == 100 + 60 + 70 + 2400 + 300)
        #expect(r.capture.received == 3)
        #expect(r.in == Counts(packets: 3, bytes: 2500))
        #expect(r.out == Counts(packets: 1, bytes: 300))
        let c = try #require(A.client(r, "203.0.113.10"))
        #expect(c.in == Counts(packets: 2, bytes: 2400) && c.out == Counts(packets: 1, bytes: 300))
        #expect(Set(c.services) == [
            ServiceCounts(service: Service(label: "TCP/8000")!, direction: .inbound, packets: 2, bytes: 2400),
            ServiceCounts(service: Service(label: "TCP/8000")!, direction: .outbound, packets: 1, bytes: 300),
        ])
        #expect(r.isConserved)
        #expect(out.records[1].packets == 1 && out.records[1].capture.received == 0)
        #expect(out.records[1].isConserved)
    }

    @Test func injectsRespectMaxClients() throws {
        let (agg, out) = makeAggregator(A.config(maxClients: 1))
        agg.add(A.attribution("203.0.113.1", .inbound, "TCP/8000"), timestamp: Self.t0, wireLength: 10)
        agg.add(A.attribution("203.0.113.2", .inbound, "TCP/8000"), timestamp: Self.t0, wireLength: 20)
        agg.finish()
        let r = try #require(out.records.first)
        #expect(r.clients.map(\.ip) == [addr("203.0.113.1")])
        #expect(r.other == OtherCounts(in: Counts(packets: 1, bytes: 20), out: .zero, clients: 1))
        #expect(r.isConserved)
    }

    @Test func snapshotShowsTheOpenWindowWithoutClosingIt() throws {
        let (agg, out) = makeAggregator(A.config())
        #expect(agg.snapshot() == nil)
        A.add(agg, "198.51.100.1", at: Self.t0 + seconds(1), bytes: 100)
        agg.add(nonIPPacket(), timestamp: Self.t0 + seconds(1), wireLength: 60)
        let first = try #require(agg.snapshot())
        #expect(out.records.isEmpty)
        #expect(first.partial)
        #expect(first.start == Self.t0 && first.end == Self.t0 + A.w5)
        #expect(first.packets == 2 && first.bytes == 160)
        #expect(first.clients.map(\.ip) == [addr("198.51.100.1")])
        #expect(first.isConserved)
        A.add(agg, "198.51.100.2", .outbound, "UDP/53", at: Self.t0 + seconds(2), bytes: 40)
        let second = try #require(agg.snapshot())
        #expect(second.packets == 3 && second.bytes == 200)
        #expect(second.clients.count == 2)
        #expect(second.isConserved)
        agg.finish()
        let closed = try #require(out.records.first)
        #expect(out.records.count == 1)
        #expect(closed == second, "nothing happened between the snapshot and the close")
    }

    @Test func manyClientsAndFlowsStayExact() throws {
        // Enough distinct clients and flows to make the tables grow several times.
        let (agg, out) = makeAggregator(A.config())
        var expected: [IPAddress: UInt64] = [:]
        for i in 0..<5000 {
            let ip = IPAddress(ipv4: 0xC633_0000 | UInt32(i))
            for port: UInt16 in [80, 443] where i % 3 != 0 || port == 80 {
                agg.add(A.packet(for: Attribution(client: ip, direction: .inbound, service: Service(ipProtocol: 6, port: port))),
                        timestamp: Self.t0 + Int64(i), wireLength: i % 1000 + 40)
                expected[ip, default: 0] += UInt64(i % 1000 + 40)
            }
        }
        agg.finish()
        let r = try #require(out.records.first)
        #expect(r.clients.count == 5000)
        #expect(r.clients.allSatisfy { $0.total.bytes == expected[$0.ip] })
        #expect(zip(r.clients, r.clients.dropFirst()).allSatisfy { $0.total.bytes >= $1.total.bytes })
        #expect(r.isConserved)
    }
}
