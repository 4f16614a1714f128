import Foundation
import Testing
import TrafficTestSupport

/// tshark (Wireshark's dissectors) as the independent oracle of the protocol figures: the
/// fields it dissects in each frame of a capture, and what those fields say the frame
/// counts as under DESIGN.md's rules (TCP control segments, size buckets, DNS on port 53).
///
/// ```swift
/// let frames = try TShark.frames(of: url)
/// let reading = TShark.reading(frames[0], isLocal: { $0.hasPrefix("10.1.") })
/// reading.tcp   // ["syn"], or nil when tshark cannot tell
/// ```
enum TShark {
    /// The fields read from every frame: each occurrence (tunnels and ICMP errors repeat
    /// layers; the outermost comes first).
    static let fields = [
        "frame.len", "frame.cap_len", "frame.protocols",
        "ip.src", "ip.dst", "ip.hdr_len", "ipv6.src", "ipv6.dst",
        "tcp.srcport", "tcp.dstport", "tcp.hdr_len", "tcp.len", "tcp.payload",
        "tcp.flags.syn", "tcp.flags.ack", "tcp.flags.reset", "tcp.flags.fin",
        "udp.srcport", "udp.dstport", "udp.length", "udp.length.bad",
        "dns.flags.response", "dns.flags.rcode", "dns.count.add_rr", "dns.qry.type", "dns.qry.name",
        "_ws.short",
    ]

    /// One frame's fields: every occurrence of each, in dissection order.
    struct Frame {
        var number: Int
        var values: [String: [String]]

        func all(_ field: String) -> [String] { values[field] ?? [] }
        func first(_ field: String) -> String? { all(field).first }
        func int(_ field: String) -> Int? { first(field).flatMap { Int($0) } }
        func has(_ field: String) -> Bool { !all(field).isEmpty }
        /// A boolean field: tshark 4.0 prints 1/0, later versions True/False.
        func flag(_ field: String) -> Bool? {
            first(field).map { $0 == "1" || $0 == "True" }
        }
        /// The protocol layers (`eth`, `vlan`, `ip`, `tcp`, `dns`, ...).
        var layers: [String] { (first("frame.protocols") ?? "").split(separator: ":").map(String.init) }
    }

    /// tshark, or a failure that says how to get it: the oracle tests fail, not skip,
    /// without it.
    static func executable() throws -> URL {
        guard let path = TestProcess.which("tshark") else {
            throw TestProcess.Failure("tshark is not installed; the protocol oracle needs it (scripts/install-deps --test installs it)")
        }
        return URL(fileURLWithPath: path)
    }

    /// Every frame of `url` as tshark dissects it, with Wireshark's default preferences (an
    /// empty configuration folder, so a user's profile cannot change the dissection) except
    /// one: IP fragments are not reassembled. trafficmon reads each packet on its own, so a
    /// first fragment's UDP header and DNS message are read where they are; reassembled,
    /// tshark would show them in the last fragment instead.
    static func frames(of url: URL) throws -> [Frame] {
        let tshark = try executable()
        let config = try TestProcess.temporaryDirectory("tshark-config")
        defer { try? FileManager.default.removeItem(at: config) }
        var arguments = ["-n", "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE", "-r", url.path, "-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=|",
                         "-e", "frame.number"]
        for f in fields { arguments += ["-e", f] }
        let result = try TestProcess.run(tshark, arguments, environment: TestProcess.environment(["WIRESHARK_CONFIG_DIR": config.path]), timeout: 120)
        guard result.status == 0 else { throw TestProcess.Failure("tshark -r \(url.lastPathComponent) exited \(result.status): \(result.stderr)") }
        var frames: [Frame] = []
        for line in result.stdoutText.split(separator: "\n", omittingEmptySubsequences: true) {
            let columns = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard columns.count == fields.count + 1, let number = Int(columns[0]) else {
                throw TestProcess.Failure("tshark printed a line of \(columns.count) columns: \(line.prefix(200))")
            }
            var values: [String: [String]] = [:]
            for (i, field) in fields.enumerated() where !columns[i + 1].isEmpty {
                values[field] = columns[i + 1].split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            }
            frames.append(Frame(number: number, values: values))
        }
        return frames
    }

    /// What tshark's fields say a frame counts as. Each part is nil where tshark's
    /// dissection cannot tell, with the reason in `unjudged`.
    struct Reading {
        /// An IP packet (false: not IP at the link layer).
        var ip: Bool?
        var inbound: Bool?
        var sizeBucket: Int
        var tcp: [String]?
        /// `.some(nil)`: not DNS; nil: cannot tell.
        var dns: String??
        var unjudged: [String] = []
    }

