import Foundation
import TrafficCapture
import TrafficCore

/// What one pass of a capture through `PacketPump` + `WindowAggregator` (or `ParallelPump`)
/// produced.
public struct PumpResult {
    public var records: [WindowRecord] = []
    /// The error the read ended with, if any (the records before it are kept).
    public var failure: CaptureError?
    public var framesRead: UInt64 = 0
    /// `ParallelPump` only: frames left undecoded by the walker and decoded by the counting threads.
    public var framesDecodedByCounter = 0
    public var bytesRead: UInt64 = 0

    public init(failure: CaptureError? = nil) {
        self.failure = failure
    }

    public var packets: UInt64 { records.reduce(0) { $0 + $1.packets } }
    public var bytes: UInt64 { records.reduce(0) { $0 + $1.bytes } }
    public var malformed: UInt64 { records.reduce(0) { $0 + $1.malformed.packets } }
    public var nonIP: UInt64 { records.reduce(0) { $0 + $1.nonIP.packets } }
    public var received: UInt64 { records.reduce(0) { $0 + $1.capture.received } }
    public var clients: Set<IPAddress> { Set(records.flatMap { $0.clients.map(\.ip) }) }
    public var servers: Set<IPAddress> { Set(records.flatMap { $0.servers.map(\.ip) }) }

    /// Packets and bytes per service label, over every client and direction.
    public var services: [String: Counts] {
        var result: [String: Counts] = [:]
        for r in records {
            for c in r.clients {
                for s in c.services { result[s.service.label, default: .zero].add(packets: s.packets, bytes: s.bytes) }
            }
        }
        return result
    }

    /// Packets and bytes per (client, direction, service).
    public var flows: [SyntheticTraffic.FlowKey: Counts] { SyntheticTraffic.flows(in: records) }

    /// The records of a read that ended without error; its error otherwise.
    public func get() throws(CaptureError) -> [WindowRecord] {
        if let failure { throw failure }
        return records
    }
}

/// Reads a capture the way `trafficmon report` does, with `PacketPump` on the calling
/// thread, or with `ParallelPump` (one walker, `threads` counting threads, `chunks` chunks
/// in flight; `walkerDecodesWhenBehind` false leaves every mapped frame to the counting
/// threads), and closes the last window.
///
/// ```swift
/// let result = try Pump.file(url, configuration: configuration, threads: 2)
/// #expect(result.failure == nil && result.packets == truth.total.packets)
/// ```
public enum Pump {
    /// Opens `url` (with a BPF `filter`) and reads it to its end or its first read error.
    /// Opening the file or starting the pump throws; a read error ends up in `failure`.
    public static func file(
        _ url: URL, filter: String? = nil, configuration: WindowAggregator.Configuration = .init(), threads: Int? = nil,
        chunks: Int? = nil, walkerDecodesWhenBehind: Bool = true, onWindow: @escaping @Sendable (WindowRecord) -> Void = { _ in }
    ) throws(CaptureError) -> PumpResult {
        try source(
            try PacketSource.openFile(url.path, filter: filter), configuration: configuration, threads: threads, chunks: chunks,
            walkerDecodesWhenBehind: walkerDecodesWhenBehind, onWindow: onWindow)
    }

    /// Reads `source` to its end or its first read error, calling `onWindow` with each
    /// record as it closes. Starting the pump throws; a read error ends up in `failure`.
    public static func source(
        _ source: PacketSource, configuration: WindowAggregator.Configuration = .init(), threads: Int? = nil,
        chunks: Int? = nil, walkerDecodesWhenBehind: Bool = true, onWindow: @escaping @Sendable (WindowRecord) -> Void = { _ in }
    ) throws(CaptureError) -> PumpResult {
        var result = PumpResult()
        if let threads {
            let records = LockedValue<[WindowRecord]>([])
            let pump = try ParallelPump(
                configuration: configuration, threads: threads, chunks: chunks, walkerDecodesWhenBehind: walkerDecodesWhenBehind
            ) { closed in
                let record = closed.record()
                closed.recycle()
                records.withLock { $0.append(record) }
                onWindow(record)
            }
            do {
                try pump.read(source)
            } catch {
                result.failure = error
            }
            pump.finish()
            result.records = records.withLock { $0 }
            result.framesRead = pump.framesRead
            result.bytesRead = pump.bytesRead
            result.framesDecodedByCounter = pump.framesDecodedByCounters
            return result
        }
        let aggregator = WindowAggregator(configuration: configuration) { (record: WindowRecord) in
            result.records.append(record)
            onWindow(record)
        }
        let pump = try PacketPump(source: source, aggregator: aggregator)
        do {
            try pump.drain()
        } catch {
            result.failure = error
        }
        (result.framesRead, result.bytesRead) = (pump.framesRead, pump.bytesRead)
        aggregator.finish()
        return result
    }
}
