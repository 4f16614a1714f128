/// Somewhere text renderers append UTF-8 bytes: a `[UInt8]`, or the JSON writer's raw
/// buffer (which renders a window record without Array's per-append bookkeeping).
///
/// ```swift
/// var bytes = [UInt8]()
/// IPAddress(ipv4: 0x0A00_0001).appendText(to: &bytes)   // "10.0.0.1"
/// ```
public protocol ByteSink {
    mutating func append(_ byte: UInt8)
    mutating func append(bytes: UnsafeRawBufferPointer)
}

extension ByteSink {
    /// Appends a literal's UTF-8 bytes.
    @inline(__always)
    public mutating func append(_ text: StaticString) {
        text.withUTF8Buffer { append(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// Appends `value` in decimal, zero-padded to `minimumWidth` digits (at most 20),
    /// without building a String.
    @inline(__always)
    public mutating func appendDecimal(_ value: some UnsignedInteger, minimumWidth: Int = 1) {
        var v = UInt64(value)
        // Digits are written from the end of a 20-byte stack buffer (UInt64.max has 20).
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { buffer in
            var i = 20
            repeat {
                i &-= 1
                buffer[i] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: v % 10)
                v /= 10
            } while v > 0 || 20 &- i < minimumWidth
            append(bytes: UnsafeRawBufferPointer(rebasing: buffer[i..<20]))
        }
    }
}

extension Array: ByteSink where Element == UInt8 {
    @inline(__always)
    public mutating func append(bytes: UnsafeRawBufferPointer) {
        append(contentsOf: bytes)
    }
}

/// A growable byte buffer over manually managed memory, for rendering large records:
/// appends check capacity with one compare and copy with `memcpy`. Exactly one copy
/// owns the memory; the owner calls `deallocate()`.
///
/// ```swift
/// var out = RawByteBuffer(capacity: 4096)
/// defer { out.deallocate() }
/// out.append("{}")
/// array.append(bytes: out.bytes)
/// ```
struct RawByteBuffer: ByteSink {
    private(set) var base: UnsafeMutablePointer<UInt8>
    private(set) var count = 0
    private var capacity: Int

    init(capacity: Int) {
        self.capacity = max(64, capacity)
        base = .allocate(capacity: self.capacity)
    }

    func deallocate() { base.deallocate() }

    /// The bytes written so far (valid until the next append).
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    /// Makes room for `n` more bytes.
    @inline(__always)
    mutating func reserve(_ n: Int) {
        if count &+ n > capacity { grow(to: count &+ n) }
    }

    @inline(never)
    private mutating func grow(to needed: Int) {
        var newCapacity = capacity * 2
        while newCapacity < needed { newCapacity *= 2 }
        let newBase = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        newBase.update(from: base, count: count)
        base.deallocate()
        base = newBase
        capacity = newCapacity
    }

    @inline(__always)
    mutating func append(_ byte: UInt8) {
        reserve(1)
        base[count] = byte
        count &+= 1
    }

    @inline(__always)
    mutating func append(bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        reserve(bytes.count)
        UnsafeMutableRawPointer(base + count).copyMemory(from: source, byteCount: bytes.count)
        count &+= bytes.count
    }
}