    /// Layers that come before the network layer in the captures the tests read.
    static let linkLayers: Set<String> = ["eth", "ethertype", "vlan", "sll", "null", "raw", "loop", "llc", "snap"]
    /// The bytes each of the fixed-size ones takes (Linux cooked headers come in two sizes
    /// under one name, LLC in several).
    static let linkLayerBytes: [String: Int] = ["eth": 14, "ethertype": 0, "vlan": 4, "null": 4, "raw": 0, "loop": 4]

    /// Where the transport header starts, from the layers tshark found before it: nil when
    /// a layer's size is not known here (LLC, IPv6 extension headers, ...).
    static func transportOffset(_ f: Frame, layers: [String], network: Int) -> Int? {
        var offset = 0
        for layer in layers[..<network] {
            guard let bytes = linkLayerBytes[layer] else { return nil }
            offset += bytes
        }
        if layers[network] == "ipv6" {
            guard network + 1 < layers.count, !layers[network + 1].hasPrefix("ipv6.") else { return nil }
            return offset + 40
        }
        return f.int("ip.hdr_len").map { offset + $0 }
    }

    /// Reads a frame under DESIGN.md's rules; `isLocal` says whether an address (as tshark
    /// prints it) is on the local side. Only the outermost IP header and the transport
    /// header right after it count, as trafficmon opens no tunnel and no ICMP error.
    static func reading(_ f: Frame, isLocal: (String) -> Bool) -> Reading {
        let wire = f.int("frame.len") ?? 0
        var r = Reading(sizeBucket: SyntheticProtocols.sizeBucket(wire), tcp: [], dns: .some(nil))
        let layers = f.layers
        guard let network = layers.firstIndex(where: { !linkLayers.contains($0) }), ["ip", "ipv6"].contains(layers[network]) else {
            r.ip = false
            return r
        }
        let v6 = layers[network] == "ipv6"
        // The outermost addresses come first in each family's list; a frame in IPv6 with
        // IPv4 inside lists its IPv6 addresses first under ipv6.*.
        let src = f.first(v6 ? "ipv6.src" : "ip.src"), dst = f.first(v6 ? "ipv6.dst" : "ip.dst")
        if let src, let dst, isLocal(src) != isLocal(dst) {
            r.inbound = isLocal(dst)
        } else {
            r.unjudged.append("direction: no address, or both or neither local")
        }
        // IPv6 extension headers show as ipv6.* layers before the transport.
        let transport = layers[(network + 1)...].first { !$0.hasPrefix("ipv6.") }
        let truncated = f.has("_ws.short")
        switch transport {
        case "tcp":
            // How many TCP bytes were captured, from the layers tshark read before TCP:
            // trafficmon needs 4 for the ports (fewer: a malformed frame), 13 to find the
            // payload of a segment on port 53, and 14 for the flags (fewer: `unknown`).
            let kept = transportOffset(f, layers: layers, network: network).flatMap { offset in f.int("frame.cap_len").map { $0 - offset } }
            if let kept, kept < 4 {
                return Reading(ip: false, sizeBucket: r.sizeBucket, tcp: [], dns: .some(nil))
            }
            r.ip = true
            if let header = f.int("tcp.hdr_len"), header < 20 {
                // tshark stops at a data offset under 5 words; the flags are in the header
                // all the same, and trafficmon reads them.
                r.tcp = nil
                r.unjudged.append("tcp: header length \(header) under 20")
            } else if let syn = f.flag("tcp.flags.syn"), let ack = f.flag("tcp.flags.ack"),
                      let rst = f.flag("tcp.flags.reset"), let fin = f.flag("tcp.flags.fin") {
                var kinds: [String] = []
                if syn { kinds.append(ack ? "synack" : "syn") }
                if rst { kinds.append("rst") }
                if fin { kinds.append("fin") }
                r.tcp = kinds
            } else if let kept, kept < 14 {
                r.tcp = ["unknown"]
            } else {
                // tshark shows the flags from the 16th header byte on.
                r.tcp = nil
                r.unjudged.append("tcp: flags captured, not shown by tshark")
            }
            guard let sport = f.int("tcp.srcport"), let dport = f.int("tcp.dstport") else {
                r.dns = nil
                r.unjudged.append("dns: tcp ports not shown")
                return r
            }
            if sport == 53 || dport == 53 {
                if let kept, kept < 13 {
                    r.dns = .some("cut")
                } else {
                    r.dns = dnsOverTCP(f, truncated: truncated, unjudged: &r.unjudged)
                }
            }
        case "udp":
            guard f.has("udp.srcport") else {
                // tshark adds no UDP field before it has the 8-byte header.
                let kept = transportOffset(f, layers: layers, network: network).flatMap { offset in
                    f.int("frame.cap_len").map { $0 - offset }
                }
                r.ip = kept.map { $0 >= 4 }
                if r.ip == false { r.inbound = nil }
                r.dns = nil
                r.unjudged.append("udp: header cut, ports not shown")
                return r
            }
            r.ip = true
            if f.int("udp.srcport") == 53 || f.int("udp.dstport") == 53 {
                r.dns = dnsOverUDP(f, truncated: truncated, unjudged: &r.unjudged)
            }
        default:
            r.ip = true
        }
        return r
    }

