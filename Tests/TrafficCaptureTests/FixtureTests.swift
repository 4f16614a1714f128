import Foundation
import Testing
import TrafficCapture
import TrafficCore
import TrafficTestSupport

/// Real capture files from tcpdump's test corpus (and two made for the purpose) through
/// libpcap + decoder + aggregator, against the figures tshark reports (Fixtures/manifest.json).
@Suite struct FixtureTests {
    static let windowLengths: [Int64] = [1_000_000_000, 5_000_000_000, 60_000_000_000]

    @Test func manifestCoversEveryRequiredKind() throws {
        let files = try Fixtures.manifest().files
        let linkTypes = Set(files.map(\.linkType))
        #expect(linkTypes.isSuperset(of: ["EN10MB", "LINUX_SLL", "LINUX_SLL2", "NULL"]))
        #expect(files.contains { $0.format == "pcapng" })
        #expect(files.contains { $0.outcome == "unsupported_link_type" })
        #expect(files.contains { $0.outcome == "read_failed" })
        for entry in files {
            let url = try entry.url
            let size = try #require(try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int)
            #expect(size < 100_000, "\(entry.file) is \(size) bytes")
        }
    }

    /// Totals equal tshark's, every record is conserved and aligned, at several window lengths.
    @Test(arguments: try Fixtures.entries(outcome: "accepted"), windowLengths)
    func totalsMatchTshark(entry: FixtureManifest.Entry, windowLength: Int64) throws {
        let source = try PacketSource.openFile(try entry.url.path)
        #expect(source.linkType.description == entry.linkType)
        let result = try Pump.file(try entry.url, configuration: .init(windowLength: windowLength))
        #expect(result.failure == nil)
        #expect(!result.records.isEmpty)
        #expect(result.packets == entry.packets, "packets of \(entry.file)")
        #expect(result.bytes == entry.bytes, "wire bytes of \(entry.file)")
        #expect(result.received == entry.packets)
        #expect(result.framesRead == entry.packets)
        #expect(result.bytesRead == entry.bytes)
        expectWellFormed(result.records, windowLength: windowLength)
    }

