import Foundation
import TrafficCore

/// Writes window records to stdout, buffered: NDJSON or a table. Used from one
/// serial queue at a time.
final class ReportWriter: @unchecked Sendable {
    let format: ReportCommand.Format
    /// Rendered in place and kept from record to record. A window of 20,000 clients is
    /// about 7 MB of JSON: it is written out in pieces of `drainPast` bytes as it is
    /// rendered, so the buffer stays in the cache (README, Performance).
    private let buffer = RecordLineBuffer()
    static let drainPast = 256 << 10

    init(format: ReportCommand.Format) {
        self.format = format
    }

    func write(_ record: WindowRecord) {
        switch format {
        case .json: buffer.append(record, drainPast: Self.drainPast) { Self.writeOut($0) }
        case .table: buffer.append(Self.table(record))
        }
        if buffer.count >= 1 << 20 { flush() }
    }

    func flush() {
        guard buffer.count > 0 else { return }
        buffer.withUnsafeBytes { Self.writeOut($0) }
        buffer.removeAll()
    }

    /// Writes `bytes` to stdout whole (a write error ends the writing; a closed pipe raises
    /// SIGPIPE first, as for cat).
    static func writeOut(_ bytes: UnsafeRawBufferPointer) {
        var offset = 0
        while offset < bytes.count, let base = bytes.baseAddress {
            let n = Foundation.write(STDOUT_FILENO, base + offset, bytes.count - offset)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            offset += n
        }
    }

    static func table(_ r: WindowRecord) -> String {
        var lines: [String] = []
        let title = "\(Timestamp.rfc3339(r.start)) .. \(Timestamp.rfc3339(r.end))\(r.partial ? "  (partial)" : "")"
        lines.append(title)
        lines.append("  packets \(r.packets)  bytes \(r.bytes)  in \(r.in.packets)/\(r.in.bytes)  out \(r.out.packets)/\(r.out.bytes)"
            + "  non-ip \(r.nonIP.packets)/\(r.nonIP.bytes)  malformed \(r.malformed.packets)/\(r.malformed.bytes)  late \(r.latePackets)")
        parties(r.clients, other: r.other, title: "client", otherTitle: "clients", into: &lines)
        parties(r.servers, other: r.otherServers, title: "server", otherTitle: "servers", into: &lines)
        lines += whoTable(r)
        protocols(r.protocols, into: &lines)
        return lines.joined(separator: "\n") + "\n\n"
    }

    /// TCP control segments and packet sizes by direction, the clients whose SYNs reached
    /// the most services, and DNS queries and responses; each block only when the window
    /// has some of it.
    private static func protocols(_ p: ProtocolCounts, into lines: inout [String]) {
        let kinds = TCPFlags.Kind.allCases
        if kinds.contains(where: { p.tcpIn[$0] + p.tcpOut[$0] > 0 }) {
            lines.append("  " + pad("tcp", 14) + kinds.map { pad($0.label, 10, right: true) }.joined())
            for (label, counts) in [("in", p.tcpIn), ("out", p.tcpOut)] {
                lines.append("    " + pad(label, 12) + kinds.map { pad("\(counts[$0])", 10, right: true) }.joined())
            }
        }
        if !p.synClients.isEmpty {
            lines.append("  " + pad("syn client", 42) + pad("services", 10, right: true) + pad("syn", 10, right: true))
            for c in p.synClients {
                lines.append("    " + pad(c.ip.description, 40) + pad("\(c.synServices)", 10, right: true) + pad("\(c.syn)", 10, right: true))
            }
        }
        if (p.sizesIn + p.sizesOut).contains(where: { $0 > 0 }) {
            let bounds = ProtocolCounts.sizeBounds.map { "<=\($0)" } + [ProtocolCounts.sizeBounds.last.map { ">\($0)" } ?? "larger"]
            lines.append("  " + pad("size (bytes)", 14) + bounds.map { pad($0, 10, right: true) }.joined())
            for (label, counts) in [("in", p.sizesIn), ("out", p.sizesOut)] {
                lines.append("    " + pad(label, 12) + counts.map { pad("\($0)", 10, right: true) }.joined())
            }
        }
        let queries = zip(DNSFacts.queryTypes, p.dnsQueries).filter { $0.1 > 0 }
        let responses = zip(DNSFacts.responseCodes, p.dnsResponses).filter { $0.1 > 0 }
        if !queries.isEmpty || !responses.isEmpty || p.dnsMalformed > 0 || p.dnsCut > 0 {
            lines.append("  " + pad("dns queries", 16) + (queries.isEmpty ? "-" : queries.map { "\($0.0) \($0.1)" }.joined(separator: "  ")))
            lines.append("  " + pad("dns responses", 16) + (responses.isEmpty ? "-" : responses.map { "\($0.0) \($0.1)" }.joined(separator: "  "))
                + "  (malformed \(p.dnsMalformed), cut \(p.dnsCut))")
        }
    }

    /// A client or server table: one line per listed party (`*` marks a local one), with
    /// its top service, then `other`.
    private static func parties(_ list: [PartyRecord], other: OtherCounts, title: String, otherTitle: String, into lines: inout [String]) {
        if !list.isEmpty {
            lines.append("  " + pad(title, 42) + countsHeader + "  top service")
            for p in list {
                lines.append("  " + pad((p.local ? "* " : "  ") + p.ip.description, 42) + countColumns(p.in, p.out)
                    + "  " + (p.services.first.map { "\($0.service) \($0.direction.label)" } ?? "-"))
            }
        }
        if other.packets > 0 || other.clients > 0 {
            lines.append("  " + pad("  other (\(other.clients) \(otherTitle))", 42) + countColumns(other.in, other.out))
        }
    }

    /// The titles of the in and out packets and bytes columns of a party or "who" table.
    static let countsHeader = pad("in pkts", 10, right: true) + pad("in bytes", 14, right: true)
        + pad("out pkts", 10, right: true) + pad("out bytes", 14, right: true)

    /// A row's in and out packets and bytes, under `countsHeader`.
    static func countColumns(_ inbound: Counts, _ outbound: Counts) -> String {
        pad("\(inbound.packets)", 10, right: true) + pad("\(inbound.bytes)", 14, right: true)
            + pad("\(outbound.packets)", 10, right: true) + pad("\(outbound.bytes)", 14, right: true)
    }

    /// `s` padded with spaces to `width` characters (on the left when `right`), or `s` and
    /// one space when it is that long or longer.
    static func pad(_ s: String, _ width: Int, right: Bool = false) -> String {
        guard s.count < width else { return s + " " }
        let fill = String(repeating: " ", count: width - s.count)
        return right ? fill + s : s + fill
    }
}
