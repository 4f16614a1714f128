import Foundation
import Synchronization
import TrafficCore

/// Reads capture files on one thread (the walker) and decodes and counts on `threads`
/// others, each with a `WindowShard` of its own.
///
/// The walker is a `PacketPump` that places every frame in its window with the one
/// `WindowClock` (event time, late packets, the close as packet time passes a window),
/// leaves the frames of a classic pcap file undecoded where they lie in its memory map
/// (libpcap's frames, which its next read overwrites, it decodes itself), and hands chunks
/// of up to 4,096 prepared packets (64 bytes each, never the packet bytes) to the counting
/// threads in turn. When the clock closes a window, every counting thread is told after
/// its chunks of that window: it hands its shard's tables for the window over, and once
/// all have, the walker passes the window, with every shard's tables, to `onClose`, in
/// window order (the tables are merged when the record is built).
///
/// The walker leaves the frames to the counting threads while they keep up; when
/// `2 × threads` chunks or more wait for them, it decodes the next chunk's frames itself
/// (with one counting thread on two cores the counter is the slower side, and the walker
/// has time to spare), so the work balances between them.
///
/// One lock round trip per chunk and per window close, none per packet; a fixed set of
/// chunks, allocated once, so memory stays bounded whatever the file. The windows and
/// their totals are exactly those of counting on one thread; which parties are listed can
/// differ only once a `--max-clients` or flow cap is reached (each shard admits its own
/// first comers, the merge admits again).
///
/// ```swift
/// let pump = try ParallelPump(configuration: configuration, threads: 4) { closed in write(closed.record()) }
/// for source in sources { try pump.read(source) }
/// pump.finish()
/// ```
public final class ParallelPump: @unchecked Sendable {
    public let configuration: WindowAggregator.Configuration
    public let threads: Int
    let onClose: (ClosedWindow) -> Void
    /// The one clock, continued from file to file (walker thread only).
    var clock: WindowClock
    let shards: [WindowShard]

    static let chunkSize = 4096
    let chunkCount: Int
    let base: UnsafeMutablePointer<PreparedPacket>

    /// Guards everything below.
    let condition = NSCondition()
    var freeChunks: [Int]
    /// Per counting thread, the work handed to it, in order.
    var queues: [[Item]]
    var queueHeads: [Int]
    /// Windows closed by the clock whose tables are still being handed over, oldest first.
    var pending: [PendingClose] = []
    var workersRunning: Int
    /// Every chunk handed on, by sequence number: counted yet, and its file's map with the
    /// read position when it was handed on (its frames lie before it), so the pages of
    /// frames counted can be let go.
    /// Only the chunks from `firstChunk` on are kept (the counted ones before the last
    /// released are let go), so the list stays short whatever the file.
    var chunks: [(done: Bool, position: Int, mapping: MappedFile?)] = []
    var firstChunk = 0
    var releasedThrough = 0
    /// The map of the file being read (walker thread).
    var mapping: MappedFile?
    var nextWorker = 0
    var decodedByCounters = 0
    /// Chunks handed on and not yet taken by a counting thread.
    var queuedChunks = 0
    /// Whether the walker decodes frames itself while the counting threads are behind.
    let walkerDecodesWhenBehind: Bool
    /// The walker's pump of the file being read (walker thread).
    private var walker: PacketPump?
    /// Set by `stop()`: `read` returns at its next chunk of frames.
    private let stopRequested = Atomic<Bool>(false)

    enum Item {
        case chunk(index: Int, count: Int, sequence: Int, decoder: PacketDecoder)
        case close(start: Int64)
        case stop
    }

    struct PendingClose {
        var facts: WindowFacts
        var tables: [(WindowTables, WindowShard?)] = []
        var remaining: Int
    }

    /// Frames and wire bytes read so far (walker thread).
    public private(set) var framesRead: UInt64 = 0
    public private(set) var bytesRead: UInt64 = 0
    /// Frames left undecoded by the walker and decoded by the counting threads (read after `finish`).
    public var framesDecodedByCounters: Int { condition.withLock { decodedByCounters } }

