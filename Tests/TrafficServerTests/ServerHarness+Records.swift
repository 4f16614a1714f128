import Synchronization
import TrafficCore
import TrafficTestSupport

/// Window records made whole for the store and stream suites, and what their WebSocket
/// clients collect.
///
/// ```swift
/// let record = ServerHarness.record(start: 1_700_000_000 * ServerHarness.second)
/// ```
extension ServerHarness {
    /// A record with every field set (clients, services, other, non-IP, malformed reasons,
    /// capture counts), so a round trip that loses anything shows.
    static func record(start: Int64, length: Int64 = second, partial: Bool = false, seed: UInt64 = 1) -> WindowRecord {
        var rng = SplitMix64(seed: seed &+ UInt64(bitPattern: start))
        let n = 1 + Int(rng.next() % 4)
        var clients: [ClientRecord] = []
        var allIn = Counts(), allOut = Counts()
        for i in 0..<n {
            let inCounts = Counts(packets: 1 + rng.next() % 50, bytes: 60 + rng.next() % 90_000)
            let outCounts = Counts(packets: rng.next() % 50, bytes: rng.next() % 90_000)
            let ip = i % 2 == 0
                ? IPAddress(ipv4: 0xC633_6400 | UInt32(rng.next() & 0xFF))
                : IPAddress(ipv6High: 0x2001_0db8_0000_0000 | (rng.next() & 0xFFFF), low: rng.next())
            clients.append(ClientRecord(ip: ip, in: inCounts, out: outCounts, services: [
                ServiceCounts(service: Service(label: "TCP/443")!, direction: .inbound, packets: inCounts.packets, bytes: inCounts.bytes),
                ServiceCounts(service: Service(label: "UDP/53")!, direction: .outbound, packets: outCounts.packets, bytes: outCounts.bytes),
            ]))
            allIn += inCounts
            allOut += outCounts
        }
        clients.sort { ($0.in.bytes + $0.out.bytes) > ($1.in.bytes + $1.out.bytes) }
        let other = OtherCounts(in: Counts(packets: 3, bytes: 300), out: Counts(packets: 1, bytes: 70), clients: 2)
        allIn += other.in
        allOut += other.out
        let nonIP = Counts(packets: rng.next() % 5, bytes: 60 * (rng.next() % 5))
        let malformed = MalformedCounts(packets: 2, bytes: 120, reasons: ["truncated-ipv4": 1, "bad-ip-version": 1])
        let packets = allIn.packets + allOut.packets + nonIP.packets + malformed.packets
        // One local server carries it all.
        let server = PartyRecord(ip: IPAddress(ipv4: 0x0A00_0001), local: true, in: allIn, out: allOut, services: [
            ServiceCounts(service: Service(label: "TCP/443")!, direction: .inbound, packets: allIn.packets, bytes: allIn.bytes),
            ServiceCounts(service: Service(label: "UDP/53")!, direction: .outbound, packets: allOut.packets, bytes: allOut.bytes),
        ])
        return WindowRecord(
            start: start, end: start + length, partial: partial,
            in: allIn, out: allOut, clients: clients, other: other, servers: [server], nonIP: nonIP, malformed: malformed,
            latePackets: rng.next() % 3, capture: CaptureCounts(received: packets, kernelDropped: rng.next() % 2, interfaceDropped: 1),
            services: [ServiceCounts(service: Service(label: "TCP/443")!, direction: .inbound, packets: allIn.packets, bytes: allIn.bytes)])
    }
}

/// A thread-safe list (what WebSocket client handlers collect).
final class WSCollector<T: Sendable>: Sendable {
    private let items = LockedValue<[T]>([])
    func append(_ item: T) { items.withLock { $0.append(item) } }
    var all: [T] { items.withLock { $0 } }
    var count: Int { items.withLock { $0.count } }
}

/// A flag that WebSocket client handlers poll to know when to close.
final class StopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}
