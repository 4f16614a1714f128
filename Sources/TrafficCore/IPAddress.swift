/// An IPv4 or IPv6 address held in two machine words, so it can be copied,
/// hashed and compared on the packet path without allocating.
///
/// IPv4 addresses live in the low 32 bits of `low` with `high == 0`.
///
/// ```swift
/// let a = IPAddress("198.51.100.7")!
/// print(a)            // 198.51.100.7
/// ```
public struct IPAddress: Hashable, Sendable, Comparable {
    /// The upper 64 bits of an IPv6 address (zero for IPv4).
    public var high: UInt64
    /// The lower 64 bits of an IPv6 address, or the IPv4 address in the low 32 bits.
    public var low: UInt64
    /// `true` for IPv6.
    public var isIPv6: Bool

    @inlinable
    public init(ipv4 value: UInt32) {
        self.high = 0
        self.low = UInt64(value)
        self.isIPv6 = false
    }

    @inlinable
    public init(ipv6High high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
        self.isIPv6 = true
    }

    /// The IPv4 address as a host-order integer (meaningless for IPv6).
    @inlinable
    public var ipv4Value: UInt32 { UInt32(truncatingIfNeeded: low) }

    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        if lhs.isIPv6 != rhs.isIPv6 { return !lhs.isIPv6 }
        if lhs.high != rhs.high { return lhs.high < rhs.high }
        return lhs.low < rhs.low
    }
}

extension IPAddress: CustomStringConvertible {
    /// The canonical text form: dotted quad, or RFC 5952 for IPv6.
    public var description: String {
        var bytes = [UInt8]()
        bytes.reserveCapacity(40)
        appendText(to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends the canonical text form as UTF-8 to `out`. The text is put together in 48
    /// bytes on the stack and appended at once.
    public func appendText(to out: inout some ByteSink) {
        var text: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &text) { buffer in
            let p = buffer.baseAddress!
            let n = isIPv6 ? writeIPv6(to: p) : Self.writeIPv4(ipv4Value, to: p, at: 0)
            out.append(bytes: UnsafeRawBufferPointer(start: p, count: n))
        }
    }

    /// Writes dotted-quad text at `p + start` (at most 15 bytes) and returns where it ends;
    /// the 16 bytes from `p + start` are written (past the text, with dots and zeros).
    @inline(__always)
    static func writeIPv4(_ v: UInt32, to p: UnsafeMutableRawPointer, at start: Int) -> Int {
        var n = start
        @inline(__always) func octet(_ shift: UInt32) {
            let entry = octetText[Int(truncatingIfNeeded: (v >> shift) & 0xFF)]
            // The digits, then a dot (cut after the last octet).
            p.storeBytes(of: (entry & 0xFF_FFFF) | UInt32(UInt8(ascii: ".")) << (8 * (entry >> 24)), toByteOffset: n, as: UInt32.self)
            n &+= Int(entry >> 24) &+ 1
        }
        octet(24)
        octet(16)
        octet(8)
        octet(0)
        return n &- 1
    }

    /// RFC 5952 text (at most 45 bytes); returns its length.
    @inline(__always)
    func writeIPv6(to p: UnsafeMutableRawPointer) -> Int {
        @inline(__always) func group(_ i: Int) -> UInt16 {
            i < 4 ? UInt16(truncatingIfNeeded: high >> UInt64(48 - 16 * i))
                : UInt16(truncatingIfNeeded: low >> UInt64(48 - 16 * (i - 4)))
        }
        var n = 0
        @inline(__always) func put(_ byte: UInt8) {
            p.storeBytes(of: byte, toByteOffset: n, as: UInt8.self)
            n &+= 1
        }
        // RFC 5952: IPv4-mapped addresses keep the dotted quad.
        if high == 0 && (low >> 32) == 0xFFFF {
            for byte in "::ffff:".utf8 { put(byte) }
            return Self.writeIPv4(UInt32(truncatingIfNeeded: low), to: p, at: n)
        }
        // RFC 5952 4.2: the longest run (first one on a tie) of two or more zero groups becomes "::".
        var bestStart = -1, bestLength = 0, runStart = -1
        for i in 0...8 {
            if i < 8 && group(i) == 0 {
                if runStart < 0 { runStart = i }
            } else if runStart >= 0 {
                let length = i - runStart
                if length > bestLength && length >= 2 { bestStart = runStart; bestLength = length }
                runStart = -1
            }
        }
        let digits: StaticString = "0123456789abcdef"
        var i = 0
        while i < 8 {
            if i == bestStart {
                put(UInt8(ascii: ":"))
                if i == 0 { put(UInt8(ascii: ":")) }
                i += bestLength
                if i == 8 { break }
                continue
            }
            // Lowercase hex without leading zeros (one digit for zero).
            let value = group(i)
            var shift = max(0, (15 - value.leadingZeroBitCount) & ~3)
            while shift >= 0 {
                put(digits.utf8Start[Int((value >> UInt16(shift)) & 0xF)])
                shift -= 4
            }
            if i < 7 { put(UInt8(ascii: ":")) }
            i += 1
        }
        return n
    }
}

/// Each octet's decimal text in the low three bytes (unused ones zero) and its length
/// in the top byte.
private let octetText: [UInt32] = (0..<256).map { (value: Int) -> UInt32 in
    let digits = Array(String(value).utf8)
    var entry = UInt32(digits.count) << 24
    for (i, digit) in digits.enumerated() { entry |= UInt32(digit) << (8 * UInt32(i)) }
    return entry
}

extension IPAddress {
    /// Parses dotted-quad IPv4 or any RFC 4291 IPv6 text form (including an
    /// embedded dotted quad); returns `nil` for anything else.
    public init?(_ text: some StringProtocol) {
        // Read where the text lies, without a copy (a networks file holds thousands).
        let parsed = text.utf8.withContiguousStorageIfAvailable(Self.parse) ?? Array(text.utf8).withUnsafeBufferPointer(Self.parse)
        guard let parsed else { return nil }
        self = parsed
    }

