import Foundation

/// Writes capture files for tests: classic pcap (micro- or nanosecond timestamps)
/// or pcapng (one interface), any link type, with a snap length that cuts frames
/// while the record keeps the wire length.
///
/// ```swift
/// var w = PcapWriter(linkType: 1, snapLength: 64)
/// w.append(frame, timestamp: 1_700_000_000_000_000_000)
/// try w.write(to: url)
/// ```
public struct PcapWriter {
    public enum Format: Sendable { case pcapMicro, pcapNano, pcapng }

    public let linkType: UInt32
    public let snapLength: Int
    public let format: Format
    public private(set) var data = [UInt8]()
    public private(set) var count = 0

    public init(linkType: UInt32 = 1, snapLength: Int = 262_144, format: Format = .pcapMicro) {
        self.linkType = linkType
        self.snapLength = snapLength
        self.format = format
        switch format {
        case .pcapMicro, .pcapNano:
            data += le32(format == .pcapNano ? 0xA1B2_3C4D : 0xA1B2_C3D4)
            data += le16(2) + le16(4) + le32(0) + le32(0) + le32(UInt32(snapLength)) + le32(linkType)
        case .pcapng:
            // Section header block.
            var shb = le32(0x1A2B_3C4D) + le16(1) + le16(0) + le32(0xFFFF_FFFF) + le32(0xFFFF_FFFF)
            shb = block(type: 0x0A0D_0D0A, body: shb)
            data += shb
            // Interface description block with if_tsresol = 9 (nanoseconds).
            var idb = le16(UInt16(linkType)) + le16(0) + le32(UInt32(snapLength))
            idb += le16(9) + le16(1) + [9, 0, 0, 0] + le16(0) + le16(0)
            data += block(type: 1, body: idb)
        }
    }

    /// Appends a frame; `wireLength` defaults to the frame's length (cut to the snap length on disk).
    public mutating func append(_ frame: [UInt8], timestamp nanos: Int64, wireLength: Int? = nil) {
        let wire = wireLength ?? frame.count
        let captured = Array(frame.prefix(snapLength))
        let seconds = UInt32(truncatingIfNeeded: nanos / 1_000_000_000)
        let fraction = UInt32(truncatingIfNeeded: nanos % 1_000_000_000)
        switch format {
        case .pcapMicro, .pcapNano:
            data += le32(seconds) + le32(format == .pcapNano ? fraction : fraction / 1000)
            data += le32(UInt32(captured.count)) + le32(UInt32(wire))
            data += captured
        case .pcapng:
            let ticks = UInt64(nanos)
            var epb = le32(0) + le32(UInt32(ticks >> 32)) + le32(UInt32(ticks & 0xFFFF_FFFF))
            epb += le32(UInt32(captured.count)) + le32(UInt32(wire))
            epb += captured
            epb += [UInt8](repeating: 0, count: (4 - captured.count % 4) % 4)
            data += block(type: 6, body: epb)
        }
        count += 1
    }

    /// Where packet `n` (0-based) starts in `data`, for the pcap formats (`data.count` past
    /// the last one): `data[..<offset(ofPacket: n)]` is a valid capture of the first n packets.
    public func offset(ofPacket n: Int) -> Int {
        precondition(format != .pcapng, "offset(ofPacket:) reads classic pcap records")
        var offset = 24
        for _ in 0..<n where offset + 16 <= data.count {
            let captured = Int(data[offset + 8]) | Int(data[offset + 9]) << 8 | Int(data[offset + 10]) << 16 | Int(data[offset + 11]) << 24
            offset += 16 + captured
        }
        return min(offset, data.count)
    }

    /// Hands over the bytes written so far and starts an empty buffer (for streaming to a file).
    public mutating func takeData() -> Data {
        defer { data.removeAll(keepingCapacity: true) }
        return Data(data)
    }

    public func write(to url: URL) throws {
        try Data(data).write(to: url)
    }

    private func block(type: UInt32, body: [UInt8]) -> [UInt8] {
        let length = UInt32(12 + body.count)
        return le32(type) + le32(length) + body + le32(length)
    }

    private func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }
    private func le32(_ v: UInt32) -> [UInt8] { [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF), UInt8((v >> 16) & 0xFF), UInt8(v >> 24)] }
}
