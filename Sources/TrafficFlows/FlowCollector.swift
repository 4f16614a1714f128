import Foundation
import TrafficCore

/// A flow input: one UDP socket (NetFlow v5/v9/IPFIX, told apart by version, or sFlow v5),
/// read on a thread of its own that decodes each datagram and counts every flow record
/// into that thread's shard (`CountingInput`): attributed like a packet, scaled by its
/// sampling rate, in the window of its end time. Per exporter it keeps templates, sequence
/// numbers and health figures (bounded: `maxExporters`, the rest as `other`), published for
/// the metrics and `/stats/capture` a few times a second.
///
/// ```swift
/// let collector = try FlowCollector(kind: .netflow, listen: try FlowListenAddress(parsing: ":2055"))
/// let engine = CaptureEngine(sources: [], counting: [collector], configuration: configuration) { ... }
/// collector.health.exporters   // per exporter: datagrams, records, errors, gaps, ...
/// ```
public final class FlowCollector: CountingInput, @unchecked Sendable {
    /// What the socket receives.
    public enum Kind: String, Sendable {
        /// NetFlow v5, v9 and IPFIX on one port.
        case netflow
        case sflow
    }

    public let kind: Kind
    public let listen: FlowListenAddress
    public let direction: FlowDirectionFilter
    let socket: FlowSocket
    let exporters: ExporterTable
    private let netflow: NetFlowDecoder
    private let sflow: SFlowDecoder
    private let published: LockedValue<FlowCollectorHealth>

    // The collector's thread only.
    private var datagrams: UInt64 = 0
    private var lastPublished: Int64 = 0
    private var changed = false

    public var sourceName: String { kind.rawValue }
    public var descriptor: Int32 { socket.descriptor }
    /// The UDP port bound (the kernel's choice when asked for port 0).
    public var port: UInt16 { socket.port }

    /// The address listened on with the port bound, as health and metrics name the input.
    public var bound: String {
        var address = listen
        address.port = socket.port
        return address.description
    }

    /// Opens and binds the socket (this needs no privilege above port 1023).
    /// - Parameters:
    ///   - receiveBuffer: the socket's receive buffer, bytes (32 MiB: an exporter's burst
    ///     of a few thousand datagrams waits in it).
    ///   - direction: which records count (`--flow-direction`).
    ///   - maxExporters: exporters tracked one by one; later ones count as `other`.
    public init(
        kind: Kind, listen: FlowListenAddress, receiveBuffer: Int = 32 << 20, direction: FlowDirectionFilter = .ingress,
        maxExporters: Int = 1024
    ) throws(InputFailure) {
        self.kind = kind
        self.listen = listen
        self.direction = direction
        socket = try FlowSocket(listen: listen, receiveBuffer: receiveBuffer)
        exporters = ExporterTable(limit: maxExporters)
        netflow = NetFlowDecoder(exporters: exporters)
        sflow = SFlowDecoder(exporters: exporters)
        var bound = listen
        bound.port = socket.port
        published = LockedValue(FlowCollectorHealth(
            source: kind.rawValue, listen: bound.description, port: socket.port, receiveBuffer: socket.receiveBuffer))
    }

    /// The collector's figures, as last published (at most ~250 ms old).
    public var health: FlowCollectorHealth { published.withLock { $0 } }

    public func receive(into shard: WindowShard, openWindow: () -> Int64) throws(InputFailure) {
        var now = Self.now()
        var read = 0
        // Drain the socket, but hand the thread back to the coordinator now and then.
        while read < 64 * FlowSocket.batch {
            let n = try socket.receive { datagram, sender in
                let exporter = exporters.exporter(sender)
                // The open window moves at most once per window length: read once per datagram.
                let open = openWindow()
                // A local function passed as a non-escaping argument: its context stays on the
                // stack, so no datagram allocates.
                func count(_ record: inout FlowRecord) {
                    guard direction.counts(record.direction) else {
                        exporter.filtered &+= 1
                        return
                    }
                    exporter.records &+= 1
                    exporter.samplingRate = record.samplingRate
                    shard.countFlow(
                        record.packet, packets: record.scaledPackets, bytes: record.scaledBytes, timestamp: record.end,
                        sampled: record.samplingRate > 1) { open }
                }
                switch kind {
                case .netflow: netflow.decode(datagram, exporter: exporter, at: now, emit: count)
                case .sflow: sflow.decode(datagram, exporter: exporter, at: now, emit: count)
                }
            }
            guard n > 0 else { break }
            read += n
            now = Self.now()
        }
        datagrams &+= UInt64(read)
        if read > 0 { changed = true }
        // Publish a few times a second while datagrams come, and once when they stop.
        if changed && (read == 0 || now - lastPublished >= 250_000_000) {
            publish(now: now)
        }
    }

    private func publish(now: Int64) {
        let snapshot = FlowCollectorHealth(
            source: kind.rawValue, listen: bound, port: socket.port, receiveBuffer: socket.receiveBuffer,
            datagrams: datagrams, receiveErrors: socket.kernelDrops, templates: exporters.templateCount, exporters: exporters.health)
        published.withLock { $0 = snapshot }
        lastPublished = now
        changed = false
    }

    static func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
}

/// A flow collector's figures since it started: what `/stats/capture` lists and the
/// `trafficmon_flow_*` metrics count.
public struct FlowCollectorHealth: Sendable, Equatable, Codable {
    /// `netflow` or `sflow`.
    public var source: String
    public var listen: String
    public var port: UInt16
    /// Bytes of receive buffer the kernel granted.
    public var receiveBuffer: Int
    public var datagrams: UInt64 = 0
    /// Datagrams the kernel dropped because the receive buffer was full.
    public var receiveErrors: UInt64 = 0
    /// Templates held over all exporters.
    public var templates: Int = 0
    public var exporters: [FlowExporterHealth] = []

    enum CodingKeys: String, CodingKey {
        case source, listen, port, datagrams, templates, exporters
        case receiveBuffer = "receive_buffer_bytes", receiveErrors = "receive_errors"
    }
}
