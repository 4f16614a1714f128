import CPcap
import TrafficCore

/// Moves packets from one `PacketSource` into batches of prepared packets (never a copy of
/// the packet bytes): each frame libpcap reads is decoded and attributed in its callback;
/// the plain records of a classic pcap file are read where they lie in its memory map
/// (`MappedRecords`; libpcap reads the rest) and, when asked, left there undecoded for the
/// thread that counts them. A batch is handed on when it is full and at the end of every
/// `dispatch`. No allocation and no lock per packet.
///
/// Two ways to use it:
/// - counting on the calling thread (`init(source:aggregator:)`): each batch goes to a
///   `WindowAggregator`, so every packet read has been counted when `dispatch` returns;
/// - as the walker of several counting threads (`ParallelPump`): the pump places each
///   frame in its window itself (a `WindowClock`), stores the window's start as the
///   prepared packet's time, marks late ones, hands on its batch whenever a window closes
///   and reports the close.
///
/// One thread uses a pump at a time (it may be made on one and handed to another), which
/// is why it is `@unchecked Sendable`.
///
/// ```swift
/// let pump = try PacketPump(source: source, aggregator: aggregator)
/// while try pump.dispatch(maxPackets: 10_000) > 0 {}
/// ```
public final class PacketPump: @unchecked Sendable {
    public let source: PacketSource
    let decoder: PacketDecoder
    let subsecondScale: Int64
    /// Decodes and attributes what is not left to the counting thread.
    let shard: WindowShard
    /// Prepared packets counted at a time on the calling thread (128 x 64 bytes stays in L1).
    static let batchSize = 128
    /// Where the next prepared packets go, and how many fit there.
    var batch: UnsafeMutablePointer<PreparedPacket>
    let capacity: Int
    var batched = 0
    /// Takes a batch, with the reading position in the file's map (its frames lie before
    /// it), and returns where to put the next one.
    let takeBatch: (UnsafeMutableBufferPointer<PreparedPacket>, _ readPosition: Int) -> UnsafeMutablePointer<PreparedPacket>
    /// Whether this pump lets go of the mapped pages it has read past (else its consumer
    /// does, once it is done with their frames).
    let releasesReadPages: Bool
    /// The plain records of a classic pcap file, read from its map until the first that is
    /// not plain; then `nil` and libpcap reads on.
    var records: MappedRecords?
    /// Whether mapped frames are left undecoded for the counting thread (its owner may
    /// change it between batches, on the reading thread).
    var defersMappedFrames: Bool
    /// The buffer this pump allocated itself (nil when the caller lends one).
    private let ownBuffer: UnsafeMutablePointer<PreparedPacket>?
    /// Frames read so far.
    public private(set) var framesRead: UInt64 = 0
    /// Wire bytes read so far.
    public private(set) var bytesRead: UInt64 = 0

    /// The clock that places frames (a walker's), and its open window's bounds for the
    /// packet path's check; `nil` when the consumer places them.
    var clock: WindowClock?
    var placedStart = Int64.max
    var placedEnd = Int64.min
    /// Told each window the clock closes, after the batch holding its frames was handed on.
    var onWindowClose: ((WindowFacts) -> Void)?

    /// A pump that counts its batches on the calling thread.
    public convenience init(source: PacketSource, aggregator: WindowAggregator) throws(CaptureError) {
        let buffer = UnsafeMutablePointer<PreparedPacket>.allocate(capacity: Self.batchSize)
        buffer.initialize(repeating: PreparedPacket(), count: Self.batchSize)
        try self.init(source: source, shard: aggregator.shard, buffer: buffer, capacity: Self.batchSize, owned: true) { full, _ in
            aggregator.count(full)
            return buffer
        }
    }

