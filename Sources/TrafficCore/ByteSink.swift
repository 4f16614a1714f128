/// Somewhere text renderers append UTF-8 bytes: a `[UInt8]`, or the JSON writer's raw
/// buffer (which renders a window record without Array's per-append bookkeeping and
/// writes literals and numbers in place).
///
/// ```swift
/// var bytes = [UInt8]()
/// IPAddress(ipv4: 0x0A00_0001).appendText(to: &bytes)   // "10.0.0.1"
/// ```
public protocol ByteSink {
    mutating func append(_ byte: UInt8)
    mutating func append(bytes: UnsafeRawBufferPointer)
    /// Appends a literal's UTF-8 bytes.
    mutating func append(_ text: StaticString)
    /// Appends `value` in decimal, zero-padded to `minimumWidth` digits (at most 20).
    mutating func appendDecimalDigits(_ value: UInt64, minimumWidth: Int)
}

extension ByteSink {
    @inline(__always)
    public mutating func append(_ text: StaticString) {
        text.withUTF8Buffer { append(bytes: UnsafeRawBufferPointer($0)) }
    }

    @inline(__always)
    public mutating func appendDecimalDigits(_ value: UInt64, minimumWidth: Int) {
        // UInt64.max has 20 digits: render into a stack buffer, then append.
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { buffer in
            let width = Decimal.width(value, minimumWidth: minimumWidth)
            Decimal.write(value, width: width, to: buffer.baseAddress!)
            append(bytes: UnsafeRawBufferPointer(rebasing: buffer[0..<width]))
        }
    }

    /// Appends `value` in decimal, zero-padded to `minimumWidth` digits (at most 20),
    /// without building a String.
    @inline(__always)
    public mutating func appendDecimal(_ value: some UnsignedInteger, minimumWidth: Int = 1) {
        appendDecimalDigits(UInt64(value), minimumWidth: minimumWidth)
    }
}

/// Decimal digits written in place, two at a time.
enum Decimal {
    /// "00" to "99".
    static let pairs: StaticString = "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"

    /// 10^i at index i, for i in 0...19.
    static let powers: [UInt64] = (0..<20).map { i in (0..<i).reduce(UInt64(1)) { p, _ in p * 10 } }

    /// How many digits `value` takes, at least `minimumWidth` (clamped to 1...20): from its
    /// bit length (log10(2) is about 1233 / 4096), one compare with a power of ten deciding
    /// between the two digit counts that bit length allows.
    @inline(__always)
    static func width(_ value: UInt64, minimumWidth: Int) -> Int {
        let estimate = ((64 &- (value | 1).leadingZeroBitCount) &* 1233) >> 12
        let n = powers.withUnsafeBufferPointer { estimate &+ (value >= $0[estimate] ? 1 : 0) }
        return max(n, min(max(minimumWidth, 1), 20))
    }

