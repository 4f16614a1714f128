import CPcap
import Foundation
import TrafficCore

/// Reads a capture file on two threads: the calling thread runs libpcap, decodes and
/// attributes each frame (`WindowAggregator.prepare`), and a counting thread adds the prepared
/// packets to the `WindowAggregator`, so reading and counting overlap on two cores.
///
/// Prepared packets (56 bytes each, never the packet bytes) travel in chunks of 4,096
/// through a ring of eight, allocated once: one lock round trip per chunk, none per
/// packet, and bounded memory. The aggregator sees every packet in file order, so the
/// windows are exactly those of `PacketPump`; its `onClose` runs on the counting thread.
///
/// ```swift
/// let pump = try PipelinedPump(source: try PacketSource.openFile("big.pcap"), aggregator: aggregator)
/// try pump.drain()          // returns when every packet read has been counted
/// aggregator.finish()
/// ```
public final class PipelinedPump: @unchecked Sendable {
    public let source: PacketSource
    let decoder: PacketDecoder
    let subsecondScale: Int64
    let aggregator: WindowAggregator

    static let chunkSize = 4096
    static let chunkCount = 8
    let ring: UnsafeMutablePointer<PreparedPacket>
    /// Guards `published`, `consumed`, `lengths`, `readerDone` and `counterDone`.
    let condition = NSCondition()
    var published = 0
    var consumed = 0
    var lengths = [Int](repeating: 0, count: PipelinedPump.chunkCount)
    var readerDone = false
    var counterDone = false
    /// The reader's chunk and how much of it is filled (reader thread only).
    var fillChunk = 0
    var fillCount = 0

    /// Whether splitting is worth it here: it needs a second core.
    public static var isUseful: Bool { ProcessInfo.processInfo.activeProcessorCount >= 2 }

    public init(source: PacketSource, aggregator: WindowAggregator) throws(CaptureError) {
        self.source = source
        self.aggregator = aggregator
        decoder = try source.decoder()
        subsecondScale = source.subsecondScale
        ring = .allocate(capacity: Self.chunkSize * Self.chunkCount)
        ring.initialize(repeating: PreparedPacket(), count: Self.chunkSize * Self.chunkCount)
    }

    deinit {
        ring.deallocate()
    }

    /// Reads the file to its end (or its first read error, thrown after every packet read
    /// before it has been counted).
    public func drain() throws(CaptureError) {
        condition.lock()
        published = 0
        consumed = 0
        readerDone = false
        counterDone = false
        condition.unlock()
        fillChunk = 0
        fillCount = 0
        let counter = Thread { [self] in countLoop() }
        counter.name = "trafficmon-count"
        counter.start()

        var failure: CaptureError?
        let context = Unmanaged.passUnretained(self).toOpaque().assumingMemoryBound(to: UInt8.self)
        while true {
            let n = pcap_dispatch(source.handle, 10_000, pipelinedHandler, context)
            source.releaseReadPages()
            if n > 0 { continue }
            if n < 0 && n != PCAP_ERROR_BREAK { failure = source.readError() }
            break
        }
        if fillCount > 0 { publish() }
        condition.lock()
        readerDone = true
        condition.broadcast()
        while !counterDone { condition.wait() }
        condition.unlock()
        if let failure { throw failure }
    }

    @inline(__always)
    func handle(_ header: UnsafePointer<pcap_pkthdr>, _ bytes: UnsafePointer<UInt8>) {
        ring[fillChunk &* Self.chunkSize &+ fillCount] = aggregator.prepare(
            frame: UnsafeRawBufferPointer(start: bytes, count: Int(header.pointee.caplen)), decoder: decoder,
            timestamp: PacketSource.nanoseconds(header, scale: subsecondScale), wireLength: Int(header.pointee.len))
        fillCount &+= 1
        if fillCount == Self.chunkSize { publish() }
    }

    /// Hands the filled chunk to the counting thread and waits for a free one.
    func publish() {
        condition.lock()
        lengths[fillChunk] = fillCount
        published += 1
        condition.broadcast()
        while published - consumed >= Self.chunkCount { condition.wait() }
        condition.unlock()
        fillChunk = published % Self.chunkCount
        fillCount = 0
    }

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
            aggregator.count(UnsafeMutableBufferPointer(start: ring + chunk * Self.chunkSize, count: length))
            condition.lock()
            consumed += 1
            condition.broadcast()
            condition.unlock()
        }
    }
}

private let pipelinedHandler: pcap_handler = { user, header, bytes in
    guard let user, let header, let bytes else { return }
    Unmanaged<PipelinedPump>.fromOpaque(UnsafeRawPointer(user))._withUnsafeGuaranteedRef { pump in
        pump.handle(header, bytes)
    }
}
