import TrafficCore

/// The bytes of one received datagram: the packet decoder's big-endian reader (`FrameBytes`)
/// with the checks and reads the flow decoders add. Every read
/// is checked by the caller against `count` first (`has(_:_:)`), so a datagram never makes
/// a decoder read past its end, whatever its length fields claim.
///
/// ```swift
/// let bytes = DatagramBytes(buffer)
/// guard bytes.has(0, 4) else { return .truncated }
/// let version = bytes.u16(0)
/// ```
typealias DatagramBytes = FrameBytes

extension FrameBytes {
    /// `nil` for an empty buffer (it has no base address).
    @inline(__always)
    init?(_ buffer: UnsafeRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return nil }
        self.init(base: base, count: buffer.count)
    }

    /// Whether `length` bytes at `offset` lie inside the datagram (no overflow on hostile lengths).
    @inline(__always)
    func has(_ offset: Int, _ length: Int) -> Bool {
        offset >= 0 && length >= 0 && offset <= count && length <= count - offset
    }

    /// An unsigned number of 1 to 8 bytes (IPFIX reduced-size encoding); 0 for other lengths.
    @inline(__always)
    func unsigned(_ offset: Int, length: Int) -> UInt64 {
        switch length {
        case 1: return UInt64(self[offset])
        case 2: return UInt64(u16(offset))
        case 4: return UInt64(u32(offset))
        case 8: return u64(offset)
        case 3, 5, 6, 7:
            var value: UInt64 = 0
            for i in 0..<length { value = value << 8 | UInt64(self[offset + i]) }
            return value
        default: return 0
        }
    }

    /// The bytes from `offset` on, `length` of them (checked by the caller).
    @inline(__always)
    func slice(_ offset: Int, _ length: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base + offset, count: length)
    }
}
