import Testing
@testable import TrafficCore
import TrafficTestSupport

/// DESIGN.md's window rules written out plainly, as the oracle of the random tests:
/// epoch-aligned tumbling windows, event time, late packets into the open window, empty
/// windows on `advance(emitEmpty: true)`, the last window partial at the end; each side's
/// first `--max-clients` distinct parties tracked, the rest in `other`.
struct WindowModel {
    struct Flow: Hashable {
        var client: IPAddress
        var direction: Direction
        var service: Service
    }

    /// One side's parties in a window.
    struct Side {
        /// Parties in first-seen order.
        var order: [IPAddress] = []
        var totals: [IPAddress: (in: Counts, out: Counts)] = [:]
        /// Per (party, direction, service): `Flow.client` holds the party.
        var flows: [Flow: Counts] = [:]
        /// Traffic with no party on this side (an inject that names no server).
        var unknownIn = Counts(), unknownOut = Counts()

        mutating func add(_ party: IPAddress?, _ direction: Direction, _ service: Service, bytes: UInt64) {
            guard let party else {
                if direction == .inbound { unknownIn.add(bytes: bytes) } else { unknownOut.add(bytes: bytes) }
                return
            }
            if totals[party] == nil {
                order.append(party)
                totals[party] = (.zero, .zero)
            }
            if direction == .inbound { totals[party]!.in.add(bytes: bytes) } else { totals[party]!.out.add(bytes: bytes) }
            flows[Flow(client: party, direction: direction, service: service), default: .zero].add(bytes: bytes)
        }
    }

    struct Window {
        var start: Int64
        var end: Int64
        var partial = false
        var total = Counts(), inbound = Counts(), outbound = Counts(), nonIP = Counts(), malformed = Counts()
        var reasons: [String: UInt64] = [:]
        var late: UInt64 = 0
        var received: UInt64 = 0
        var clients = Side()
        var servers = Side()
    }

    let windowLength: Int64
    var open: Window?
    var openedMidWindow = false
    var closed: [Window] = []
    var lastClosedEnd: Int64 = .min

    init(windowLength: Int64) { self.windowLength = windowLength }

    func startOf(_ t: Int64) -> Int64 { Timestamp.floorDiv(t, windowLength) * windowLength }

    mutating func openWindow(at start: Int64, mid: Bool) {
        open = Window(start: start, end: start + windowLength)
        openedMidWindow = mid
    }

    mutating func close(partial: Bool) {
        guard var w = open else { return }
        w.partial = partial
        closed.append(w)
        lastClosedEnd = w.end
        open = nil
    }

    /// Event time: picks (or opens) the window; an older packet is late in the open one.
    mutating func clock(_ t: Int64) {
        if let w = open {
            if t >= w.end {
                close(partial: openedMidWindow)
                openWindow(at: startOf(t), mid: false)
            } else if t < w.start {
                open!.late += 1
            }
        } else {
            openWindow(at: startOf(t), mid: false)
        }
    }

    mutating func add(_ kind: DecodedPacket.Kind, reason: MalformedReason = .truncatedLink, attribution: Attribution?,
                      at t: Int64, bytes: UInt64, captured: Bool) {
        clock(t)
        open!.total.add(bytes: bytes)
        if captured { open!.received += 1 }
        switch kind {
        case .nonIP: open!.nonIP.add(bytes: bytes)
        case .malformed:
            open!.malformed.add(bytes: bytes)
            open!.reasons[reason.label, default: 0] += 1
        case .ip:
            let a = attribution!
            if a.direction == .inbound { open!.inbound.add(bytes: bytes) } else { open!.outbound.add(bytes: bytes) }
            open!.clients.add(a.client, a.direction, a.service, bytes: bytes)
            open!.servers.add(a.server, a.direction, a.service, bytes: bytes)
        }
    }

    /// The wall clock: windows that ended close; with `emitEmpty` the next one opens at once.
    mutating func advance(to now: Int64, emitEmpty: Bool) {
        guard open != nil else {
            if emitEmpty { openWindow(at: startOf(now), mid: true) }
            return
        }
        while let w = open, w.end <= now {
            close(partial: openedMidWindow)
            if emitEmpty { openWindow(at: w.end, mid: false) }
        }
    }

    mutating func finish() { close(partial: true) }
}

/// One random-traffic configuration.
struct RandomTrafficCase: Sendable, CustomTestStringConvertible {
    let seed: UInt64
    let window: Int64
    var maxClients = 100_000
    var maxFlows: Int? = nil
    var top: Int? = nil
    var events = 3000
    var testDescription: String {
        "seed \(seed), window \(TimeSpan.text(window)), maxClients \(maxClients), maxFlows \(maxFlows.map(String.init) ?? "-"), top \(top.map(String.init) ?? "-")"
    }
}

