import CTrafficCoreShims

/// Adds up packets per client, server, direction and service in epoch-aligned tumbling
/// windows on one thread, and hands every closed window to `onClose`: a window coordinator
/// (its `WindowClock`: event time, late packets, the close, the drops) with one
/// `WindowShard` to count into. Several counting threads use the same two parts apart:
/// one clock, a shard per thread.
///
/// The thread that drives it owns it, so the packet path takes no lock, and after warm-up
/// it allocates nothing per packet. A closed window leaves with its tables, so the
/// consumer can turn it into a `WindowRecord` on another thread.
///
/// ```swift
/// let aggregator = WindowAggregator(configuration: .init(localNetworks: local)) { closed in
///     print(closed.record().jsonString)
/// }
/// aggregator.add(decoder.decode(bytes), timestamp: nanos, wireLength: 1514)
/// aggregator.finish()
/// ```
public final class WindowAggregator {
    public struct Configuration: Sendable {
        /// Window length in nanoseconds.
        public var windowLength: Int64
        public var localNetworks: LocalNetworks
        /// Ports that are the server side whenever they appear (`--service-port`).
        public var servicePorts: ServicePorts
        /// Distinct clients (and, apart, distinct servers) tracked one by one per window;
        /// later new ones go to `other` (`other_servers`).
        public var maxClients: Int
        /// Distinct (client, direction, service) entries per window, and apart (server,
        /// direction, service) entries; past it a tracked party's new services are counted
        /// under the service `other`.
        public var maxFlows: Int
        /// List only this many clients, servers (and services) per record, folding the rest
        /// into `other`; `nil` lists everything.
        public var top: Int?
        /// Captured frames longer than this on the wire are counted as oversized (a live
        /// interface's MTU plus link header: merged GRO/LRO frames); `nil`: not checked.
        public var oversizedAbove: Int?
        /// Named networks every record adds up its parties' traffic by (`--networks`).
        public var networks: NamedNetworks?
        /// Gives each client's AS and country when a record is built (`--asn-db`, `--country-db`).
        public var origins: (any OriginLookup)?

        public init(
            windowLength: Int64 = 5 * Timestamp.nanosPerSecond, localNetworks: LocalNetworks = LocalNetworks(),
            servicePorts: ServicePorts = ServicePorts(), maxClients: Int = 100_000, maxFlows: Int? = nil, top: Int? = nil,
            oversizedAbove: Int? = nil
        ) {
            self.windowLength = max(1, windowLength)
            self.localNetworks = localNetworks
            self.servicePorts = servicePorts
            self.maxClients = max(0, maxClients)
            self.maxFlows = maxFlows ?? max(4 * self.maxClients, 65_536)
            self.top = top
            self.oversizedAbove = oversizedAbove
        }
    }

    public let configuration: Configuration
    /// The one shard this aggregator counts into.
    public let shard: WindowShard
    var clock: WindowClock

    /// Receives each closed window, on the thread that drives the aggregator.
    public var onClose: (ClosedWindow) -> Void
    /// The name its traffic is counted under in a record's `sources` (and the metrics'
    /// `source` label).
    public var sourceName = "file"

    public var attributor: Attributor { shard.attributor }
    /// The latest packet (or inject, or wall-clock) time seen: the stream's event-time clock.
    public var eventTime: Int64 { clock.latestTime }
    public var isOpen: Bool { clock.isOpen }
    /// Window start (nanoseconds) of the open window, if one is open.
    public var openWindowStart: Int64? { clock.isOpen ? clock.start : nil }

    public init(configuration: Configuration, onClose: @escaping (ClosedWindow) -> Void) {
        self.configuration = configuration
        self.shard = WindowShard(configuration: configuration)
        self.clock = WindowClock(windowLength: configuration.windowLength)
        self.onClose = onClose
    }

    /// Convenience: receive each closed window as a finished record, built on this thread.
    public convenience init(configuration: Configuration, onRecord: @escaping (WindowRecord) -> Void) {
        self.init(configuration: configuration) { closed in
            onRecord(closed.record())
            closed.recycle()
        }
    }

    // MARK: The packet path

    /// Counts one captured frame of `wireLength` bytes at `timestamp` (nanoseconds).
    public func add(_ packet: DecodedPacket, timestamp: Int64, wireLength: Int) {
        var p = PreparedPacket()
        shard.prepare(packet, timestamp: timestamp, wireLength: wireLength, into: &p)
        count(p)
    }

