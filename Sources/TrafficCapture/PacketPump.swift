import CPcap
import TrafficCore

/// Moves packets from one `PacketSource` into a `WindowAggregator`: each frame is decoded
/// and attributed into a batch of prepared packets (never a copy of the packet bytes), in
/// libpcap's callback, or, for the plain records of a classic pcap file, where they lie in
/// its memory map (`MappedRecords`; libpcap reads the rest). A batch is handed on when it
/// is full and at the end of every `dispatch`: counted on the calling thread (so every
/// packet read has been counted when `dispatch` returns), or, inside `PipelinedPump`,
/// passed to a counting thread, which may ask for the next batch's mapped frames to be left
/// undecoded and decode them itself. No allocation and no lock per packet.
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
    /// Takes a batch, with the reading position in the file's map (its frames lie before
    /// it), and returns where to put the next one, and whether to leave that one's mapped
    /// frames undecoded.
    let takeBatch: (UnsafeMutableBufferPointer<PreparedPacket>, _ readPosition: Int) -> (next: UnsafeMutablePointer<PreparedPacket>, deferFrames: Bool)
    /// Whether this pump lets go of the mapped pages it has read past (else its consumer
    /// does, once it is done with their frames).
    let releasesReadPages: Bool
    /// The plain records of a classic pcap file, read from its map until the first that is
    /// not plain; then `nil` and libpcap reads on.
    var records: MappedRecords?
    /// Whether this batch's mapped frames are left undecoded.
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
        try self.init(source: source, aggregator: aggregator, buffer: buffer, capacity: Self.batchSize, owned: true) { full, _ in
            aggregator.count(full)
            return (buffer, false)
        }
    }

    /// A pump that fills `capacity` prepared packets at `buffer` and hands each batch to
    /// `takeBatch`, which returns the buffer to fill next (`PipelinedPump`'s ring chunks).
    init(
        source: PacketSource, aggregator: WindowAggregator, buffer: UnsafeMutablePointer<PreparedPacket>, capacity: Int,
        owned: Bool = false, releasesReadPages: Bool = true,
        takeBatch: @escaping (UnsafeMutableBufferPointer<PreparedPacket>, _ readPosition: Int) -> (next: UnsafeMutablePointer<PreparedPacket>, deferFrames: Bool)
    ) throws(CaptureError) {
        self.source = source
        self.aggregator = aggregator
        self.takeBatch = takeBatch
        self.releasesReadPages = releasesReadPages
        records = MappedRecords(source: source)
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
        if records != nil {
            let n = readMappedRecords(maxPackets: maxPackets <= 0 ? Int.max : Int(maxPackets))
            if n > 0 {
                finishDispatch()
                return n
            }
            // Truncated while read: everything before the cut has been counted.
            if records?.shrank == true || source.mapping?.shrank == true {
                finishDispatch()
                throw source.shrankError()
            }
            // The end of the plain records: libpcap reads on from the next one.
            guard records?.handBack() == true else {
                throw source.readError(reason: "cannot move the read position in the capture file's memory map")
            }
            records = nil
        }
        let context = Unmanaged.passUnretained(self).toOpaque().assumingMemoryBound(to: UInt8.self)
        let n = pcap_dispatch(source.handle, maxPackets, packetHandler, context)
        finishDispatch()
        // libpcap reads a mapped file through a stream over the map: a cut shows as an
        // error or as records of 0xFF bytes (`MappedFile`). One stat per read call.
        if let mapping = source.mapping, mapping.shrank { throw source.shrankError() }
        if n >= 0 { return Int(n) }
        if n == PCAP_ERROR_BREAK { return 0 }
        throw source.readError()
    }

    /// Reads up to `maxPackets` packets that pass the filter from the mapped records;
    /// returns how many (0: no plain record is left).
    private func readMappedRecords(maxPackets: Int) -> Int {
        guard var walk = records else { return 0 }
        defer { records = walk }
        var n = 0
        if let program = source.filterProgram {
            while n < maxPackets, let record = walk.next() {
                var header = pcap_pkthdr()
                header.caplen = UInt32(truncatingIfNeeded: record.capturedLength)
                header.len = UInt32(truncatingIfNeeded: record.wireLength)
                guard pcap_offline_filter(program, &header, record.frame.assumingMemoryBound(to: UInt8.self)) != 0 else { continue }
                handle(record)
                n &+= 1
            }
        } else {
            while n < maxPackets, let record = walk.next() {
                handle(record)
                n &+= 1
            }
        }
        return n
    }

    /// Where reading stands in the file's memory map (`nil` without one).
    var readPosition: Int? {
        if let records { return records.offset }
        return source.libpcapReadPosition
    }

    private func finishDispatch() {
        handOnBatch()
        if releasesReadPages, let position = readPosition { source.mapping?.release(before: position) }
    }

    /// Reads a capture file to its end.
    public func drain(batch: Int32 = 10_000) throws(CaptureError) {
        while try dispatch(maxPackets: batch) > 0 {}
    }

    func handOnBatch() {
        guard batched > 0 else { return }
        (batch, deferFrames) = takeBatch(UnsafeMutableBufferPointer(start: batch, count: batched), readPosition ?? 0)
        batched = 0
    }

    /// A frame libpcap has read (into its buffer, which the next read overwrites).
    @inline(__always)
    func handle(_ header: UnsafePointer<pcap_pkthdr>, _ bytes: UnsafePointer<UInt8>) {
        let wire = Int(header.pointee.len)
        let captured = Int(header.pointee.caplen)
        let timestamp = PacketSource.nanoseconds(header, scale: subsecondScale)
        framesRead &+= 1
        bytesRead &+= UInt64(truncatingIfNeeded: wire)
        // Written in place by TrafficCore: a returned value would be copied over from a temporary.
        aggregator.prepare(
            frame: UnsafeRawBufferPointer(start: bytes, count: captured), decoder: decoder, timestamp: timestamp, wireLength: wire,
            into: batch + batched)
        batched &+= 1
        if batched == capacity { handOnBatch() }
    }

    /// A frame read in the file's map, where it stays: it may be left undecoded.
    @inline(__always)
    func handle(_ record: MappedRecords.Record) {
        framesRead &+= 1
        bytesRead &+= UInt64(truncatingIfNeeded: record.wireLength)
        if deferFrames {
            PreparedPacket.storeDeferred(
                frame: record.frame, capturedLength: record.capturedLength, timestamp: record.timestamp,
                wireLength: record.wireLength, into: batch + batched)
        } else {
            aggregator.prepare(
                frame: UnsafeRawBufferPointer(start: record.frame, count: record.capturedLength), decoder: decoder,
                timestamp: record.timestamp, wireLength: record.wireLength, into: batch + batched)
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
