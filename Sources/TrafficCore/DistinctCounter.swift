import Foundation

/// A HyperLogLog sketch (4,096 registers, about 1.6% standard error) that counts
/// distinct clients in bounded memory.
///
/// ```swift
/// var sketch = DistinctCounter()
/// sketch.insert(hash: someHash)
/// sketch.estimate   // ~ distinct inserts
/// ```
struct DistinctCounter {
    private static let bits = 12
    private static let registerCount = 1 << bits
    private var registers = [UInt8](repeating: 0, count: DistinctCounter.registerCount)
    private(set) var isEmpty = true

    mutating func insert(hash: UInt64) {
        // Re-mix: the caller's hash may be weak in the high bits.
        var h = hash ^ (hash >> 33)
        h = h &* 0xFF51_AFD7_ED55_8CCD
        h ^= h >> 33
        h = h &* 0xC4CE_B9FE_1A85_EC53
        h ^= h >> 33
        let index = Int(h >> UInt64(64 - Self.bits))
        let rest = h << UInt64(Self.bits) | (1 << UInt64(Self.bits - 1))
        let rank = UInt8(rest.leadingZeroBitCount + 1)
        if registers[index] < rank { registers[index] = rank }
        isEmpty = false
    }

    /// The estimated number of distinct values inserted.
    var estimate: UInt64 {
        if isEmpty { return 0 }
        let m = Double(Self.registerCount)
        var sum = 0.0
        var zeros = 0
        for r in registers {
            sum += 1.0 / Double(UInt64(1) << UInt64(r))
            if r == 0 { zeros += 1 }
        }
        let alpha = 0.7213 / (1.0 + 1.079 / m)
        let raw = alpha * m * m / sum
        if raw <= 2.5 * m && zeros > 0 {
            // Linear counting for the small range.
            return UInt64((m * (m / Double(zeros)).log).rounded())
        }
        return UInt64(raw.rounded())
    }

    /// Adds another sketch's inserts: the register-wise maximum.
    mutating func merge(_ other: DistinctCounter) {
        guard !other.isEmpty else { return }
        for i in registers.indices where other.registers[i] > registers[i] { registers[i] = other.registers[i] }
        isEmpty = false
    }

    mutating func removeAll() {
        guard !isEmpty else { return }
        for i in registers.indices { registers[i] = 0 }
        isEmpty = true
    }
}

private extension Double {
    var log: Double { Foundation.log(self) }
}
