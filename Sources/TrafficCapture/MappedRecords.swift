import CPcap
import CTrafficCoreShims
import Foundation
import TrafficCore

/// Reads the records of a classic pcap file where they lie in its memory map, instead of
/// having libpcap copy each one through stdio into its buffer: no copy and no stdio call
/// per record, and the frame stays in the map (so it can be decoded later, on another
/// thread: `ParallelPump`).
///
/// libpcap has opened the file and checked its header (link type, snapshot length, byte
/// order and time precision are libpcap's), and stays the reader of anything unusual:
/// only plain records are read here. At the first record that is not plain, or at the
/// end, `handBack()` moves libpcap's stream (`fseek`) to that record and libpcap reads the
/// rest of the file itself: its cuts to the snapshot length, its errors ("invalid packet
/// capture length", "truncated dump file"), its end of file. A plain record is one where
/// every libpcap 1.10 release does exactly what `next()` does:
/// - a pcap 2.4 file (not 2.3 or older, whose two lengths libpcap may swap; not the
///   modified formats with longer record headers: other magic numbers);
/// - a captured length within the snapshot length and within `MAXIMUM_SNAPLEN` (262,144),
///   and the whole record within the file;
/// - time fields below 2^31 (libpcap 1.10.3 reads them as signed, 1.10.6 as unsigned);
/// - a link type whose frames libpcap does not rewrite: not Linux cooked captures (SLL,
///   SLL2) written in the other byte order, whose pseudo-headers it swaps;
/// - a wire length above 0.
///
/// A file truncated while it is read ends at its cut: records are read only up to where the
/// file's size was last checked (`limit`, moved on every 4 MiB), and `shrank` says so.
///
/// ```swift
/// if var records = MappedRecords(source: source) {
///     while let record = records.next() { use(record.frame, record.capturedLength) }
///     _ = records.handBack()   // libpcap reads on from here
/// }
/// ```
struct MappedRecords: @unchecked Sendable {
    /// One record: the frame in the map, its two lengths and its time in nanoseconds.
    struct Record {
        var frame: UnsafeRawPointer
        var capturedLength: Int
        var wireLength: Int
        var timestamp: Int64
    }

    let base: UnsafeRawPointer
    let length: Int
    /// The map, for the file's size as it is read.
    let mapping: MappedFile
    /// Records are read up to here: the file was at least this long when last checked
    /// (`stat` each `checkStep`, before reading past it), so a file truncated while it is
    /// read ends at its cut instead of in the pages the cut took away.
    private(set) var limit: Int
    /// The file turned out shorter than the map: the caller reports the cut (no hand-back).
    private(set) var shrank = false
    /// libpcap's stream over the same map.
    let stream: UnsafeMutablePointer<FILE>
    /// The file's byte order is the other one.
    let swapped: Bool
    /// Multiplier from a record's sub-second field to nanoseconds (1000 for a
    /// microsecond file: libpcap, asked for nanoseconds, scales the same way).
    let subsecondScale: Int64
    /// The longest captured length read here: libpcap cuts or refuses a longer one.
    let maximumCapturedLength: UInt32
    /// Where the next record's header starts.
    private(set) var offset: Int

    /// libpcap's `MAXIMUM_SNAPLEN`: the largest captured length it accepts for the link
    /// types trafficmon decodes.
    static let maximumSnapshotLength: UInt32 = 262_144
    /// How far past the last size check records are read (larger than any record).
    static let checkStep = 4 << 20
    /// How far ahead of the record read the file's bytes are asked into the cache: the
    /// hardware prefetcher stops at each 4 KiB page, and the record headers (and the frames
    /// after them) are the first touch of their memory.
    static let prefetchDistance = 4096

