/// The bytes of one received datagram, read big-endian through a base pointer. Every read
/// is checked by the caller against `count` first (`has(_:_:)`), so a datagram never makes
/// a decoder read past its end, whatever its length fields claim.
///
/// ```swift
/// let bytes = DatagramBytes(buffer)
/// guard bytes.has(0, 4) else { return .truncated }
/// let version = bytes.u16(0)
/// ```
struct DatagramBytes {
    let base: UnsafeRawPointer
    let count: Int

    /// `nil` for an empty buffer (it has no base address).
    init?(_ buffer: UnsafeRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return nil }
        self.base = base
        self.count = buffer.count
    }

    /// Whether `length` bytes at `offset` lie inside the datagram (no overflow on hostile lengths).
    @inline(__always)
    func has(_ offset: Int, _ length: Int) -> Bool {
        offset >= 0 && length >= 0 && offset <= count && length <= count - offset
    }

    @inline(__always)
    func u8(_ offset: Int) -> UInt8 {
        base.load(fromByteOffset: offset, as: UInt8.self)
    }

    @inline(__always)
    func u16(_ offset: Int) -> UInt16 {
        UInt16(bigEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    @inline(__always)
    func u32(_ offset: Int) -> UInt32 {
        UInt32(bigEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    @inline(__always)
    func u64(_ offset: Int) -> UInt64 {
        UInt64(bigEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// An unsigned number of 1 to 8 bytes (IPFIX reduced-size encoding); 0 for other lengths.
    @inline(__always)
    func unsigned(_ offset: Int, length: Int) -> UInt64 {
        switch length {
        case 1: return UInt64(u8(offset))
        case 2: return UInt64(u16(offset))
        case 4: return UInt64(u32(offset))
        case 8: return u64(offset)
        case 3, 5, 6, 7:
            var value: UInt64 = 0
            for i in 0..<length { value = value << 8 | UInt64(u8(offset + i)) }
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