@Suite("WindowAggregator: random traffic against the window rules")
struct WindowPropertyTests {
    static let cases: [RandomTrafficCase] = [
        RandomTrafficCase(seed: 1, window: 5 * nanosPerSecond),
        RandomTrafficCase(seed: 2, window: nanosPerSecond, maxClients: 8),
        RandomTrafficCase(seed: 3, window: 5 * nanosPerSecond, top: 3),
        RandomTrafficCase(seed: 4, window: 500_000_000, maxClients: 5, top: 2),
        RandomTrafficCase(seed: 5, window: 60 * nanosPerSecond, maxFlows: 10),
        RandomTrafficCase(seed: 6, window: 5 * nanosPerSecond, maxClients: 0),
        RandomTrafficCase(seed: 7, window: 2 * nanosPerSecond, maxClients: 3, maxFlows: 4, top: 0),
        RandomTrafficCase(seed: 8, window: 3 * nanosPerSecond, maxClients: 12, maxFlows: 20, top: 5),
    ]

    static let services: [Service] = [
        Service(ipProtocol: IPProtocol.tcp, port: 443), Service(ipProtocol: IPProtocol.tcp, port: 80),
        Service(ipProtocol: IPProtocol.udp, port: 53), Service(ipProtocol: IPProtocol.sctp, port: 2905),
        Service(ipProtocol: IPProtocol.icmp), Service(ipProtocol: IPProtocol.gre), Service(ipProtocol: IPProtocol.esp),
        Service(ipProtocol: IPProtocol.udp), Service(ipProtocol: 89), Service(ipProtocol: IPProtocol.tcp, port: 22),
    ]

    @Test(arguments: cases)
    func recordsFollowTheRules(_ c: RandomTrafficCase) throws {
        let config = Agg.config(window: c.window, maxClients: c.maxClients, maxFlows: c.maxFlows, top: c.top)
        let (agg, out) = makeAggregator(config)
        var model = WindowModel(windowLength: c.window)
        var rng = SplitMix64(seed: c.seed)
        var pool: [IPAddress] = []
        for i in 0..<40 {
            pool.append(i % 5 == 4 ? IPAddress(ipv6High: 0x2001_0DB8_0002_0000, low: rng.next() | 1)
                                   : IPAddress(ipv4: 0xC633_6400 | UInt32(truncatingIfNeeded: rng.next() & 0xFF)))
        }
        pool = Array(Set(pool)).sorted()
        // Local servers: a few per family.
        let servers4 = (1...6).map { IPAddress(ipv4: 0x0A00_0000 | UInt32($0)) }
        let servers6 = (1...3).map { IPAddress(ipv6High: 0x2001_0DB8_0001_0000, low: UInt64($0)) }
        var t = Agg.t0 + Int64(rng.next() % UInt64(c.window))
        var snapshots = 0

        for _ in 0..<c.events {
            // Time moves on by up to a twelfth of a window; sometimes a packet is older.
            t += Int64(rng.next() % UInt64(c.window / 12))
            var at = t
            if rng.next() % 25 == 0 { at = t - Int64(rng.next() % UInt64(c.window + c.window / 2)) }
            // With no window open, nothing is older than what already closed (that case has its own test).
            if model.open == nil { at = max(at, model.lastClosedEnd) }
            let bytes = 40 + rng.next() % 1475
            let roll = rng.next() % 100
            if roll < 85 {
                let client = pool[Int(Double(pool.count) * rng.unit() * rng.unit())]
                let server = client.isIPv6 ? servers6[Int(rng.next() % 3)] : servers4[Int(rng.next() % 6)]
                var direction: Direction = rng.next() % 3 == 0 ? .outbound : .inbound
                var service = Self.services[Int(rng.next() % UInt64(Self.services.count))]
                if client.isIPv6 && service == Service(ipProtocol: IPProtocol.icmp) { service = Service(ipProtocol: IPProtocol.icmpv6) }
                // Without ports, only ICMP replies go from a server to its client.
                if service.port == nil && service.ipProtocol != IPProtocol.icmp && service.ipProtocol != IPProtocol.icmpv6 {
                    direction = .inbound
                }
                if roll < 80 {
                    let a = Attribution(client: client, server: server, direction: direction, service: service)
                    agg.add(Agg.packet(for: a, ephemeral: UInt16(32768 + rng.next() % 28000)), timestamp: at, wireLength: Int(bytes))
                    model.add(.ip, attribution: a, at: at, bytes: bytes, captured: true)
                } else {
                    // An inject names a server only sometimes.
                    let a = Attribution(client: client, server: rng.next() % 2 == 0 ? server : nil, direction: direction, service: service)
                    agg.add(a, timestamp: at, wireLength: Int(bytes))
                    model.add(.ip, attribution: a, at: at, bytes: bytes, captured: false)
                }
            } else if roll < 91 {
                agg.add(nonIPPacket(), timestamp: at, wireLength: Int(bytes))
                model.add(.nonIP, attribution: nil, at: at, bytes: bytes, captured: true)
            } else if roll < 97 {
                let reason = MalformedReason.allCases[Int(rng.next() % UInt64(MalformedReason.allCases.count))]
                agg.add(malformedPacket(reason), timestamp: at, wireLength: Int(bytes))
                model.add(.malformed, reason: reason, attribution: nil, at: at, bytes: bytes, captured: true)
            } else if roll < 99 {
                let now = t + Int64(rng.next() % UInt64(2 * c.window))
                let emitEmpty = rng.next() % 2 == 0
                agg.advance(to: now, emitEmpty: emitEmpty)
                model.advance(to: now, emitEmpty: emitEmpty)
                t = max(t, now)
            } else {
                let snapshot = agg.snapshot()
                #expect((snapshot == nil) == (model.open == nil))
                if let snapshot, var w = model.open {
                    w.partial = true
                    Self.check(snapshot, against: w, c, "snapshot")
                    snapshots += 1
                }
            }
        }
        agg.finish()
        model.finish()

        #expect(out.records.count == model.closed.count)
        #expect(out.records.count > 10, "the case should span many windows")
        for (i, (record, window)) in zip(out.records, model.closed).enumerated() {
            Self.check(record, against: window, c, "window \(i)")
        }
        let starts = out.records.map(\.start)
        #expect(zip(starts, starts.dropFirst()).allSatisfy { $0 < $1 })
    }

