import Foundation

/// A value behind an `NSLock`, for the little state the capture thread shares with other
/// threads (never the packet path). A pthread mutex underneath, so ThreadSanitizer sees
/// the ordering (it does not model `Synchronization.Mutex`'s futex path on Linux).
///
/// ```swift
/// let pending = LockedValue<[Int]>([])
/// pending.withLock { $0.append(1) }
/// ```
public final class LockedValue<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    public init(_ value: Value) {
        self.value = value
    }

    /// Runs `body` with the value, holding the lock.
    public func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