    /// DNS in a UDP/53 datagram: the message is the UDP payload, by the UDP length.
    static func dnsOverUDP(_ f: Frame, truncated: Bool, unjudged: inout [String]) -> String?? {
        // tshark flags a UDP length beyond the IP packet and reads no DNS: no message.
        if f.has("udp.length.bad") { return .some("malformed") }
        guard let udpLength = f.int("udp.length") else {
            unjudged.append("dns: udp length not shown")
            return nil
        }
        return message(f, length: udpLength - 8, truncated: truncated, unjudged: &unjudged)
    }

    /// DNS in a TCP/53 segment: only a segment that starts with a 2-byte length equal to
    /// the rest of it holds a message (no reassembly). The length is read from the payload
    /// bytes tshark shows; its DNS fields then belong to that one message (tshark's own
    /// reassembly adds messages it completes in segments of another length, which hold no
    /// message here).
    static func dnsOverTCP(_ f: Frame, truncated: Bool, unjudged: inout [String]) -> String?? {
        guard let segment = f.int("tcp.len") else {
            unjudged.append("dns: tcp segment length not shown")
            return nil
        }
        if segment < 2 { return .some(nil) }
        let payload = f.first("tcp.payload") ?? ""
        // Fewer than two payload bytes captured: the length cannot be read.
        guard payload.count >= 4, let length = Int(payload.prefix(4), radix: 16) else { return .some("cut") }
        guard length + 2 == segment else { return .some(nil) }
        return message(f, length: length, truncated: truncated, unjudged: &unjudged)
    }

    /// A DNS message of `length` bytes: shorter than the 12-byte header is malformed; a
    /// response counts by its code, a query by its first question's type; a query whose
    /// question tshark could not read is cut where the capture ended early, else malformed.
    static func message(_ f: Frame, length: Int, truncated: Bool, unjudged: inout [String]) -> String?? {
        if length < 12 { return .some("malformed") }
        // The whole header dissected: its last field, the additional count, is there.
        guard f.has("dns.count.add_rr"), let response = f.flag("dns.flags.response") else {
            if truncated { return .some("cut") }
            unjudged.append("dns: tshark read no header from a \(length)-byte message")
            return nil
        }
        if response {
            guard let code = f.int("dns.flags.rcode") else { return nil }
            return .some("response " + (code < SyntheticProtocols.responseCodes.count ? SyntheticProtocols.responseCodes[code] : "other"))
        }
        guard let type = f.first("dns.qry.type").flatMap({ UInt16($0) }) else {
            guard !truncated else {
                // tshark shows a question only with its class; trafficmon needs the name and
                // the type, so a capture that ends in the class is a query to it.
                unjudged.append("dns: query cut in its first question")
                return nil
            }
            return .some("malformed")
        }
        if f.first("dns.qry.name")?.contains("<Unknown extended label>") == true {
            // A label of type 0x40 or 0x80 (RFC 6891 retired the one, the other is
            // reserved): tshark names it unknown, and trafficmon cannot read the name.
            return .some("malformed")
        }
        if f.first("dns.qry.name") == "<Name too long>" {
            // tshark gives up on a name past 255 characters and reads the type after it;
            // trafficmon counts a name over 255 bytes as malformed.
            unjudged.append("dns: tshark reads no name over 255 characters")
            return nil
        }
        return .some("query " + (SyntheticProtocols.queryTypes[type] ?? "other"))
    }
}
