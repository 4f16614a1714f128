/// An input that is read on a thread of its own and counts into a shard of its own, beside
/// (or instead of) live packet captures: a flow collector on a UDP socket. The window
/// coordinator runs its thread as it runs a capture handle's: the thread waits until
/// `descriptor` is readable (or the coordinator wakes it), calls `receive`, and between
/// calls hands the coordinator the shard's tables of the windows that closed. So the
/// input takes no lock per item it counts.
///
/// ```swift
/// let collector = try FlowCollector(kind: .netflow, listen: address)   // conforms
/// let engine = CaptureEngine(sources: [], counting: [collector], configuration: configuration) { closed in ... }
/// ```
public protocol CountingInput: AnyObject, Sendable {
    /// The source its traffic counts under (a record's `sources`, the metrics' `source`).
    var sourceName: String { get }
    /// A descriptor that becomes readable when there is something to receive.
    var descriptor: Int32 { get }
    /// Reads what is ready, without blocking, and counts it into `shard`: each item in the
    /// window its time names, or late in the open one (`openWindow()`, the coordinator's).
    /// Throws only when the input cannot go on (its socket failed).
    func receive(into shard: WindowShard, openWindow: () -> Int64) throws(InputFailure)
}

/// Why an input stopped.
public struct InputFailure: Error, CustomStringConvertible, Sendable {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}
