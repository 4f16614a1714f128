import CPcap
import TrafficCore

/// Moves packets from one `PacketSource` through a `PacketDecoder` into a
/// `WindowAggregator`, a batch per `pcap_dispatch` call, with no copy of the
/// packet bytes and no allocation per packet.
///
/// ```swift
/// let pump = try PacketPump(source: source, aggregator: aggregator)
/// while try pump.dispatch(maxPackets: 10_000) > 0 {}
/// ```
public final class PacketPump {
    public let source: PacketSource
    let decoder: PacketDecoder
    let aggregator: WindowAggregator
    let subsecondScale: Int64
    /// Frames read so far.
    public private(set) var framesRead: UInt64 = 0
    /// Wire bytes read so far.
    public private(set) var bytesRead: UInt64 = 0

    public init(source: PacketSource, aggregator: WindowAggregator) throws(CaptureError) {
        guard let decoder = PacketDecoder(linkType: source.linkType) else {
            throw .unsupportedLinkType(source: source.origin.name, name: source.linkType.description, number: source.linkType.rawValue)
        }
        self.source = source
        self.decoder = decoder
        self.aggregator = aggregator
        self.subsecondScale = source.subsecondScale
    }

    /// Processes up to `maxPackets` packets (`-1`: everything available). Returns how many were
    /// processed: 0 means end of file for a file, nothing waiting for a non-blocking live capture.
    @discardableResult
    public func dispatch(maxPackets: Int32) throws(CaptureError) -> Int {
        let context = Unmanaged.passUnretained(self).toOpaque().assumingMemoryBound(to: UInt8.self)
        let n = pcap_dispatch(source.handle, maxPackets, packetHandler, context)
        aggregator.drainQueue()
        source.releaseReadPages()
        if n >= 0 { return Int(n) }
        if n == PCAP_ERROR_BREAK { return 0 }
        switch source.origin {
        case .file(let path): throw .readFailed(path: path, reason: source.lastError)
        case .interface(let name): throw .captureFailed(interface: name, reason: source.lastError)
        }
    }

    /// Reads a capture file to its end.
    public func drain(batch: Int32 = 10_000) throws(CaptureError) {
        while try dispatch(maxPackets: batch) > 0 {}
    }

    @inline(__always)
    func handle(_ header: UnsafePointer<pcap_pkthdr>, _ bytes: UnsafePointer<UInt8>) {
        let caplen = Int(header.pointee.caplen)
        let wire = Int(header.pointee.len)
        let timestamp = Int64(header.pointee.ts.tv_sec) &* 1_000_000_000 &+ Int64(header.pointee.ts.tv_usec) &* subsecondScale
        framesRead &+= 1
        bytesRead &+= UInt64(truncatingIfNeeded: wire)
        aggregator.enqueue(
            frame: UnsafeRawBufferPointer(start: bytes, count: caplen), decoder: decoder, timestamp: timestamp, wireLength: wire)
    }
}

private let packetHandler: pcap_handler = { user, header, bytes in
    guard let user, let header, let bytes else { return }
    Unmanaged<PacketPump>.fromOpaque(UnsafeRawPointer(user))._withUnsafeGuaranteedRef { pump in
        pump.handle(header, bytes)
    }
}
