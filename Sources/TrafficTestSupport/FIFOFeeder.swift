import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Feeds bytes to a reader through a FIFO in two steps: `first` as soon as the reader
/// opens it, the rest only after `release()`. In between the reader is blocked in a read,
/// as trafficmon is on a pipe whose writer has stalled; the tests use it to hold a replay
/// back (until a page is live, until a SIGTERM) deterministically.
///
/// ```swift
/// let feeder = try FIFOFeeder(at: dir.appendingPathComponent("in.pcap"), bytes: data, firstPart: 24)
/// // start `trafficmon serve --read in.pcap`, ...
/// feeder.release()
/// #expect(feeder.waitUntilWritten(timeout: 60))
/// ```
public final class FIFOFeeder: @unchecked Sendable {
    public let url: URL
    private let released = DispatchSemaphore(value: 0)
    private let written = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var didRelease = false

    public init(at url: URL, bytes: [UInt8], firstPart: Int) throws {
        self.url = url
        guard mkfifo(url.path, 0o600) == 0 else { throw TestProcess.Failure("mkfifo \(url.path): \(String(cString: strerror(errno)))") }
        let split = min(max(0, firstPart), bytes.count)
        Thread.detachNewThread { [released, written] in
            // A reader that goes away makes the next write raise SIGPIPE, which would end the
            // test process: blocked in this thread, the write fails with EPIPE instead.
            var pipeSignal = sigset_t()
            sigemptyset(&pipeSignal)
            sigaddset(&pipeSignal, SIGPIPE)
            pthread_sigmask(SIG_BLOCK, &pipeSignal, nil)
            let fd = open(url.path, O_WRONLY)
            defer {
                if fd >= 0 { close(fd) }
                written.signal()
            }
            guard fd >= 0 else { return }
            guard Self.put(bytes[0..<split], to: fd) else { return }
            released.wait()
            _ = Self.put(bytes[split...], to: fd)
        }
    }

    /// Writes the rest, then closes the FIFO (the reader sees its end). Idempotent.
    public func release() {
        let first = lock.withLock { () -> Bool in
            defer { didRelease = true }
            return !didRelease
        }
        if first { released.signal() }
    }

    /// Waits until everything has been written (or the reader went away).
    public func waitUntilWritten(timeout: TimeInterval) -> Bool {
        written.wait(timeout: .now() + timeout) == .success
    }

    private static func put(_ slice: ArraySlice<UInt8>, to fd: Int32) -> Bool {
        var offset = slice.startIndex
        while offset < slice.endIndex {
            let n = slice[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }

    deinit {
        release()
    }
}