    /// - Parameters:
    ///   - chunks: how many chunks of 4,096 prepared packets (256 KiB each) circulate, at
    ///     least `threads + 2`; by default 16, and two more per counting thread past one.
    public init(
        configuration: WindowAggregator.Configuration, threads: Int, chunks: Int? = nil, walkerDecodesWhenBehind: Bool = true,
        onClose: @escaping (ClosedWindow) -> Void
    ) throws(CaptureError) {
        self.configuration = configuration
        self.walkerDecodesWhenBehind = walkerDecodesWhenBehind
        self.threads = max(1, threads)
        self.onClose = onClose
        clock = WindowClock(windowLength: configuration.windowLength)
        shards = (0..<self.threads).map { _ in WindowShard(configuration: configuration) }
        chunkCount = max(self.threads + 2, chunks ?? Self.defaultChunks(threads: self.threads))
        freeChunks = Array((0..<chunkCount).reversed())
        queues = Array(repeating: [], count: self.threads)
        queueHeads = Array(repeating: 0, count: self.threads)
        workersRunning = self.threads
        // Zeroed memory (an all-zero PreparedPacket is a valid one) whose pages the kernel
        // maps in as the chunks first fill: a small file does not pay for all of it.
        let slots = Self.chunkSize * chunkCount
        guard let memory = calloc(slots, MemoryLayout<PreparedPacket>.stride) else {
            throw .outOfMemory(what: "\(chunkCount) chunks of \(Self.chunkSize) packets")
        }
        base = memory.bindMemory(to: PreparedPacket.self, capacity: slots)
        for i in 0..<self.threads {
            let thread = Thread { [self] in work(i) }
            thread.name = "trafficmon-count-\(i)"
            thread.start()
        }
    }

    deinit {
        free(base)
    }

    /// 16 chunks (4 MiB) for one counting thread, two more per added thread: enough that the
    /// walker rarely waits for a free one, few enough that the prepared packets stay in the
    /// last-level cache between the walker and the counters (README, Performance).
    static func defaultChunks(threads: Int) -> Int {
        16 + 2 * (max(1, threads) - 1)
    }

    // MARK: The walker

    /// Reads `source` to its end (or its first read error, thrown once the windows closed
    /// before it have been handed on).
    public func read(_ source: PacketSource) throws(CaptureError) {
        let first = takeFreeChunk()
        mapping = source.mapping
        let pump: PacketPump
        do {
            pump = try PacketPump(
                source: source, shard: shards[0], buffer: base + first * Self.chunkSize, capacity: Self.chunkSize,
                releasesReadPages: false, defersMappedFrames: true
            ) { [self] chunk, position in
                let behind = publish(chunk, position: position)
                walker?.defersMappedFrames = !(walkerDecodesWhenBehind && behind)
                return base + takeFreeChunk() * Self.chunkSize
            }
        } catch {
            giveBack(chunk: first)
            throw error
        }
        walker = pump
        let decoder = pump.decoder
        currentDecoder = decoder
        pump.place(with: clock) { [self] facts in broadcastClose(facts) }
        defer {
            walker = nil
            if let placed = pump.clock { clock = placed }
            framesRead &+= pump.framesRead
            bytesRead &+= pump.bytesRead
            // The chunk the pump would have filled next.
            giveBack(chunk: (pump.batch - base) / Self.chunkSize)
        }
        try pump.drain(batch: Int32(Self.chunkSize * 4)) { !stopRequested.load(ordering: .relaxed) }
    }

    /// Makes `read` return soon, with the frames read so far counted (from any thread: the
    /// consumer of the windows, say, when it cannot use them). `finish()` is still called.
    public func stop() {
        stopRequested.store(true, ordering: .relaxed)
    }

    /// The decoder of the file being read (walker thread).
    private var currentDecoder: PacketDecoder?

    /// Closes the last window (marked partial), waits until every window has been handed
    /// to `onClose`, and stops the counting threads. Once per pump.
    public func finish() {
        if let facts = clock.finish() { broadcastClose(facts) }
        condition.lock()
        for i in 0..<threads { queues[i].append(.stop) }
        condition.broadcast()
        waitHandingOnCloses { workersRunning > 0 || !pending.isEmpty }
        condition.unlock()
    }

    /// Hands a filled chunk to the next counting thread; true when the counting threads
    /// have fallen behind (`2 × threads` chunks or more waiting).
    private func publish(_ chunk: UnsafeMutableBufferPointer<PreparedPacket>, position: Int) -> Bool {
        guard let baseAddress = chunk.baseAddress, let decoder = currentDecoder else { return false }
        let index = (baseAddress - base) / Self.chunkSize
        condition.lock()
        let sequence = firstChunk + chunks.count
        chunks.append((false, position, mapping))
        queues[nextWorker].append(.chunk(index: index, count: chunk.count, sequence: sequence, decoder: decoder))
        nextWorker = (nextWorker + 1) % threads
        queuedChunks += 1
        let behind = queuedChunks >= 2 * threads
        condition.broadcast()
        let ready = takeReadyCloses()
        condition.unlock()
        emit(ready)
        return behind
    }

    /// Tells every counting thread, after its chunks so far, that `facts`' window closed.
    private func broadcastClose(_ facts: WindowFacts) {
        var facts = facts
        facts.sources = ["file"]
        condition.lock()
        pending.append(PendingClose(facts: facts, remaining: threads))
        for i in 0..<threads { queues[i].append(.close(start: facts.start)) }
        condition.broadcast()
        condition.unlock()
    }