    /// For a classic pcap file that libpcap has opened through `source`'s memory map and
    /// read only the header of; `nil` otherwise (pcapng, a FIFO, another version).
    init?(source: PacketSource) {
        guard let mapping = source.mapping, mapping.length >= 24, let stream = pcap_file(source.handle) else { return nil }
        let base = UnsafeRawPointer(mapping.base)
        let micro: Bool
        switch base.loadUnaligned(as: UInt32.self) {
        case 0xA1B2_C3D4: (swapped, micro) = (false, true)
        case 0xA1B2_3C4D: (swapped, micro) = (false, false)
        case 0xD4C3_B2A1: (swapped, micro) = (true, true)
        case 0x4D3C_B2A1: (swapped, micro) = (true, false)
        default: return nil
        }
        var major = base.loadUnaligned(fromByteOffset: 4, as: UInt16.self)
        var minor = base.loadUnaligned(fromByteOffset: 6, as: UInt16.self)
        if swapped {
            major = major.byteSwapped
            minor = minor.byteSwapped
        }
        guard major == 2, minor == 4 else { return nil }
        guard !(swapped && (source.linkType == .linuxSLL || source.linkType == .linuxSLL2)) else { return nil }
        let snapshot = pcap_snapshot(source.handle)
        guard snapshot > 0 else { return nil }
        // libpcap has read the file header and nothing more.
        guard ftell(stream) == 24 else { return nil }
        self.base = base
        self.length = mapping.length
        self.mapping = mapping
        limit = 24
        self.stream = stream
        subsecondScale = micro ? 1000 : 1
        maximumCapturedLength = min(UInt32(snapshot), Self.maximumSnapshotLength)
        offset = 24
    }

    /// The next record, or `nil` at the end of the plain records (then `handBack()`, unless
    /// `shrank`).
    @inline(__always)
    mutating func next() -> Record? {
        while true {
            let at = offset
            // A hint (past the end of the map it does nothing), its address computed as an
            // integer: a pointer past the map's end is not one Swift lets be formed.
            trafficmon_prefetch_for_read(UnsafeRawPointer(bitPattern: UInt(bitPattern: base) &+ UInt(truncatingIfNeeded: at &+ Self.prefetchDistance)))
            if limit &- at >= 16 {
                var seconds = base.loadUnaligned(fromByteOffset: at, as: UInt32.self)
                var subseconds = base.loadUnaligned(fromByteOffset: at &+ 4, as: UInt32.self)
                var captured = base.loadUnaligned(fromByteOffset: at &+ 8, as: UInt32.self)
                var wire = base.loadUnaligned(fromByteOffset: at &+ 12, as: UInt32.self)
                if swapped {
                    seconds = seconds.byteSwapped
                    subseconds = subseconds.byteSwapped
                    captured = captured.byteSwapped
                    wire = wire.byteSwapped
                }
                // (A wire length of 0 is no frame: libpcap reads such a record, and the zeros
                // past the end of a file cut while it is read are not taken for records.)
                guard captured <= maximumCapturedLength, (seconds | subseconds) < 1 << 31, wire != 0 else { return nil }
                if limit &- at &- 16 >= Int(captured) {
                    offset = at &+ 16 &+ Int(captured)
                    return Record(
                        frame: base + (at &+ 16), capturedLength: Int(captured), wireLength: Int(wire),
                        timestamp: Int64(seconds) &* 1_000_000_000 &+ Int64(subseconds) &* subsecondScale)
                }
            }
            // The record reaches past the checked range: check the file's size again.
            guard extendLimit() else { return nil }
        }
    }

    /// Moves `limit` on by `checkStep` if the file still has its size (else up to its new
    /// end, and `shrank`); false when there is nothing more to read.
    @inline(never)
    mutating func extendLimit() -> Bool {
        guard limit < length else { return false }
        let size = mapping.currentSize() ?? length
        if size < length || mapping.guardFaulted { shrank = true }
        let end = min(size, length)
        guard end > limit else { return false }
        limit = min(end, limit + Self.checkStep)
        return true
    }

    /// Moves libpcap's reader to the next record: it reads the rest of the file.
    /// `false` if the stream would not move.
    func handBack() -> Bool {
        fseek(stream, offset, SEEK_SET) == 0
    }
}
