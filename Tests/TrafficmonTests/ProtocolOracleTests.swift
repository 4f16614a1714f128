import Foundation
import Testing
import TrafficCore
import TrafficTestSupport

/// The protocol figures of `trafficmon report` (TCP control segments by kind and direction,
/// packet sizes by bucket and direction, DNS queries by type and responses by code,
/// malformed and cut DNS) against tshark on the same capture files, frame by frame.
///
/// Each capture is read with one-second windows from frames one second apart, so every
/// record holds exactly one frame and says what trafficmon made of it; tshark's fields for
/// that frame say what it is under DESIGN.md's rules (`TShark.reading`). Where tshark's
/// dissection cannot tell (flags captured but not shown, a TCP header length under 20, a
/// query cut in its question's class, a name tshark gives up on), generated captures fall
/// back on the generator's own oracle and real ones leave that part of the frame out,
/// counted. Then the same file is read with hour-long windows and the summed figures equal
/// the per-frame ones (and, for generated captures, the generator's).
@Suite struct ProtocolOracleTests {
    /// What a one-frame record says trafficmon made of its frame (a figure that counts the
    /// frame more than once, or under two DNS labels, shows as `several`).
    static func verdict(of r: WindowRecord) -> SyntheticProtocols.Verdict {
        let p = r.protocols
        let inbound = r.in.packets == 1
        let tcp = inbound ? p.tcpIn : p.tcpOut
        var dns: [String] = []
        for (i, n) in p.dnsQueries.enumerated() where n > 0 { dns += Array(repeating: "query " + DNSFacts.queryTypes[i], count: Int(n)) }
        for (i, n) in p.dnsResponses.enumerated() where n > 0 { dns += Array(repeating: "response " + DNSFacts.responseCodes[i], count: Int(n)) }
        dns += Array(repeating: "malformed", count: Int(p.dnsMalformed)) + Array(repeating: "cut", count: Int(p.dnsCut))
        let sizes = p.sizesIn + p.sizesOut
        let ip = r.in.packets + r.out.packets == 1
        return SyntheticProtocols.Verdict(
            ip: ip, inbound: ip && inbound,
            sizeBucket: sizes.reduce(0, +) != (ip ? 1 : 0) ? -2 : (inbound ? p.sizesIn : p.sizesOut).firstIndex { $0 > 0 } ?? -1,
            tcp: TCPFlags.Kind.allCases.flatMap { Array(repeating: $0.label, count: Int(tcp[$0])) }
                + ((inbound ? p.tcpOut : p.tcpIn) == TCPCounts() ? [] : ["several"]),
            dns: dns.count > 1 ? "several" : dns.first)
    }

    /// The figures of records summed, in the oracle's shape.
    static func figures(_ records: [WindowRecord]) -> SyntheticProtocols.Truth {
        var t = SyntheticProtocols.Truth()
        for r in records {
            let p = r.protocols
            t.packets += r.packets
            t.bytes += r.bytes
            for kind in TCPFlags.Kind.allCases {
                if p.tcpIn[kind] > 0 { t.tcpIn[kind.label, default: 0] += p.tcpIn[kind] }
                if p.tcpOut[kind] > 0 { t.tcpOut[kind.label, default: 0] += p.tcpOut[kind] }
            }
            for b in 0..<8 {
                t.sizesIn[b] += p.sizesIn[b]
                t.sizesOut[b] += p.sizesOut[b]
            }
            for (i, n) in p.dnsQueries.enumerated() where n > 0 { t.queries[DNSFacts.queryTypes[i], default: 0] += n }
            for (i, n) in p.dnsResponses.enumerated() where n > 0 { t.responses[DNSFacts.responseCodes[i], default: 0] += n }
            t.dnsMalformed += p.dnsMalformed
            t.dnsCut += p.dnsCut
            t.malformedFrames += r.malformed.packets
        }
        return t
    }