    /// With the lock held: waits while `blocked()` holds, handing closed windows on
    /// (without the lock) as they become ready.
    private func waitHandingOnCloses(while blocked: () -> Bool) {
        while blocked() {
            let ready = takeReadyCloses()
            if !ready.isEmpty {
                condition.unlock()
                emit(ready)
                condition.lock()
                continue
            }
            condition.wait()
        }
    }

    /// A free chunk, waiting (and handing on closed windows meanwhile) while all are taken.
    private func takeFreeChunk() -> Int {
        condition.lock()
        waitHandingOnCloses { freeChunks.isEmpty }
        let chunk = freeChunks.removeLast()
        condition.unlock()
        return chunk
    }

    private func giveBack(chunk: Int) {
        condition.withLock { freeChunks.append(chunk) }
    }

    /// The closed windows every counting thread has handed over, oldest first (under the lock).
    private func takeReadyCloses() -> [ClosedWindow] {
        var ready: [ClosedWindow] = []
        while let first = pending.first, first.remaining == 0 {
            pending.removeFirst()
            ready.append(ClosedWindow(facts: first.facts, tables: first.tables, configuration: configuration))
        }
        return ready
    }

    private func emit(_ windows: [ClosedWindow]) {
        for window in windows { onClose(window) }
    }

    // MARK: The counting threads

    private func work(_ i: Int) {
        let shard = shards[i]
        while true {
            condition.lock()
            while queueHeads[i] == queues[i].count {
                // Rather than sleep, map in the pages the walker reads next (one step; the
                // first counting thread only: the map's populate state is one thread's).
                if i == 0, let (mapping, reading) = populateTarget() {
                    condition.unlock()
                    let mapped = mapping.populateStep(from: reading, before: reading + Self.populateAhead)
                    condition.lock()
                    // Work may have been queued while the lock was let go: look again
                    // before sleeping, or that wake-up is lost.
                    if mapped || queueHeads[i] != queues[i].count { continue }
                }
                condition.wait()
            }
            let item = queues[i][queueHeads[i]]
            queueHeads[i] += 1
            if case .chunk = item { queuedChunks -= 1 }
            if queueHeads[i] > 1024 {
                queues[i].removeFirst(queueHeads[i])
                queueHeads[i] = 0
            }
            condition.unlock()
            switch item {
            case .chunk(let index, let count, let sequence, let decoder):
                let packets = UnsafeMutableBufferPointer(start: base + index * Self.chunkSize, count: count)
                let decoded = shard.prepareDeferred(packets, decoder: decoder)
                shard.countPlaced(packets)
                condition.lock()
                decodedByCounters += decoded
                freeChunks.append(index)
                let release = markDone(sequence)
                condition.broadcast()
                condition.unlock()
                if let (mapping, position) = release { mapping.release(before: position) }
            case .close(let start):
                let tables = shard.take(start)
                condition.lock()
                if let k = pending.firstIndex(where: { $0.facts.start == start }) {
                    if let tables { pending[k].tables.append((tables, shard)) }
                    pending[k].remaining -= 1
                }
                condition.broadcast()
                condition.unlock()
            case .stop:
                condition.lock()
                workersRunning -= 1
                condition.broadcast()
                condition.unlock()
                return
            }
        }
    }

    /// How far ahead of the walker an idle counting thread maps the file's pages in.
    static let populateAhead = 16 << 20

    /// The map being read and the walker's position in it (under the lock).
    private func populateTarget() -> (MappedFile, Int)? {
        guard let last = chunks.last, let mapping = last.mapping else { return nil }
        return (mapping, last.position)
    }

    /// Notes chunk `sequence` counted; returns the map and position before which every
    /// frame has now been counted, when that moved on (under the lock).
    private func markDone(_ sequence: Int) -> (MappedFile, Int)? {
        guard sequence >= firstChunk, sequence < firstChunk + chunks.count else { return nil }
        chunks[sequence - firstChunk].done = true
        let before = releasedThrough
        while releasedThrough < firstChunk + chunks.count && chunks[releasedThrough - firstChunk].done { releasedThrough += 1 }
        guard releasedThrough > before else { return nil }
        let last = chunks[releasedThrough - 1 - firstChunk]
        // Keep the last released chunk (the next release starts after it) and what follows.
        if releasedThrough - 1 - firstChunk >= 256 {
            chunks.removeFirst(releasedThrough - 1 - firstChunk)
            firstChunk = releasedThrough - 1
        }
        guard let mapping = last.mapping else { return nil }
        return (mapping, last.position)
    }
}
