import CPcap
import TrafficCore

/// Moves packets from one `PacketSource` into a `WindowAggregator`: each frame is decoded
/// and attributed in libpcap's callback into a batch of prepared packets (never a copy of
/// the packet bytes). A batch is handed on when it is full and at the end of every
/// `pcap_dispatch`: counted on the calling thread (so every packet read has been counted
/// when `dispatch` returns), or, inside `PipelinedPump`, passed to a counting thread, which
/// may ask for the next batch's frames to be left undecoded where they lie in the file's
/// memory map (`MappedFrames`) and decode them itself. No allocation and no lock per packet.
///
/// ```swift
/// let pump = try PacketPump(source: source, aggregator: aggregator)
/// while try pump.dispatch(maxPackets: 10_000) > 0 {}
/// ```
public final class PacketPump {
    public let source: PacketSource
    let decoder: PacketDecoder
    let subsecondScale: Int64
    let aggregator: WindowAggregator
    /// Prepared packets counted at a time on the calling thread (128 x 56 bytes stays in L1).
    static let batchSize = 128
    /// Where the next prepared packets go, and how many fit there.
    var batch: UnsafeMutablePointer<PreparedPacket>
    let capacity: Int
    var batched = 0
    /// Takes a batch and returns where to put the next one, and whether to leave that one's
    /// frames undecoded (when they can be found in the map).
    let takeBatch: (UnsafeMutableBufferPointer<PreparedPacket>) -> (next: UnsafeMutablePointer<PreparedPacket>, deferFrames: Bool)
    /// Whether this pump lets go of the mapped pages libpcap has read past (else its
    /// consumer does, once it is done with their frames).
    let releasesReadPages: Bool
    /// Where frames lie in the mapped file, for batches whose frames are left undecoded (only
    /// for a consumer that decodes them: `mayDeferFrames`).
    let mappedFrames: MappedFrames?
    /// Whether this batch's frames are left undecoded where `mappedFrames` finds them.
    var deferFrames = false
    /// The buffer this pump allocated itself (nil when the caller lends one).
    private let ownBuffer: UnsafeMutablePointer<PreparedPacket>?
    /// Frames read so far.
    public private(set) var framesRead: UInt64 = 0
    /// Wire bytes read so far.
    public private(set) var bytesRead: UInt64 = 0

    /// A pump that counts its batches on the calling thread.
    public convenience init(source: PacketSource, aggregator: WindowAggregator) throws(CaptureError) {
        let buffer = UnsafeMutablePointer<PreparedPacket>.allocate(capacity: Self.batchSize)
        buffer.initialize(repeating: PreparedPacket(), count: Self.batchSize)
        try self.init(source: source, aggregator: aggregator, buffer: buffer, capacity: Self.batchSize, owned: true) { full in
            aggregator.count(full)
            return (buffer, false)
        }
    }

    /// A pump that fills `capacity` prepared packets at `buffer` and hands each batch to
    /// `takeBatch`, which returns the buffer to fill next (`PipelinedPump`'s ring chunks).
    init(
        source: PacketSource, aggregator: WindowAggregator, buffer: UnsafeMutablePointer<PreparedPacket>, capacity: Int,
        owned: Bool = false, releasesReadPages: Bool = true, mayDeferFrames: Bool = false,
        takeBatch: @escaping (UnsafeMutableBufferPointer<PreparedPacket>) -> (next: UnsafeMutablePointer<PreparedPacket>, deferFrames: Bool)
    ) throws(CaptureError) {
        self.source = source
        self.aggregator = aggregator
        self.takeBatch = takeBatch
        self.releasesReadPages = releasesReadPages
        mappedFrames = mayDeferFrames ? source.mappedFrames : nil
        self.capacity = capacity
        batch = buffer
        ownBuffer = owned ? buffer : nil
        do {
            decoder = try source.decoder()
        } catch {
            ownBuffer?.deallocate()
            throw error
        }
        subsecondScale = source.subsecondScale
    }

    deinit {
        ownBuffer?.deallocate()
    }

    /// Processes up to `maxPackets` packets (`-1`: everything available). Returns how many were
    /// processed: 0 means end of file for a file, nothing waiting for a non-blocking live capture.
    @discardableResult
    public func dispatch(maxPackets: Int32) throws(CaptureError) -> Int {
        let context = Unmanaged.passUnretained(self).toOpaque().assumingMemoryBound(to: UInt8.self)
        let n = pcap_dispatch(source.handle, maxPackets, packetHandler, context)
        handOnBatch()
        if releasesReadPages { source.releaseReadPages() }
        if n >= 0 { return Int(n) }
        if n == PCAP_ERROR_BREAK { return 0 }
        throw source.readError()
    }

    /// Reads a capture file to its end.
    public func drain(batch: Int32 = 10_000) throws(CaptureError) {
        while try dispatch(maxPackets: batch) > 0 {}
    }

    func handOnBatch() {
        guard batched > 0 else { return }
        (batch, deferFrames) = takeBatch(UnsafeMutableBufferPointer(start: batch, count: batched))
        batched = 0
    }

    @inline(__always)
    func handle(_ header: UnsafePointer<pcap_pkthdr>, _ bytes: UnsafePointer<UInt8>) {
        let wire = Int(header.pointee.len)
        let captured = Int(header.pointee.caplen)
        let timestamp = PacketSource.nanoseconds(header, scale: subsecondScale)
        framesRead &+= 1
        bytesRead &+= UInt64(truncatingIfNeeded: wire)
        // Written in place by TrafficCore: a returned value would be copied over from a temporary.
        if deferFrames, let frame = mappedFrames?.frame(capturedLength: captured, wireLength: wire) {
            PreparedPacket.storeDeferred(frame: frame, capturedLength: captured, timestamp: timestamp, wireLength: wire, into: batch + batched)
        } else {
            aggregator.prepare(
                frame: UnsafeRawBufferPointer(start: bytes, count: captured), decoder: decoder, timestamp: timestamp, wireLength: wire,
                into: batch + batched)
        }
        batched &+= 1
        if batched == capacity { handOnBatch() }
    }
}

private let packetHandler: pcap_handler = { user, header, bytes in
    guard let user, let header, let bytes else { return }
    Unmanaged<PacketPump>.fromOpaque(UnsafeRawPointer(user))._withUnsafeGuaranteedRef { pump in
        pump.handle(header, bytes)
    }
}