    /// `trafficmon report` with one-second windows on a capture of frames one second apart:
    /// one record per frame, in frame order.
    static func perFrame(_ url: URL, localNetworks: [String], frames: Int) throws -> [WindowRecord] {
        let result = try ReportCommandTests.trafficmon(["report", url.path, "--window", "1s"] + localNetworks.flatMap { ["--local-net", $0] })
        #expect(result.status == 0, "trafficmon report: \(result.stderr)")
        let records = try ReportCommandTests.records(result)
        try #require(records.count == frames, "\(records.count) one-second records for \(frames) frames")
        for (i, r) in records.enumerated() { try #require(r.packets == 1, "record \(i) holds \(r.packets) frames") }
        return records
    }

    /// The same capture in windows of an hour: the sums must not depend on the window.
    static func summed(_ url: URL, localNetworks: [String]) throws -> SyntheticProtocols.Truth {
        let result = try ReportCommandTests.trafficmon(["report", url.path, "--window", "1h"] + localNetworks.flatMap { ["--local-net", $0] })
        #expect(result.status == 0, "trafficmon report: \(result.stderr)")
        return figures(try ReportCommandTests.records(result))
    }

    /// How many frames tshark judged, part by part, and why it judged none of some.
    struct Tally: CustomStringConvertible {
        var frames = 0
        var sizes = 0
        var directions = 0
        var tcp = 0
        var tcpKinds: [String: Int] = [:]
        var dns = 0
        var dnsKinds: [String: Int] = [:]
        var unjudged: [String: Int] = [:]

        var description: String {
            "\(frames) frames; tshark judged \(sizes) sizes, \(directions) directions, \(tcp) TCP segments \(Self.list(tcpKinds)), "
                + "\(dns) DNS messages \(Self.list(dnsKinds)); not judged: \(Self.list(unjudged))"
        }

        static func list(_ counts: [String: Int]) -> String {
            "{" + counts.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "}"
        }
    }

    /// Compares trafficmon's reading of each frame with tshark's, part by part; where tshark
    /// cannot tell, with `fallback` (the generator's oracle) when there is one.
    static func compare(
        _ records: [WindowRecord], _ frames: [TShark.Frame], isLocal: (String) -> Bool,
        fallback: ((Int) -> SyntheticProtocols.Verdict)? = nil, label: (Int) -> String = { "frame \($0 + 1)" },
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> Tally {
        var tally = Tally()
        #expect(records.count == frames.count, "\(records.count) records, \(frames.count) frames in tshark", sourceLocation: sourceLocation)
        var failures = 0
        func check<T: Equatable>(_ ours: T, _ theirs: T, _ what: String, _ i: Int) {
            guard ours != theirs else { return }
            failures += 1
            if failures <= 20 {
                Issue.record("\(label(i)): trafficmon \(what) \(ours), oracle \(theirs)", sourceLocation: sourceLocation)
            }
        }
        for (i, (record, frame)) in zip(records, frames).enumerated() {
            tally.frames += 1
            let ours = verdict(of: record)
            let reading = TShark.reading(frame, isLocal: isLocal)
            let generated = fallback?(i)
            for reason in reading.unjudged { tally.unjudged[reason, default: 0] += 1 }
            guard let ip = reading.ip ?? generated?.ip else { continue }
            check(ours.ip, ip, "counts it as an IP packet:", i)
            guard ip, ours.ip else { continue }
            tally.sizes += 1
            check(ours.sizeBucket, reading.sizeBucket, "size bucket", i)
            if let inbound = reading.inbound ?? generated?.inbound {
                if reading.inbound != nil { tally.directions += 1 }
                check(ours.inbound, inbound, "inbound", i)
            }
            if let tcp = reading.tcp {
                tally.tcp += 1
                for kind in tcp { tally.tcpKinds[kind, default: 0] += 1 }
                check(ours.tcp, tcp, "TCP kinds", i)
            } else if let generated {
                check(ours.tcp, generated.tcp, "TCP kinds (generator)", i)
            }
            if let dns = reading.dns {
                if let dns {
                    tally.dns += 1
                    tally.dnsKinds[dns, default: 0] += 1
                }
                check(ours.dns, dns, "DNS", i)
            } else if let generated {
                check(ours.dns, generated.dns, "DNS (generator)", i)
            }
        }
        if failures > 20 { Issue.record("\(failures) differences in all", sourceLocation: sourceLocation) }
        return tally
    }

    // MARK: Generated captures

    static let generatedLocal = SyntheticProtocols.localNetworks
    /// The generator's local networks, as tshark prints addresses.
    static func isGeneratedLocal(_ address: String) -> Bool {
        address.hasPrefix("10.1.") || address.hasPrefix("2001:db8:53:")
    }

    /// Several seeds, lengths, snap lengths (a 64-byte snap length cuts IPv6 TCP before its
    /// flags and most DNS before its question) and file formats.
    @Test(arguments: [
        (UInt64(1), 3_000, 262_144, PcapWriter.Format.pcapMicro),
        (2, 2_000, 128, .pcapng),
        (3, 2_500, 96, .pcapNano),
        (4, 1_500, 64, .pcapMicro),
    ])
    func generatedCapturesMatchTsharkFrameByFrame(seed: UInt64, packets: Int, snapLength: Int, format: PcapWriter.Format) throws {
        let traffic = SyntheticProtocols(packets: packets, seed: seed, spacing: 1_000_000_000)
        let dir = try TestProcess.temporaryDirectory("protocol-oracle")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent(format == .pcapng ? "p.pcapng" : "p.pcap")
        try traffic.pcap(snapLength: snapLength, format: format).write(to: url)

        let records = try Self.perFrame(url, localNetworks: Self.generatedLocal, frames: packets)
        let frames = try TShark.frames(of: url)
        let expected = traffic.frames.map { SyntheticProtocols.verdict($0, snapLength: snapLength) }
        let tally = Self.compare(records, frames, isLocal: Self.isGeneratedLocal, fallback: { expected[$0] }) {
            "frame \($0 + 1) (\(traffic.frames[$0].episode))"
        }
        // The generator's oracle holds for every frame, and so for the sums at any window.
        var differing = 0
        for (i, r) in records.enumerated() where Self.verdict(of: r) != expected[i] {
            differing += 1
            if differing <= 10 { Issue.record("frame \(i + 1) (\(traffic.frames[i].episode)): trafficmon \(Self.verdict(of: r)), generator \(expected[i])") }
        }
        let truth = traffic.truth(snapLength: snapLength)
        #expect(Self.figures(records) == truth)
        #expect(try Self.summed(url, localNetworks: Self.generatedLocal) == truth)

        // tshark itself judged every kind the generator writes: all four TCP kinds, and with
        // the whole frames, every listed query type and response code 0-5.
        for kind in ["syn", "synack", "rst", "fin"] { #expect(tally.tcpKinds[kind, default: 0] > 0, "tshark judged no \(kind)") }
        #expect(tally.directions == tally.sizes, "a frame without exactly one local side: \(tally)")
        if snapLength > 9_600 {
            for label in DNSFacts.queryTypes { #expect(tally.dnsKinds["query " + label, default: 0] > 0, "tshark judged no \(label) query") }
            for label in DNSFacts.responseCodes { #expect(tally.dnsKinds["response " + label, default: 0] > 0, "tshark judged no \(label) response") }
            #expect(tally.dnsKinds["malformed", default: 0] > 0)
            #expect(tally.dnsKinds["cut", default: 0] > 0)
        }
        print("protocol oracle, seed \(seed), snap length \(snapLength): \(tally)")
    }

    // MARK: Real captures

    /// Captures from tcpdump's test corpus with TCP or DNS in them, and the addresses that
    /// make each frame's direction plain (one side local).
    static let corpus: [(file: String, local: [String])] = [
        ("dns_udp.pcap", ["192.168.1.11"]),
        ("dns_tcp.pcap", ["192.168.1.11"]),
        ("dns-badvers.pcap", ["172.30.42.67"]),
        ("dns-badcookie.pcap", ["172.30.42.67"]),
        ("dns-zlip-1.pcap", ["10.0.0.1"]),
        ("dns-zlip-3.pcap", ["10.0.0.1"]),
        // Loopback captures (Ethernet, Linux cooked): both sides are 127.0.0.1, so no
        // frame's direction is plain.
        ("print-flags.pcap", []),
        ("resp_3_malicious.pcap", []),
        ("resp_1_benchmark.pcap", []),
        ("mptcp-v1.pcap", ["10.0.1.1"]),
        // BGP sessions between four pairs of routers, and ARP.
        ("bgp-4byte-asn.pcap", ["1.0.0.1", "1.0.2.1", "1.0.3.1", "1.0.4.1"]),
        ("of10_s4810.pcap", ["10.0.0.20"]),
        // A 7,306-byte segmentation-offload frame.
        ("gso-ipv4.pcap", ["10.25.132.13"]),
        ("whois.pcap", ["10.0.2.15"]),
        ("accecn_handshake.pcap", ["31.133.146.248"]),
        ("tcp_eight_lowest_weight_flags_set.pcap", ["10.0.0.2"]),
        ("mptcp-tcprst.pcap", ["192.0.2.1"]),
        ("tcp_rst_data-trunc.pcap", ["172.16.133.41"]),
        // An IPv6 jumbogram (hop-by-hop option, payload length 0) of 80,094 bytes: the +Inf bucket.
        ("bigtcp-ipv6-hbh.pcap", ["2604:1380:4091:ce00::b"]),
    ]

    static let corpusDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Corpus")

    /// A copy of a classic pcap file with its records one second apart (the bytes, lengths
    /// and link type kept), so each frame gets a window of its own.
    static func respaced(_ source: URL, to target: URL) throws -> Int {
        let data = [UInt8](try Data(contentsOf: source))
        try #require(data.count >= 24, "\(source.lastPathComponent) is shorter than a pcap header")
        let magic = Array(data[0..<4])
        let little = magic == [0xD4, 0xC3, 0xB2, 0xA1] || magic == [0x4D, 0x3C, 0xB2, 0xA1]
        try #require(little || magic == [0xA1, 0xB2, 0xC3, 0xD4] || magic == [0xA1, 0xB2, 0x3C, 0x4D], "\(source.lastPathComponent) is not a classic pcap file")
        func u32(_ at: Int) -> Int {
            let b = data[at..<at + 4].map(Int.init)
            return little ? b[0] | b[1] << 8 | b[2] << 16 | b[3] << 24 : b[3] | b[2] << 8 | b[1] << 16 | b[0] << 24
        }
        var records: [(bytes: [UInt8], wire: Int)] = []
        var offset = 24
        while offset + 16 <= data.count {
            let captured = u32(offset + 8), wire = u32(offset + 12)
            guard offset + 16 + captured <= data.count else { break }
            records.append((Array(data[offset + 16..<offset + 16 + captured]), wire))
            offset += 16 + captured
        }
        var writer = PcapWriter(linkType: UInt32(u32(20) & 0xFFFF), snapLength: max(262_144, records.map(\.bytes.count).max() ?? 0))
        for (i, r) in records.enumerated() { writer.append(r.bytes, timestamp: 1_700_000_000_000_000_000 + Int64(i) * 1_000_000_000, wireLength: r.wire) }
        try writer.write(to: target)
        return records.count
    }

    @Test(arguments: corpus.map(\.file))
    func corpusCapturesMatchTsharkFrameByFrame(file: String) throws {
        let local = Self.corpus.first { $0.file == file }?.local ?? []
        let dir = try TestProcess.temporaryDirectory("protocol-corpus")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent(file)
        let count = try Self.respaced(Self.corpusDirectory.appendingPathComponent(file), to: url)
        let networks = local.map { $0.contains(":") ? "\($0)/128" : "\($0)/32" }
        let records = try Self.perFrame(url, localNetworks: networks, frames: count)
        let frames = try TShark.frames(of: url)
        let tally = Self.compare(records, frames, isLocal: { local.contains($0) })
        #expect(tally.tcp + tally.dns > 0, "tshark judged no TCP segment and no DNS message in \(file): \(tally)")
        print("protocol oracle, \(file): \(tally)")
    }
}
