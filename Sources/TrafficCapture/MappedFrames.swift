import CTrafficCaptureShims

/// Finds, in a memory-mapped classic pcap file, the frame libpcap has just read: the
/// packet's bytes where they lie in the map rather than in libpcap's copy, which the next
/// read overwrites. A frame found this way stays readable after the callback returns, so
/// it can be decoded later on another thread (`PipelinedPump`).
///
/// The stream tells where libpcap's reading stands (the end of the record it has just
/// read); the record header just before the frame must repeat the captured and wire
/// lengths libpcap reported, or the frame is not given (libpcap cut the record to its
/// snapshot length, or read something other than one plain record).
///
/// ```swift
/// if let frames = source.mappedFrames, let frame = frames.frame(capturedLength: caplen, wireLength: len) { ... }
/// ```
struct MappedFrames: @unchecked Sendable {
    let base: UnsafeRawPointer
    let stream: UnsafePointer<trafficmon_memory_stream>
    /// The file's byte order is the other one.
    let swapped: Bool

    /// For a classic pcap file (16-byte record headers) read through `stream`; `nil` for
    /// pcapng, the modified pcap formats, or without a stream state (off glibc, the
    /// stream's position is unknown).
    init?(base: UnsafeRawPointer, length: Int, stream: UnsafePointer<trafficmon_memory_stream>?) {
        guard let stream, length >= 24 else { return nil }
        switch base.loadUnaligned(as: UInt32.self) {
        case 0xA1B2_C3D4, 0xA1B2_3C4D: swapped = false
        case 0xD4C3_B2A1, 0x4D3C_B2A1: swapped = true
        default: return nil
        }
        self.base = base
        self.stream = stream
    }

    /// The frame whose record libpcap has just read, if it lies whole in the map.
    @inline(__always)
    func frame(capturedLength: Int, wireLength: Int) -> UnsafeRawPointer? {
        let start = trafficmon_memory_stream_offset(stream) &- capturedLength
        // The 24-byte file header and this record's 16-byte header come first.
        guard start >= 40 else { return nil }
        var included = base.loadUnaligned(fromByteOffset: start &- 8, as: UInt32.self)
        var original = base.loadUnaligned(fromByteOffset: start &- 4, as: UInt32.self)
        if swapped {
            included = included.byteSwapped
            original = original.byteSwapped
        }
        guard Int(included) == capturedLength, Int(original) == wireLength else { return nil }
        return base + start
    }
}