    static func parse(_ utf8: UnsafeBufferPointer<UInt8>) -> IPAddress? {
        if utf8.isEmpty || utf8.count > 45 { return nil }
        if !utf8.contains(UInt8(ascii: ":")) {
            return parseIPv4(utf8[...]).map { IPAddress(ipv4: $0) }
        }
        return parseIPv6(utf8).map { IPAddress(ipv6High: $0.0, low: $0.1) }
    }

    static func parseIPv4(_ bytes: Slice<UnsafeBufferPointer<UInt8>>) -> UInt32? {
        var value: UInt32 = 0
        var parts = 0
        var current: UInt32 = 0
        var digits = 0
        for b in bytes {
            if b == UInt8(ascii: ".") {
                guard digits > 0, parts < 3 else { return nil }
                value = value << 8 | current
                parts += 1
                current = 0
                digits = 0
            } else if b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") {
                // No leading zeros (ambiguous octal forms are refused).
                if digits == 1 && current == 0 { return nil }
                current = current * 10 + UInt32(b - UInt8(ascii: "0"))
                digits += 1
                guard digits <= 3, current <= 255 else { return nil }
            } else {
                return nil
            }
        }
        guard digits > 0, parts == 3 else { return nil }
        return value << 8 | current
    }

    static func parseIPv6(_ bytes: UnsafeBufferPointer<UInt8>) -> (UInt64, UInt64)? {
        var head: [UInt16] = []
        var tail: [UInt16] = []
        var sawDoubleColon = false
        var index = 0
        let n = bytes.count
        if n >= 2 && bytes[0] == UInt8(ascii: ":") {
            guard bytes[1] == UInt8(ascii: ":") else { return nil }
            sawDoubleColon = true
            index = 2
        }
        while index < n {
            // Parse one group (or a trailing dotted quad).
            var end = index
            while end < n && bytes[end] != UInt8(ascii: ":") { end += 1 }
            let token = bytes[index..<end]
            if token.isEmpty { return nil }
            if token.contains(UInt8(ascii: ".")) {
                guard end == n, let v4 = parseIPv4(token) else { return nil }
                let pair = [UInt16(v4 >> 16), UInt16(v4 & 0xFFFF)]
                if sawDoubleColon { tail += pair } else { head += pair }
                index = end
                break
            }
            guard token.count <= 4 else { return nil }
            var group: UInt16 = 0
            for b in token {
                let nibble: UInt8
                switch b {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = b - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = b - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): nibble = b - UInt8(ascii: "A") + 10
                default: return nil
                }
                group = group << 4 | UInt16(nibble)
            }
            if sawDoubleColon { tail.append(group) } else { head.append(group) }
            index = end
            if index < n {
                // At a colon.
                if index + 1 < n && bytes[index + 1] == UInt8(ascii: ":") {
                    guard !sawDoubleColon else { return nil }
                    sawDoubleColon = true
                    index += 2
                } else {
                    index += 1
                    guard index < n else { return nil }  // trailing single colon
                }
            }
        }
        let count = head.count + tail.count
        if sawDoubleColon {
            guard count <= 7 else { return nil }
        } else {
            guard count == 8 else { return nil }
        }
        let groups = head + [UInt16](repeating: 0, count: 8 - count) + tail
        var high: UInt64 = 0, low: UInt64 = 0
        for i in 0..<4 {
            high = high << 16 | UInt64(groups[i])
            low = low << 16 | UInt64(groups[i + 4])
        }
        return (high, low)
    }
}