    /// Decodes and counts one captured frame. `frame` holds the captured bytes only;
    /// `wireLength` is the length on the wire.
    public func add(frame: UnsafeRawBufferPointer, decoder: PacketDecoder, timestamp: Int64, wireLength: Int) {
        add(decoder.decode(frame), timestamp: timestamp, wireLength: wireLength)
    }

    /// Decodes and attributes one frame into a batch slot for a later `count(_:)`
    /// (`WindowShard.prepare`): a reading thread may call it while another counts.
    ///
    /// ```swift
    /// aggregator.prepare(frame: bytes, decoder: decoder, timestamp: nanos, wireLength: 1514, into: batch + n)
    /// aggregator.count(UnsafeMutableBufferPointer(start: batch, count: n + 1))
    /// ```
    public func prepare(
        frame: UnsafeRawBufferPointer, decoder: PacketDecoder, timestamp: Int64, wireLength: Int, into slot: UnsafeMutablePointer<PreparedPacket>
    ) {
        shard.prepare(frame: frame, decoder: decoder, timestamp: timestamp, wireLength: wireLength, into: slot)
    }

    /// Counts a batch of prepared packets in order, each into the window its time picks
    /// (closing windows as packet time passes them).
    ///
    /// ```swift
    /// prepared.withUnsafeMutableBufferPointer { aggregator.count($0) }
    /// ```
    public func count(_ batch: UnsafeMutableBufferPointer<PreparedPacket>) {
        guard let last = batch.last else { return }
        // The shard counts into the clock's open window; outside it (or before the shard
        // selected it, after the wall clock moved on), the clock places the packet.
        shard.count(batch, low: shard.currentStart, high: shard.currentEnd) { p in
            self.place(&p)
        }
        clock.note(last.timestamp)
    }

    /// Counts one already-attributed packet (the `/debug/inject` path): same windows, same
    /// party bookkeeping, but not a captured frame.
    public func add(_ attribution: Attribution, timestamp: Int64, wireLength: Int) {
        count(PreparedPacket(injected: attribution, timestamp: timestamp, wireLength: wireLength))
    }

    /// Counts one prepared packet.
    func count(_ p: PreparedPacket) {
        var p = p
        if p.timestamp < shard.currentStart || p.timestamp >= shard.currentEnd { place(&p) }
        clock.note(p.timestamp)
        shard.count(p, hashes: p.kind == .ip ? WindowShard.hashes(p.key) : WindowShard.FlowHashes(client: 0, server: 0))
    }

    /// The slow path of the clock: a packet outside the open window closes it (when packet
    /// time passed it) or is late; the shard then counts into the window the clock names.
    /// (A packet inside the open window comes here once after the wall clock opened that
    /// window, for the shard to select it.)
    func place(_ p: inout PreparedPacket) {
        let (closed, late) = clock.place(p.timestamp)
        if let closed { emit(closed) }
        if late { p.isLate = true }
        shard.select(clock.start)
    }

    // MARK: Wall-clock and end of input

    /// Closes every window that ended at or before `now` (nanoseconds). With
    /// `emitEmpty`, the following window opens right away, so a quiet period still
    /// yields one (empty) record per window, as a live capture must.
    public func advance(to now: Int64, emitEmpty: Bool) {
        for closed in clock.advance(to: now, emitEmpty: emitEmpty) { emit(closed) }
    }

    /// Closes the open window, marked partial: end of file, or shutdown.
    public func finish() {
        if let closed = clock.finish() { emit(closed) }
    }

    /// The open window as a record (marked partial: it has not run its length), or `nil`.
    public func snapshot() -> WindowRecord? {
        guard var facts = clock.openFacts else { return nil }
        facts.sources = [sourceName]
        let tables = shard.snapshot(facts.start).map { [($0, WindowShard?.none)] } ?? []
        return ClosedWindow(facts: facts, tables: tables, configuration: configuration).record()
    }

    /// Hands a closed window, with the shard's tables for it, to `onClose`.
    func emit(_ facts: WindowFacts) {
        var facts = facts
        facts.sources = [sourceName]
        let tables = shard.take(facts.start).map { [($0, Optional(shard))] } ?? []
        onClose(ClosedWindow(facts: facts, tables: tables, configuration: configuration))
    }
}
