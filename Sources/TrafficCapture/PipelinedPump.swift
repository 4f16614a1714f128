import CPcap
import Foundation
import TrafficCore

/// Reads a capture file on two threads: the calling thread runs a `PacketPump` (libpcap,
/// decode and attribute, `WindowAggregator.prepare`) whose batches are chunks of a ring,
/// and a counting thread adds each chunk to the `WindowAggregator`, so reading and counting
/// overlap on two cores.
///
/// Prepared packets (56 bytes each, never the packet bytes) travel in chunks of up to
/// 4,096 through a ring of eight, allocated once: one lock round trip per chunk, none per
/// packet, and bounded memory. The aggregator sees every packet in file order, so the
/// windows are exactly those of `PacketPump`; its `onClose` runs on the counting thread.
///
/// ```swift
/// let pump = try PipelinedPump(source: try PacketSource.openFile("big.pcap"), aggregator: aggregator)
/// try pump.drain()          // returns when every packet read has been counted
/// aggregator.finish()
/// ```
public final class PipelinedPump {
    let ring: ChunkRing
    let reader: PacketPump

    /// Whether splitting is worth it here: it needs a second core.
    public static var isUseful: Bool { ProcessInfo.processInfo.activeProcessorCount >= 2 }

    public init(source: PacketSource, aggregator: WindowAggregator) throws(CaptureError) {
        let ring = ChunkRing(aggregator: aggregator)
        self.ring = ring
        reader = try PacketPump(source: source, aggregator: aggregator, buffer: ring.first, capacity: ChunkRing.chunkSize) { chunk in
            ring.publish(chunk)
        }
    }

    /// Frames and wire bytes read so far.
    public var framesRead: UInt64 { reader.framesRead }
    public var bytesRead: UInt64 { reader.bytesRead }

    /// Reads the file to its end (or its first read error, thrown after every packet read
    /// before it has been counted). Once per pump.
    public func drain() throws(CaptureError) {
        let ring = self.ring
        let counter = Thread { ring.countLoop() }
        counter.name = "trafficmon-count"
        counter.start()
        var failure: CaptureError?
        do {
            // Whole chunks per pcap_dispatch: the pump hands on its batch at the end of each.
            try reader.drain(batch: Int32(ChunkRing.chunkSize * 4))
        } catch {
            failure = error
        }
        ring.finishReading()
        if let failure { throw failure }
    }
}

/// The ring between the reading and the counting thread: `chunkCount` chunks of
/// `chunkSize` prepared packets, handed over under one condition.
final class ChunkRing: @unchecked Sendable {
    static let chunkSize = 4096
    static let chunkCount = 8
    let aggregator: WindowAggregator
    let base: UnsafeMutablePointer<PreparedPacket>
    /// Guards `published`, `consumed`, `lengths`, `readerDone` and `counterDone`.
    let condition = NSCondition()
    var published = 0
    var consumed = 0
    var lengths = [Int](repeating: 0, count: ChunkRing.chunkCount)
    var readerDone = false
    var counterDone = false
    /// The chunk being filled (reading thread only).
    var fillChunk = 0

    init(aggregator: WindowAggregator) {
        self.aggregator = aggregator
        base = .allocate(capacity: Self.chunkSize * Self.chunkCount)
        base.initialize(repeating: PreparedPacket(), count: Self.chunkSize * Self.chunkCount)
    }

    deinit {
        base.deallocate()
    }

    var first: UnsafeMutablePointer<PreparedPacket> { base }

    /// Hands a filled chunk to the counting thread; returns the next free chunk (waiting
    /// while all are taken).
    func publish(_ chunk: UnsafeMutableBufferPointer<PreparedPacket>) -> UnsafeMutablePointer<PreparedPacket> {
        condition.lock()
        lengths[fillChunk] = chunk.count
        published += 1
        condition.broadcast()
        while published - consumed >= Self.chunkCount { condition.wait() }
        condition.unlock()
        fillChunk = published % Self.chunkCount
        return base + fillChunk * Self.chunkSize
    }

    /// No more chunks will come: waits until the counting thread has counted every one.
    func finishReading() {
        condition.lock()
        readerDone = true
        condition.broadcast()
        while !counterDone { condition.wait() }
        condition.unlock()
    }

    /// The counting thread: counts chunks in order until the reader is done.
    func countLoop() {
        while true {
            condition.lock()
            while consumed == published && !readerDone { condition.wait() }
            if consumed == published {
                counterDone = true
                condition.broadcast()
                condition.unlock()
                return
            }
            let chunk = consumed % Self.chunkCount
            let length = lengths[chunk]
            condition.unlock()
            aggregator.count(UnsafeMutableBufferPointer(start: base + chunk * Self.chunkSize, count: length))
            condition.lock()
            consumed += 1
            condition.broadcast()
            condition.unlock()
        }
    }
}