    /// A pump that fills `capacity` prepared packets at `buffer` and hands each batch to
    /// `takeBatch`, which returns the buffer to fill next.
    init(
        source: PacketSource, shard: WindowShard, buffer: UnsafeMutablePointer<PreparedPacket>, capacity: Int,
        owned: Bool = false, releasesReadPages: Bool = true, defersMappedFrames: Bool = false,
        takeBatch: @escaping (UnsafeMutableBufferPointer<PreparedPacket>, _ readPosition: Int) -> UnsafeMutablePointer<PreparedPacket>
    ) throws(CaptureError) {
        self.source = source
        self.shard = shard
        self.takeBatch = takeBatch
        self.releasesReadPages = releasesReadPages
        self.defersMappedFrames = defersMappedFrames
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

    /// Makes this pump place frames with `clock` (and continue it: the clock runs on
    /// across files), reporting each window it closes to `onClose`.
    func place(with clock: WindowClock, onClose: @escaping (WindowFacts) -> Void) {
        self.clock = clock
        (placedStart, placedEnd) = clock.isOpen ? (clock.start, clock.end) : (.max, .min)
        onWindowClose = onClose
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

    /// Reads a capture file to its end, or until `proceed` (asked before each batch of up
    /// to `batch` frames) says to stop.
    public func drain(batch: Int32 = 10_000, while proceed: () -> Bool = { true }) throws(CaptureError) {
        while proceed(), try dispatch(maxPackets: batch) > 0 {}
    }

    func handOnBatch() {
        guard batched > 0 else { return }
        batch = takeBatch(UnsafeMutableBufferPointer(start: batch, count: batched), readPosition ?? 0)
        batched = 0
    }

    /// The time a frame is stored with: its own, or, when this pump places frames, the
    /// start of the window it is counted in (`late`: older than that window).
    @inline(__always)
    func placed(_ time: Int64, late: inout Bool) -> Int64 {
        guard clock != nil else { return time }
        if time >= placedStart && time < placedEnd { return placedStart }
        return placeSlowly(time, late: &late)
    }

    /// The slow path of `placed`: the clock opens, closes (the batch so far is handed on
    /// first, so every frame of the closed window is in a batch before the close is told)
    /// or finds the frame late.
    private func placeSlowly(_ time: Int64, late: inout Bool) -> Int64 {
        guard var clock else { return time }
        let (closed, isLate) = clock.place(time)
        self.clock = clock
        (placedStart, placedEnd) = (clock.start, clock.end)
        if let closed {
            handOnBatch()
            onWindowClose?(closed)
        }
        late = isLate
        return clock.start
    }

    /// A frame libpcap has read (into its buffer, which the next read overwrites).
    @inline(__always)
    func handle(_ header: UnsafePointer<pcap_pkthdr>, _ bytes: UnsafePointer<UInt8>) {
        let wire = Int(header.pointee.len)
        let captured = Int(header.pointee.caplen)
        var late = false
        let timestamp = placed(PacketSource.nanoseconds(header, scale: subsecondScale), late: &late)
        framesRead &+= 1
        bytesRead &+= UInt64(truncatingIfNeeded: wire)
        // Written in place by TrafficCore: a returned value would be copied over from a temporary.
        let slot = batch + batched
        shard.prepare(
            frame: UnsafeRawBufferPointer(start: bytes, count: captured), decoder: decoder, timestamp: timestamp, wireLength: wire,
            into: slot)
        if late { slot.pointee.markLate() }
        batched &+= 1
        if batched == capacity { handOnBatch() }
    }

    /// A frame read in the file's map, where it stays: it may be left undecoded.
    @inline(__always)
    func handle(_ record: MappedRecords.Record) {
        var late = false
        let timestamp = placed(record.timestamp, late: &late)
        framesRead &+= 1
        bytesRead &+= UInt64(truncatingIfNeeded: record.wireLength)
        let slot = batch + batched
        if defersMappedFrames {
            PreparedPacket.storeDeferred(
                frame: record.frame, capturedLength: record.capturedLength, timestamp: timestamp,
                wireLength: record.wireLength, into: slot)
        } else {
            shard.prepare(
                frame: UnsafeRawBufferPointer(start: record.frame, count: record.capturedLength), decoder: decoder,
                timestamp: timestamp, wireLength: record.wireLength, into: slot)
        }
        if late { slot.pointee.markLate() }
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