    static func check(_ r: WindowRecord, against w: WindowModel.Window, _ c: RandomTrafficCase, _ what: String,
                      sourceLocation: SourceLocation = #_sourceLocation) {
        func expect(_ ok: Bool, _ message: @autoclosure () -> String) {
            if !ok { Issue.record("\(what): \(message())", sourceLocation: sourceLocation) }
        }
        expect(r.start == w.start && r.end == w.end, "start/end \(r.start)/\(r.end), expected \(w.start)/\(w.end)")
        expect(r.partial == w.partial, "partial \(r.partial), expected \(w.partial)")
        expect(r.packets == w.total.packets && r.bytes == w.total.bytes, "totals \(r.packets)/\(r.bytes), expected \(w.total)")
        expect(r.in == w.inbound && r.out == w.outbound, "in/out \(r.in)/\(r.out), expected \(w.inbound)/\(w.outbound)")
        expect(r.nonIP == w.nonIP, "non_ip \(r.nonIP), expected \(w.nonIP)")
        expect(r.malformed.packets == w.malformed.packets && r.malformed.bytes == w.malformed.bytes, "malformed")
        expect(r.malformed.reasons == w.reasons, "reasons \(r.malformed.reasons), expected \(w.reasons)")
        expect(r.latePackets == w.late, "late \(r.latePackets), expected \(w.late)")
        expect(r.capture.received == w.received, "received \(r.capture.received), expected \(w.received)")
        expect(r.isConserved, "not conserved")

        // Each side: the first --max-clients distinct parties are tracked, the top --top of those listed.
        // (Past a --max-flows cap new servers are not admitted: the servers are checked without one.)
        checkSide(r.clients, r.other, w.clients, r, c, what, sourceLocation: sourceLocation)
        if c.maxFlows == nil { checkSide(r.servers, r.otherServers, w.servers, r, c, what + " servers", sourceLocation: sourceLocation) }
        // Conservation per direction on the server side whatever the caps.
        let serversIn = r.servers.map(\.in).reduce(Counts.zero, +), serversOut = r.servers.map(\.out).reduce(Counts.zero, +)
        expect(serversIn + r.otherServers.in == r.in && serversOut + r.otherServers.out == r.out, "servers: in/out not conserved per direction")

        // The window's services see every IP packet, whoever it was counted under.
        let inSum = r.services.filter { $0.direction == .inbound }.reduce(Counts.zero) { $0 + Counts(packets: $1.packets, bytes: $1.bytes) }
        let outSum = r.services.filter { $0.direction == .outbound }.reduce(Counts.zero) { $0 + Counts(packets: $1.packets, bytes: $1.bytes) }
        expect(inSum == r.in && outSum == r.out, "window services \(inSum)/\(outSum) do not add up to \(r.in)/\(r.out)")
        if c.top == nil && c.maxFlows == nil {
            var byService: [WindowModel.Flow: Counts] = [:]
            for (flow, counts) in w.clients.flows {
                byService[WindowModel.Flow(client: IPAddress(ipv4: 0), direction: flow.direction, service: flow.service), default: .zero] += counts
            }
            let expected = Set(byService.map { ServiceCounts(service: $0.key.service, direction: $0.key.direction, packets: $0.value.packets, bytes: $0.value.bytes) })
            expect(Set(r.services) == expected, "window services \(r.services), expected \(expected)")
        }
    }

