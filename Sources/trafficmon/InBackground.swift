import Foundation

/// A value made on a thread of its own while the caller goes on.
///
/// ```swift
/// let networks = InBackground { try NetworksFile.load(path: path) }
/// let named = try networks.value().get()
/// ```
final class InBackground<Value: Sendable>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    /// Set before `done` is signalled.
    private var result: Result<Value, any Error> = .failure(CancellationError())

    init(_ make: @escaping @Sendable () throws -> Value) {
        Thread { [self] in
            result = Result { try make() }
            done.signal()
        }.start()
    }

    /// The value, or what making it threw; waits for it the first time.
    func value() -> Result<Value, any Error> {
        done.wait()
        defer { done.signal() }
        return result
    }
}