    /// The service labels hold exactly the frames tshark's filters select.
    @Test(arguments: try Fixtures.entries(outcome: "accepted"))
    func servicesMatchTshark(entry: FixtureManifest.Entry) throws {
        let expected = try #require(entry.services, "\(entry.file) has no service figures")
        let services = try Pump.file(try entry.url).services
        for figure in expected {
            #expect(services[figure.service] == Counts(packets: figure.packets, bytes: figure.bytes),
                    "\(entry.file): \(figure.service) (tshark -Y '\(figure.tsharkFilter)')")
        }
    }

    @Test func vlanTaggedFramesAreDecoded() throws {
        // tcpdump -enr: four frames, ethertype 802.1Q, vlan 100, IPv4 169.254.100.1 <-> .5, GRE.
        let result = try Pump.file(try Fixtures.url("vlan-nhrp.pcap"))
        #expect(result.nonIP == 0, "802.1Q frames counted as non-IP: the tag was not followed")
        #expect(result.malformed == 0)
        // GRE has no ports: the destination is the server, so each sender is a client.
        #expect(result.clients == [IPAddress("169.254.100.1")!, IPAddress("169.254.100.5")!])
        #expect(Set(result.services.keys) == ["GRE"])
    }

    @Test(arguments: ["ipv6-routing-header.pcap", "ipv6-hop-by-hop.pcap"])
    func ipv6ExtensionHeadersAreWalked(file: String) throws {
        let entry = try Fixtures.entry(file)
        let result = try Pump.file(try Fixtures.url(file))
        #expect(result.malformed == 0)
        #expect(result.nonIP == 0)
        #expect(!result.clients.isEmpty)
        #expect(result.clients.allSatisfy { $0.isIPv6 }, "\(result.clients)")
        // Every frame is attributed to a client.
        let attributed = result.records.reduce(UInt64(0)) { $0 + $1.clients.reduce(0) { $0 + $1.total.packets } }
        #expect(attributed == entry.packets)
        // Party text is RFC 5952, as tcpdump prints the addresses. ICMPv6 has no ports: the
        // destination is the server side, except for a reply such as the router advertisement
        // (fe80::b299:28ff:fec8:d66c > ff02::1), whose source is; the multicast listener
        // reports and query go to their groups. The UDP in the routing file goes 5645 -> 5642,
        // to the lower port: the source is the client there too.
        let clients: Set<String> = file == "ipv6-routing-header.pcap"
            ? ["2200::244:212:3fff:feae:22f7"]
            : ["ff02::1", "fe80::215:17ff:fecc:e546", "fe80::b2a8:6eff:fe0c:d4e8"]
        let servers: Set<String> = file == "ipv6-routing-header.pcap"
            ? ["2200::240:2:0:0:4", "2200::211:2:0:0:2"]  // the outer destinations (tunnels are not opened)
            : ["fe80::b299:28ff:fec8:d66c", "ff02::16", "ff02::1"]
        #expect(Set(result.clients.map(\.description)) == clients)
        #expect(Set(result.servers.map(\.description)) == servers)
        // No frame is named by the extension header itself (hop-by-hop 0, routing 43).
        #expect(!result.services.keys.contains("IP/0"))
        #expect(!result.services.keys.contains("IP/43"))
    }

    @Test func ipv6RoutingHeaderKeepsThePorts() throws {
        // tcpdump: 2200::244:212:3fff:feae:22f7 > 2200::240:2:0:0:4: RT6 (...) 5645 > 5642: UDP
        let services = try Pump.file(try Fixtures.url("ipv6-routing-header.pcap")).services
        #expect(services["UDP/5642"]?.packets == 2)
        #expect(services["UDP"] == nil, "a UDP packet behind a routing header is not a fragment")
    }

    @Test func ipv4FragmentsAreNamedByProtocol() throws {
        // tshark: frame 1 is a first fragment (MF, offset 0) 16.0.128.20:500 > 12.251.225.45:49152,
        // frame 2 a later fragment (offset 4096, proto 17) 0.0.0.5 > 0.0.0.0.
        let result = try Pump.file(try Fixtures.url("ipv4-fragments.pcap"))
        #expect(result.malformed == 0)
        let services = result.services
        #expect(services["UDP"]?.packets == 1, "the later fragment must be counted as plain UDP: \(services)")
        #expect(services["UDP/500"]?.packets == 1, "the first fragment carries its ports: \(services)")
        #expect(result.clients.allSatisfy { !$0.isIPv6 })
    }

    @Test func linuxCookedCapturesAreDecoded() throws {
        for file in ["linux-sll-babel.pcap", "linux-sll2-loopback.pcap"] {
            let entry = try Fixtures.entry(file)
            let result = try Pump.file(try Fixtures.url(file))
            #expect(result.nonIP == 0, "\(file)")
            #expect(result.malformed == 0, "\(file)")
            let attributed = result.records.reduce(UInt64(0)) { $0 + $1.clients.reduce(0) { $0 + $1.total.packets } }
            #expect(attributed == entry.packets, "\(file)")
        }
        // SLL2 file: IPv4 and IPv6 over loopback (tshark: 14 frames from 127.0.0.1, 4 from ::1).
        let sll2 = try Pump.file(try Fixtures.url("linux-sll2-loopback.pcap"))
        #expect(sll2.clients == [IPAddress("127.0.0.1")!, IPAddress("::1")!])
        let v6 = sll2.records.flatMap(\.clients).filter(\.ip.isIPv6).reduce(Counts()) { $0 + $1.total }
        #expect(v6 == Counts(packets: 4, bytes: 382))
    }

    @Test func nullLinkTypeIsDecoded() throws {
        // tcpdump: 127.0.0.1.54954 > 127.0.0.1.53 and back, twice.
        let result = try Pump.file(try Fixtures.url("null-dns.pcap"))
        #expect(result.clients == [IPAddress("127.0.0.1")!])
        #expect(result.services.keys.sorted() == ["UDP/53"])
        let directions = result.flows.reduce(into: [String: UInt64]()) { $0[$1.key.direction, default: 0] += $1.value.packets }
        #expect(directions == ["in": 2, "out": 2], "queries go to port 53 (in), answers come from it (out)")
    }

    @Test func capturedLengthIsNotTheWireLength() throws {
        // ipv4-fragments.pcap: 75 captured bytes, frame.len 262144, for each frame (tshark -e frame.cap_len -e frame.len).
        let entry = try Fixtures.entry("ipv4-fragments.pcap")
        let result = try Pump.file(try Fixtures.url("ipv4-fragments.pcap"))
        #expect(result.bytes == entry.bytes)
        #expect(entry.bytes == 2 * 262_144)
    }

    // MARK: Link types the corpus has no file for, written by the test

    /// One IPv4 UDP datagram (10.1.1.1:40000 -> 10.2.2.2:53, 30 payload bytes) and one IPv6
    /// UDP datagram (2001:db8::10:40001 -> 2001:db8::20:123, 12 payload bytes) behind `link`.
    static func linkFrames(_ link: (_ ip: [UInt8]) -> [UInt8]) -> [[UInt8]] {
        let v4 = FrameBuilder.ipv4(src: IPAddress("10.1.1.1")!, dst: IPAddress("10.2.2.2")!, proto: 17,
                                   payload: FrameBuilder.ports(40_000, 53, payload: 30))
        let v6 = FrameBuilder.ipv6(src: IPAddress("2001:db8::10")!, dst: IPAddress("2001:db8::20")!, proto: 17,
                                   payload: FrameBuilder.ports(40_001, 123, payload: 12))
        return [link(v4), link(v6)]
    }

    /// How a test-written frame wraps its IP packet; the bytes follow each format's definition
    /// (tcpdump.org/linktypes.html), not trafficmon's decoder.
    enum Framing: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case nullLittleEndianLinux, nullBigEndianBSD, nullFreeBSD, nullDarwin, loop
        case rawLinktype101, rawDLT12, ethernetQinQ8021ad, ethernetThreeTags, linuxSLL, linuxSLL2

        var testDescription: String { rawValue }

        var linkType: UInt32 {
            switch self {
            case .nullLittleEndianLinux, .nullBigEndianBSD, .nullFreeBSD, .nullDarwin: 0
            case .loop: 108
            case .rawLinktype101: 101
            case .rawDLT12: 12
            case .ethernetQinQ8021ad, .ethernetThreeTags: 1
            case .linuxSLL: 113
            case .linuxSLL2: 276
            }
        }

        func wrap(_ ip: [UInt8]) -> [UInt8] {
            let isV6 = ip[0] >> 4 == 6
            let etherType = FrameBuilder.be16(isV6 ? 0x86DD : 0x0800)
            func family(_ v6: UInt32, bigEndian: Bool) -> [UInt8] {
                let bytes = FrameBuilder.be32(isV6 ? v6 : 2)
                return (bigEndian ? bytes : bytes.reversed()) + ip
            }
            switch self {
            case .nullLittleEndianLinux: return family(10, bigEndian: false)
            case .nullBigEndianBSD: return family(24, bigEndian: true)
            case .nullFreeBSD: return family(28, bigEndian: false)
            case .nullDarwin: return family(30, bigEndian: false)
            case .loop: return family(24, bigEndian: true)
            case .rawLinktype101, .rawDLT12: return ip
            case .ethernetQinQ8021ad:
                var frame = FrameBuilder.ethernet(vlans: [30, 40], ip: ip)
                frame[12] = 0x88
                frame[13] = 0xA8
                return frame
            case .ethernetThreeTags: return FrameBuilder.ethernet(vlans: [1, 2, 3], ip: ip)
            // packet type, ARPHRD_ETHER, address length 6, address (8 bytes), protocol
            case .linuxSLL: return [0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0] + etherType + ip
            // protocol, reserved, interface index, ARPHRD_ETHER, packet type, address length, address (8 bytes)
            case .linuxSLL2: return etherType + [0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0] + ip
            }
        }
    }

    @Test(arguments: Framing.allCases)
    func everySupportedLinkTypeDecodes(framing: Framing) throws {
        let frames = Self.linkFrames(framing.wrap)
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("link.pcap")
        var w = PcapWriter(linkType: framing.linkType)
        for (i, f) in frames.enumerated() { w.append(f, timestamp: 1_700_000_000_000_000_000 + Int64(i) * 1_000_000) }
        try w.write(to: url)
        let result = try Pump.file(url)
        #expect(result.malformed == 0)
        #expect(result.nonIP == 0)
        #expect(result.bytes == UInt64(frames[0].count + frames[1].count))
        // No local networks: the lower port is the server's.
        #expect(result.flows == [
            .init(client: "10.1.1.1", direction: "in", service: "UDP/53"): Counts(packets: 1, bytes: UInt64(frames[0].count)),
            .init(client: "2001:db8::10", direction: "in", service: "UDP/123"): Counts(packets: 1, bytes: UInt64(frames[1].count)),
        ])
    }

    @Test(arguments: [(UInt32(228), "10.1.1.1", "UDP/53"), (UInt32(229), "2001:db8::10", "UDP/123")])
    func bareIPLinkTypesDecode(linkType: UInt32, client: String, service: String) throws {
        let frames = Self.linkFrames { $0 }
        let frame = linkType == 228 ? frames[0] : frames[1]
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("ip.pcap")
        var w = PcapWriter(linkType: linkType)
        w.append(frame, timestamp: 1_700_000_000_000_000_000)
        try w.write(to: url)
        let result = try Pump.file(url)
        #expect(result.flows == [.init(client: client, direction: "in", service: service): Counts(packets: 1, bytes: UInt64(frame.count))])
    }

    /// Real captures of both places trafficmon is put: an office machine asking a remote
    /// DNS server over TCP and UDP, an NTP client (with symmetric 123 <-> 123 packets,
    /// whose destination is the server side), and QUIC on loopback. Each (side, party,
    /// direction, service) holds exactly the frames tshark selects (manifest.json).
    @Test(arguments: try Fixtures.manifest().files.filter { $0.parties != nil })
    func partiesMatchTshark(_ entry: FixtureManifest.Entry) throws {
        let local = LocalNetworks(try (entry.localNet ?? []).map { try NetworkPrefix(parsing: $0) })
        let result = try Pump.file(try entry.url, configuration: .init(localNetworks: local))
        #expect(result.failure == nil)
        #expect(result.packets == entry.packets && result.bytes == entry.bytes)
        var counted: [String: Counts] = [:]
        for r in result.records {
            #expect(r.isConserved)
            for (side, parties) in [("client", r.clients), ("server", r.servers)] {
                for party in parties {
                    #expect(party.local == local.contains(party.ip), "\(party.ip)")
                    for s in party.services {
                        counted["\(side) \(party.ip) \(party.local) \(s.direction.label) \(s.service)", default: .zero]
                            .add(packets: s.packets, bytes: s.bytes)
                    }
                }
            }
        }
        var expected: [String: Counts] = [:]
        for p in entry.parties ?? [] {
            expected["\(p.side) \(p.ip) \(p.local) \(p.direction) \(p.service)", default: .zero].add(packets: p.packets, bytes: p.bytes)
        }
        #expect(counted == expected)
    }
}
