import CPcap
import Foundation
import TrafficCore

/// Reads a capture file on two threads: the calling thread runs a `PacketPump` (libpcap,
/// decode and attribute, `WindowAggregator.prepare`) whose batches are chunks of a ring,
/// and a counting thread adds each chunk to the `WindowAggregator`, so reading and counting
/// overlap on two cores.
///
/// Prepared packets (56 bytes each, never the packet bytes) travel in chunks of up to
/// 4,096 through a ring of 32 (7 MiB), allocated once: one lock round trip per chunk, none
/// per packet, and bounded memory. The ring is that deep so the reader keeps reading while
/// a closed window's record is built beside the counter (measured: 7% off `report` against
/// a ring of 8). The aggregator sees every packet in file order, so the
/// windows are exactly those of `PacketPump`; its `onClose` runs on the counting thread.
///
/// The decoding moves to whichever thread has time: while fewer than
/// half the ring's chunks wait for the counter, the reader leaves the next chunk's
/// frames undecoded where they lie in the file's memory map (a classic pcap file only) and
/// the counting thread decodes them before counting; when the counter falls behind (a
/// window's record being built beside it), the reader decodes again. With a mapped file
/// the counting thread also does the reader's page work: it lets go of the pages of the
/// chunks it has counted, and while it waits for the next chunk it maps in the pages the
/// reader comes to next.
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

    public convenience init(source: PacketSource, aggregator: WindowAggregator) throws(CaptureError) {
        try self.init(source: source, aggregator: aggregator, ringChunks: ChunkRing.defaultChunkCount)
    }

    /// A pump whose ring has `ringChunks` chunks (tests turn a small ring many times).
    init(source: PacketSource, aggregator: WindowAggregator, ringChunks: Int) throws(CaptureError) {
        // With a mapped file, the counting thread takes the page work over.
        let mapping = source.mapping
        let ring = ChunkRing(aggregator: aggregator, mapping: mapping, chunkCount: ringChunks)
        self.ring = ring
        reader = try PacketPump(
            source: source, aggregator: aggregator, buffer: ring.first, capacity: ChunkRing.chunkSize,
            releasesReadPages: false
        ) { chunk, readPosition in
            ring.publish(chunk, readPosition: readPosition)
        }
        ring.decoder = reader.decoder
        ring.canDefer = reader.records != nil
    }

    /// Frames and wire bytes read so far.
    public var framesRead: UInt64 { reader.framesRead }
    public var bytesRead: UInt64 { reader.bytesRead }
    /// Frames the reader left undecoded in the map and the counting thread decoded (read
    /// it after `drain`).
    public var framesDecodedByCounter: Int { ring.decodedByCounter }

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
    static let defaultChunkCount = 32
    let chunkCount: Int
    /// The reader leaves a chunk's frames to the counter while fewer chunks than this wait.
    let deferBelow: Int
    /// How far ahead of the reader the counting thread maps pages in.
    static let populateAhead = 16 << 20
    let aggregator: WindowAggregator
    /// Decodes deferred frames (set before the counting thread starts).
    var decoder: PacketDecoder?
    /// Whether the reader can leave frames undecoded at all (a classic pcap file read
    /// through a map; set before reading starts).
    var canDefer = false
    /// Whether the chunk being filled was asked to leave its frames (reading thread only).
    var fillDefers = false
    /// The file's memory map, when the counting thread does the page work.
    let mapping: MappedFile?
    let base: UnsafeMutablePointer<PreparedPacket>
    /// Guards `published`, `consumed`, `lengths`, `deferred`, `positions`, `readerDone` and
    /// `counterDone`.
    let condition = NSCondition()
    var published = 0
    var consumed = 0
    var lengths: [Int]
    /// Per chunk, whether the reader was asked to leave its frames (some may still have
    /// been decoded at once: libpcap read them, not `MappedRecords`).
    var deferred: [Bool]
    /// Per chunk, the reading position in the mapped file when it was handed on: its frames
    /// lie before it, the next chunk's after it.
    var positions: [Int]
    var readerDone = false
    var counterDone = false
    /// Deferred frames decoded so far (counting thread; read after `finishReading`).
    var decodedByCounter = 0
    /// The chunk being filled (reading thread only).
    var fillChunk = 0

    init(aggregator: WindowAggregator, mapping: MappedFile?, chunkCount: Int = ChunkRing.defaultChunkCount) {
        self.aggregator = aggregator
        self.mapping = mapping
        self.chunkCount = max(2, chunkCount)
        deferBelow = self.chunkCount / 2
        lengths = [Int](repeating: 0, count: self.chunkCount)
        deferred = [Bool](repeating: false, count: self.chunkCount)
        positions = [Int](repeating: 0, count: self.chunkCount)
        // Zeroed memory (an all-zero PreparedPacket is a valid one) whose pages the kernel
        // maps in as the ring first fills: nothing is written up front, so a small file does
        // not pay for 7 MiB it never uses (about 3 ms of start-up, measured).
        let slots = Self.chunkSize * self.chunkCount
        guard let memory = calloc(slots, MemoryLayout<PreparedPacket>.stride) else {
            fatalError("out of memory for the \(slots)-packet ring")
        }
        base = memory.bindMemory(to: PreparedPacket.self, capacity: slots)
    }

    deinit {
        free(base)
    }

    var first: UnsafeMutablePointer<PreparedPacket> { base }

    /// Hands a filled chunk to the counting thread; returns the next free chunk (waiting
    /// while all are taken), and whether to leave its frames to the counter.
    func publish(_ chunk: UnsafeMutableBufferPointer<PreparedPacket>, readPosition: Int) -> (next: UnsafeMutablePointer<PreparedPacket>, deferFrames: Bool) {
        condition.lock()
        lengths[fillChunk] = chunk.count
        deferred[fillChunk] = fillDefers
        positions[fillChunk] = readPosition
        published += 1
        condition.broadcast()
        while published - consumed >= chunkCount { condition.wait() }
        fillDefers = canDefer && published - consumed < deferBelow
        condition.unlock()
        fillChunk = published % chunkCount
        return (base + fillChunk * Self.chunkSize, fillDefers)
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
            while consumed == published && !readerDone {
                // Rather than sleep, map in the pages the reader reaches next.
                if let mapping, published > 0 {
                    let reading = positions[(published - 1) % chunkCount]
                    condition.unlock()
                    let mapped = mapping.populateStep(from: reading, before: reading + Self.populateAhead)
                    condition.lock()
                    // The reader may have published or finished while the lock was let go:
                    // look again before sleeping, or that wake-up is lost.
                    if mapped || consumed != published || readerDone { continue }
                }
                condition.wait()
            }
            if consumed == published {
                counterDone = true
                condition.broadcast()
                condition.unlock()
                return
            }
            let chunk = consumed % chunkCount
            let length = lengths[chunk]
            let hasDeferred = deferred[chunk]
            let position = positions[chunk]
            condition.unlock()
            let packets = UnsafeMutableBufferPointer(start: base + chunk * Self.chunkSize, count: length)
            if hasDeferred, let decoder { decodedByCounter += aggregator.prepareDeferred(packets, decoder: decoder) }
            aggregator.count(packets)
            // Every frame before this chunk's reading position has been counted.
            mapping?.release(before: position)
            condition.lock()
            consumed += 1
            condition.broadcast()
            condition.unlock()
        }
    }
}
