import Foundation
import Synchronization
import TrafficCapture
import TrafficCore
import TrafficFlows
import TrafficStore

/// What the HTTP routes read: the window history, the metrics, and the capture engine.
///
/// ```swift
/// let windows = state.history(limit: 10)
/// let open = await state.currentWindow()
/// ```
public final class TrafficState: Sendable {
    public let configuration: ServerConfiguration
    public let metrics: TrafficMetrics
    public let engine: CaptureEngine
    public let windowLength: Int64
    /// The SQLite store, when persistence is on.
    public let store: WindowStore?
    private let ring: LockedValue<WindowHistory<RenderedRecord>>
    /// When this server started (Unix nanoseconds): `/stats/capture`'s `started` and uptime.
    public let startedAt = Int64(Date().timeIntervalSince1970 * 1e9)
    private let shuttingDown = Atomic<Bool>(false)

    /// Whether a graceful shutdown (SIGINT/SIGTERM) has begun.
    public var shutdownRequested: Bool { shuttingDown.load(ordering: .relaxed) }

    func noteShutdown() { shuttingDown.store(true, ordering: .relaxed) }

    private let flushed = Atomic<Bool>(false)

    /// Whether the last window has been handed to every subscriber and stored.
    public var isFlushed: Bool { flushed.load(ordering: .acquiring) }

    func noteFlushed() { flushed.store(true, ordering: .releasing) }

    /// The flow inputs, for their health figures (`/stats/capture`, `trafficmon_flow_*`).
    public let collectors: [FlowCollector]

    public init(
        configuration: ServerConfiguration, engine: CaptureEngine, collectors: [FlowCollector] = [], windowLength: Int64,
        store: WindowStore? = nil
    ) {
        self.configuration = configuration
        self.engine = engine
        self.collectors = collectors
        self.windowLength = windowLength
        self.store = store
        self.metrics = TrafficMetrics(
            top: configuration.top, version: configuration.version, partyTTL: configuration.partyTTL,
            maxPartySeries: configuration.maxPartySeries, interfaces: engine.interfaces,
            networks: engine.configuration.networks, maxNetworkSeries: configuration.maxNetworkSeries,
            origins: engine.configuration.origins, sources: engine.sourceNames, flows: { collectors.map(\.health) })
        self.ring = LockedValue(WindowHistory(capacity: configuration.historySize))
    }

    /// Adds a closed window, with its JSON, to the in-memory history.
    public func append(_ rendered: RenderedRecord) {
        ring.withLock { $0.append(rendered) }
    }

    /// Adds a closed window to the in-memory history (rendering it).
    public func append(_ record: WindowRecord) {
        append(RenderedRecord(record))
    }

    /// The last `limit` closed windows, oldest first.
    public func history(limit: Int) -> [WindowRecord] {
        rendered(limit: limit).map(\.record)
    }

    /// The last `limit` closed windows with their JSON, oldest first.
    public func rendered(limit: Int) -> [RenderedRecord] {
        ring.withLock { $0.last(limit) }
    }

    /// Closed windows starting in `since..<until`, oldest first, at most `limit` (the newest
    /// of them). Ranges that reach back before the memory ring are read from SQLite.
    public func history(since: Int64?, until: Int64?, limit: Int) async throws -> [WindowRecord] {
        try await rendered(since: since, until: until, limit: limit).map(\.record)
    }

    /// `history(since:until:limit:)` with each record's JSON (rendered anew for the windows
    /// read from SQLite, so rows written by an older version read as the current format).
    public func rendered(since: Int64?, until: Int64?, limit: Int) async throws -> [RenderedRecord] {
        let (oldest, fromMemory) = ring.withLock { ($0.oldest?.start, $0.windows(since: since, until: until, limit: limit)) }
        let reachesBack = since.map { s in oldest.map { s < $0 } ?? true } ?? true
        if let store, reachesBack {
            return try await store.windows(since: since, until: until, limit: limit).map(RenderedRecord.init)
        }
        return fromMemory
    }

    /// The oldest window start held in memory.
    public var oldestInMemory: Int64? { ring.withLock { $0.oldest?.start } }

    /// The open window; when none is open (a replay that has ended), the last closed one;
    /// before anything was seen, an empty record of the current wall-clock window.
    public func currentWindow() async -> WindowRecord {
        await currentRendered().record
    }

    /// `currentWindow()` with its JSON: the open window is rendered for the asking, the
    /// last closed one comes as it was rendered when it closed.
    public func currentRendered() async -> RenderedRecord {
        if let open = await engine.currentWindow() { return RenderedRecord(open) }
        if let newest = ring.withLock({ $0.newest }) { return newest }
        let now = Int64(Date().timeIntervalSince1970 * 1e9)
        let start = Timestamp.floorDiv(now, windowLength) * windowLength
        return RenderedRecord(WindowRecord(start: start, end: start + windowLength, partial: true))
    }

    /// Ready while the capture runs (or a replay has been read to its end).
    public var isReady: Bool {
        switch engine.status {
        case .capturing, .replaying, .replayed: true
        default: false
        }
    }
}