    /// One side's listed parties and `other` against the model's side.
    static func checkSide(
        _ parties: [PartyRecord], _ other: OtherCounts, _ side: WindowModel.Side, _ r: WindowRecord, _ c: RandomTrafficCase,
        _ what: String, sourceLocation: SourceLocation
    ) {
        func expect(_ ok: Bool, _ message: @autoclosure () -> String) {
            if !ok { Issue.record("\(what): \(message())", sourceLocation: sourceLocation) }
        }
        let tracked = Array(side.order.prefix(c.maxClients))
        let overflow = Array(side.order.dropFirst(c.maxClients))
        let listedCount = min(c.top ?? .max, tracked.count)
        expect(parties.count == listedCount, "\(parties.count) listed, expected \(listedCount)")
        let trackedSet = Set(tracked)
        var flowsByParty: [IPAddress: [ServiceCounts]] = [:]
        if c.top == nil && c.maxFlows == nil {
            for (flow, counts) in side.flows {
                flowsByParty[flow.client, default: []].append(
                    ServiceCounts(service: flow.service, direction: flow.direction, packets: counts.packets, bytes: counts.bytes))
            }
        }
        var listedBytes: [UInt64] = []
        for party in parties {
            guard trackedSet.contains(party.ip), let m = side.totals[party.ip] else {
                expect(false, "\(party.ip) listed but not tracked")
                continue
            }
            expect(party.in == m.in && party.out == m.out, "\(party.ip) in/out \(party.in)/\(party.out), expected \(m.in)/\(m.out)")
            expect(party.local == Agg.local.contains(party.ip), "\(party.ip) local \(party.local)")
            listedBytes.append(party.total.bytes)
            // A listed party's services add up to its totals, per direction.
            let inSum = party.services.filter { $0.direction == .inbound }.reduce(Counts.zero) { $0 + Counts(packets: $1.packets, bytes: $1.bytes) }
            let outSum = party.services.filter { $0.direction == .outbound }.reduce(Counts.zero) { $0 + Counts(packets: $1.packets, bytes: $1.bytes) }
            expect(inSum == party.in && outSum == party.out, "\(party.ip) services do not add up")
            expect(party.services.count <= (c.top ?? .max - 2) + 2, "\(party.ip) lists \(party.services.count) services")
            if c.top == nil && c.maxFlows == nil {
                let expected = flowsByParty[party.ip] ?? []
                expect(Set(party.services) == Set(expected), "\(party.ip) services \(party.services), expected \(expected)")
            }
            let real = party.services.filter { $0.service != .other }
            expect(zip(real, real.dropFirst()).allSatisfy { $0.bytes >= $1.bytes }, "\(party.ip) services not sorted by bytes")
        }
        expect(zip(listedBytes, listedBytes.dropFirst()).allSatisfy { $0 >= $1 }, "not sorted by bytes: \(listedBytes)")
        let listed = Set(parties.map(\.ip))
        let unlisted = tracked.filter { !listed.contains($0) }
        if let smallest = listedBytes.min() {
            for ip in unlisted {
                let m = side.totals[ip]!
                expect((m.in + m.out).bytes <= smallest, "\(ip) folded although bigger than a listed party")
            }
        }
        let otherIn = (unlisted + overflow).map { side.totals[$0]!.in }.reduce(side.unknownIn, +)
        let otherOut = (unlisted + overflow).map { side.totals[$0]!.out }.reduce(side.unknownOut, +)
        expect(other.in == otherIn && other.out == otherOut, "other in/out \(other.in)/\(other.out), expected \(otherIn)/\(otherOut)")
        expect(other.packets == otherIn.packets + otherOut.packets && other.bytes == otherIn.bytes + otherOut.bytes, "other totals")
        // Conservation per direction: the listed parties plus other make up `in` and `out`.
        let partiesIn = parties.map(\.in).reduce(Counts.zero, +), partiesOut = parties.map(\.out).reduce(Counts.zero, +)
        expect(partiesIn + other.in == r.in && partiesOut + other.out == r.out, "in/out not conserved per direction")
        // The count in other: exact for the folded ones, and for up to 4,096 parties past --max-clients.
        let expectedOther = UInt64(unlisted.count + overflow.count)
        expect(overflow.count <= 4096, "the test keeps the overflow countable exactly")
        expect(other.clients == expectedOther, "other count \(other.clients), expected \(expectedOther)")
    }
}