    /// Writes exactly `width` digits of `value` (zero-padded) at `start`.
    @inline(__always)
    static func write(_ value: UInt64, width: Int, to start: UnsafeMutableRawPointer) {
        var v = value
        var end = start + width
        let table = UnsafeRawPointer(pairs.utf8Start)
        while v >= 100 {
            let pair = Int(truncatingIfNeeded: v % 100) &* 2
            v /= 100
            end -= 2
            end.storeBytes(of: table.loadUnaligned(fromByteOffset: pair, as: UInt16.self), as: UInt16.self)
        }
        if v >= 10 {
            end -= 2
            end.storeBytes(of: table.loadUnaligned(fromByteOffset: Int(truncatingIfNeeded: v) &* 2, as: UInt16.self), as: UInt16.self)
        } else {
            end -= 1
            end.storeBytes(of: UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: v), as: UInt8.self)
        }
        while end > start {
            end -= 1
            end.storeBytes(of: UInt8(ascii: "0"), as: UInt8.self)
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
/// appends check capacity with one compare, literals and numbers are written in place.
/// Exactly one copy owns the memory; the owner calls `deallocate()`.
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

    /// Forgets the bytes written and keeps the memory.
    mutating func removeAll() { count = 0 }

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

    /// A literal's length is known where it is written, so the copy compiles to a few moves.
    @inline(__always)
    mutating func append(_ text: StaticString) {
        let n = text.utf8CodeUnitCount
        reserve(n)
        UnsafeMutableRawPointer(base + count).copyMemory(from: text.utf8Start, byteCount: n)
        count &+= n
    }

    @inline(__always)
    mutating func appendDecimalDigits(_ value: UInt64, minimumWidth: Int) {
        let width = Decimal.width(value, minimumWidth: minimumWidth)
        reserve(width)
        Decimal.write(value, width: width, to: base + count)
        count &+= width
    }

    /// Appends the first `n` (at most 16) of the bytes held in two words: two stores.
    @inline(__always)
    mutating func appendShort(_ first: UInt64, _ second: UInt64, count n: Int) {
        assert(n <= 16, "two words hold 16 bytes")
        reserve(16)
        let at = UnsafeMutableRawPointer(base + count)
        at.storeBytes(of: first, as: UInt64.self)
        at.storeBytes(of: second, toByteOffset: 8, as: UInt64.self)
        count &+= n
    }
}

/// Service labels (`TCP/443`) as bytes, kept while one record is written: a window names
/// a few hundred services at most, thousands of times each (once per party that used
/// them), and copying a kept label costs a fraction of writing it again.
///
/// ```swift
/// let labels = ServiceLabelCache()
/// labels.append(service, to: &out)
/// ```
final class ServiceLabelCache {
    /// Per slot three words: the service's raw value with bit 32 set (0: empty) and the
    /// label's length from bit 40; then the label's bytes (at most 16; the longest a raw
    /// value can name is 12, `ICMPv6/65535`).
    private let words: UnsafeMutablePointer<UInt64>
    private static let slots = 512

    init() {
        words = .allocate(capacity: 3 * Self.slots)
        words.initialize(repeating: 0, count: 3 * Self.slots)
    }

    deinit { words.deallocate() }

    @inline(__always)
    func append(_ service: Service, to out: inout RawByteBuffer) {
        let slot = 3 &* Int(truncatingIfNeeded: (service.rawValue &* 0x9E37_79B1) >> 23)
        let tag = UInt64(service.rawValue) | 1 << 32
        let head = words[slot]
        if head & 0xFF_FFFF_FFFF == tag {
            out.appendShort(words[slot &+ 1], words[slot &+ 2], count: Int(truncatingIfNeeded: head >> 40))
            return
        }
        let start = out.count
        service.appendLabel(to: &out)
        let length = out.count &- start
        guard length <= 16 else { return }
        var label: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &label) { $0.copyMemory(from: UnsafeRawBufferPointer(start: out.base + start, count: length)) }
        words[slot] = tag | UInt64(length) << 40
        words[slot &+ 1] = label.0
        words[slot &+ 2] = label.1
    }
}

/// NDJSON for window records, rendered into one buffer kept from record to record: no
/// copy of a rendered record and, once the buffer has grown, no allocation.
///
/// ```swift
/// let lines = RecordLineBuffer()
/// lines.append(record)                       // its JSON and "\n"
/// lines.withUnsafeBytes { _ = write(1, $0.baseAddress, $0.count) }
/// lines.removeAll()
/// ```
public final class RecordLineBuffer {
    private var out = RawByteBuffer(capacity: 1 << 16)

    public init() {}

    deinit { out.deallocate() }

    /// Bytes waiting.
    public var count: Int { out.count }

    /// Appends `record` as one line of JSON and a newline. With a `drain`, the bytes waiting
    /// are handed to it (and forgotten) whenever `drainPast` or more wait before one of the
    /// record's parties is written: a large record is written out as it is rendered,
    /// through memory that stays in the cache. `drain` must not use this buffer.
    ///
    /// ```swift
    /// lines.append(record, drainPast: 256 << 10) { bytes in write(bytes) }
    /// ```
    public func append(_ record: WindowRecord, drainPast: Int = .max, drain: ((UnsafeRawBufferPointer) -> Void)? = nil) {
        record.render(into: &out, drainPast: drainPast, drain: drain)
        out.append(UInt8(ascii: "\n"))
    }

    /// Appends text as UTF-8.
    public func append(_ text: String) {
        var text = text
        text.withUTF8 { out.append(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// Calls `body` with the bytes waiting (valid only inside `body`).
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(out.bytes)
    }

    /// Forgets the bytes waiting and keeps the memory.
    public func removeAll() { out.removeAll() }
}
