import Foundation
import Testing
import TrafficCapture
import TrafficCore
import TrafficTestSupport

/// Runs `body` and returns the `CaptureError` it threw, or `nil` if it threw nothing
/// (any other error is recorded as an issue).
func captureError(sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) -> CaptureError? {
    do {
        try body()
        return nil
    } catch let error as CaptureError {
        return error
    } catch {
        Issue.record("expected a CaptureError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// Hand-built frames with a known mix: the oracle is how they were built.
struct MixedFrames {
    static let client = IPAddress("198.51.100.7")!
    static let server = IPAddress("10.0.0.1")!
    static let client6 = IPAddress("2001:db8:1000::7")!
    static let server6 = IPAddress("2001:db8::1")!
    static let start: Int64 = 1_700_000_000 * 1_000_000_000

    struct Frame {
        var bytes: [UInt8]
        var timestamp: Int64
        var kind: String
    }

    var frames: [Frame] = []

    /// 20 TCP/443, 15 UDP/53 (10 over IPv4, 5 over IPv6), 5 ARP, 10 ICMP, over 12 s, timestamps in whole microseconds.
    init() {
        var t = Self.start + 123_000
        func next() -> Int64 { t += 240_000_000 + 7_000; return t }
        for i in 0..<20 {
            let payload = 10 * i
            let l4 = i % 2 == 0
                ? FrameBuilder.ports(40_000 + UInt16(i), 443, headerLength: 20, payload: payload)
                : FrameBuilder.ports(443, 40_000 + UInt16(i), headerLength: 20, payload: payload)
            let (src, dst) = i % 2 == 0 ? (Self.client, Self.server) : (Self.server, Self.client)
            frames.append(Frame(bytes: FrameBuilder.ethernet(ip: FrameBuilder.ipv4(src: src, dst: dst, proto: 6, payload: l4)), timestamp: next(), kind: "tcp"))
        }
        for i in 0..<15 {
            let l4 = FrameBuilder.ports(50_000 + UInt16(i), 53, payload: 30 + i)
            if i % 3 == 0 {
                let ip = FrameBuilder.ipv6(src: Self.client6, dst: Self.server6, proto: 17, payload: l4)
                frames.append(Frame(bytes: FrameBuilder.ethernet(ip: ip), timestamp: next(), kind: "udp6"))
            } else {
                let ip = FrameBuilder.ipv4(src: Self.client, dst: Self.server, proto: 17, payload: l4)
                frames.append(Frame(bytes: FrameBuilder.ethernet(ip: ip), timestamp: next(), kind: "udp"))
            }
        }
        for _ in 0..<5 {
            frames.append(Frame(bytes: FrameBuilder.arp, timestamp: next(), kind: "arp"))
        }
        for i in 0..<10 {
            let ip = FrameBuilder.ipv4(src: Self.client, dst: Self.server, proto: 1, payload: FrameBuilder.icmpEcho(payload: 8 * i))
            frames.append(Frame(bytes: FrameBuilder.ethernet(ip: ip), timestamp: next(), kind: "icmp"))
        }
        frames.sort { $0.timestamp < $1.timestamp }
    }

    func counts(of kinds: Set<String>) -> Counts {
        frames.filter { kinds.contains($0.kind) }.reduce(Counts()) { $0 + Counts(packets: 1, bytes: UInt64($1.bytes.count)) }
    }

    func writer(_ format: PcapWriter.Format) -> PcapWriter {
        var w = PcapWriter(linkType: 1, format: format)
        for f in frames { w.append(f.bytes, timestamp: f.timestamp) }
        return w
    }

    func write(_ format: PcapWriter.Format, to url: URL) throws {
        try writer(format).write(to: url)
    }
}

@Suite struct ErrorTests {
    @Test func unsupportedLinkTypeFixtureIsRefusedByName() throws {
        let entry = try #require(try Fixtures.entries(outcome: "unsupported_link_type").first)
        let path = try entry.url.path
        let error = captureError { _ = try PacketSource.openFile(path) }
        guard case .unsupportedLinkType(let source, let name, let number)? = error else {
            Issue.record("expected unsupportedLinkType, got \(String(describing: error))")
            return
        }
        #expect(name == entry.linkType)
        #expect(number == 127)
        #expect(source.contains(path))
        #expect(error!.description.contains(entry.linkType))
        #expect(error!.description.contains(path))
    }

    /// Link types written by the test. The names are libpcap's, as `tcpdump -r` prints them
    /// ("link-type IEEE802_11 (802.11)"); libpcap 1.10 has no name for 147 (USER0), so there
    /// the message must at least give the number.
    @Test(arguments: [(UInt32(105), "IEEE802_11"), (UInt32(9), "PPP"), (UInt32(147), nil)] as [(UInt32, String?)])
    func unsupportedLinkTypeWrittenByTheTest(linkType: UInt32, name: String?) throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("link.pcap")
        var w = PcapWriter(linkType: linkType)
        w.append([UInt8](repeating: 0x11, count: 60), timestamp: MixedFrames.start)
        try w.write(to: url)
        let error = captureError { _ = try PacketSource.openFile(url.path) }
        guard case .unsupportedLinkType(let source, let reported, let number)? = error else {
            Issue.record("expected unsupportedLinkType, got \(String(describing: error))")
            return
        }
        #expect(number == Int32(linkType))
        #expect(source == "capture file \(url.path)")
        if let name {
            #expect(reported == name)
            #expect(error!.description.contains(name))
        }
        // The number is always named: "IEEE802_11_RADIO (127)", or "147" when libpcap has no name.
        #expect(error!.description.contains(name == nil ? "link type \(linkType)," : "(\(linkType))"))
    }

    @Test func truncatedFixtureFailsAfterTheFramesBeforeTheCut() throws {
        let entry = try #require(try Fixtures.entries(outcome: "read_failed").first)
        let result = try Pump.file(try entry.url)
        guard case .readFailed(let path, let reason)? = result.failure else {
            Issue.record("expected readFailed, got \(String(describing: result.failure))")
            return
        }
        #expect(path == (try entry.url.path))
        #expect(!reason.isEmpty)
        #expect(result.framesRead == entry.packets)
        #expect(result.packets == entry.packets)
        #expect(result.bytes == entry.bytes)
        expectWellFormed(result.records, windowLength: 5_000_000_000)
    }

    /// A capture written by the test, cut in the middle of record `k`: exactly the `k - 1`
    /// records before it are counted, then `drain()` throws `.readFailed`.
    @Test(arguments: [PcapWriter.Format.pcapMicro, .pcapNano, .pcapng])
    func truncatedWrittenFileFailsAfterTheFramesBeforeTheCut(format: PcapWriter.Format) throws {
        let frames = MixedFrames()
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("cut")
        // Where record 31 starts and ends: write 30 and 31 frames and compare the sizes.
        var head = PcapWriter(linkType: 1, format: format)
        for f in frames.frames.prefix(30) { head.append(f.bytes, timestamp: f.timestamp) }
        let before = head.data.count
        head.append(frames.frames[30].bytes, timestamp: frames.frames[30].timestamp)
        let after = head.data.count
        let full = frames.writer(format).data
        try Data(full.prefix((before + after) / 2)).write(to: url)

        let result = try Pump.file(url)
        guard case .readFailed? = result.failure else {
            Issue.record("expected readFailed, got \(String(describing: result.failure))")
            return
        }
        let expected = frames.frames.prefix(30).reduce(Counts()) { $0 + Counts(packets: 1, bytes: UInt64($1.bytes.count)) }
        #expect(Counts(packets: result.packets, bytes: result.bytes) == expected)
        #expect(result.framesRead == 30)
    }

    @Test func nonexistentFileIsUnreadable() {
        let path = "/nonexistent-\(UUID().uuidString).pcap"
        let error = captureError { _ = try PacketSource.openFile(path) }
        guard case .unreadableFile(let p, let reason)? = error else {
            Issue.record("expected unreadableFile, got \(String(describing: error))")
            return
        }
        #expect(p == path)
        #expect(reason.localizedCaseInsensitiveContains("no such file"))
    }

    @Test func directoryIsUnreadable() throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let error = captureError { _ = try PacketSource.openFile(dir.path) }
        guard case .unreadableFile(let p, _)? = error else {
            Issue.record("expected unreadableFile, got \(String(describing: error))")
            return
        }
        #expect(p == dir.path)
    }

    @Test(arguments: [
        ("text", Array("this is not a capture file, just some text\nsecond line\n".utf8)),
        ("empty", []),
        ("short-header", [0xD4, 0xC3, 0xB2, 0xA1, 0x02, 0x00, 0x04, 0x00]),
        ("zeros", [UInt8](repeating: 0, count: 4096)),
    ])
    func nonCaptureFileIsUnreadable(name: String, contents: [UInt8]) throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent(name)
        try Data(contents).write(to: url)
        let error = captureError { _ = try PacketSource.openFile(url.path) }
        guard case .unreadableFile(let p, let reason)? = error else {
            Issue.record("expected unreadableFile for \(name), got \(String(describing: error))")
            return
        }
        #expect(p == url.path)
        #expect(!reason.isEmpty)
        #expect(!error!.description.contains("\n"))
    }

    @Test(arguments: ["udp port", "bogus and", "tcp port 99999", "ip proto nosuch", "((("])
    func badFilterIsRefused(filter: String) throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("m.pcap")
        try MixedFrames().write(.pcapMicro, to: url)
        let error = captureError { _ = try PacketSource.openFile(url.path, filter: filter) }
        guard case .badFilter(let f, let reason)? = error else {
            Issue.record("expected badFilter for '\(filter)', got \(String(describing: error))")
            return
        }
        #expect(f == filter)
        #expect(!reason.isEmpty)
        #expect(error!.description.contains(filter))
    }

    @Test(arguments: [
        ("udp", Set(["udp", "udp6"])),
        ("tcp port 443", Set(["tcp"])),
        ("arp or icmp", Set(["arp", "icmp"])),
        ("ip6", Set(["udp6"])),
        ("udp and ip", Set(["udp"])),
        ("tcp port 80", Set<String>()),
    ])
    func goodFilterCountsOnlyMatchingPackets(filter: String, kinds: Set<String>) throws {
        let frames = MixedFrames()
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("m.pcap")
        try frames.write(.pcapMicro, to: url)
        let result = try Pump.file(url, filter: filter)
        #expect(result.failure == nil)
        let expected = frames.counts(of: kinds)
        #expect(expected.packets > 0 || kinds.isEmpty)
        #expect(Counts(packets: result.packets, bytes: result.bytes) == expected, "filter '\(filter)'")
        if kinds.isSubset(of: ["udp", "udp6"]) {
            #expect(Set(result.services.keys) == (kinds.isEmpty ? [] : ["UDP/53"]))
        }
        expectWellFormed(result.records, windowLength: 5_000_000_000)
    }

    @Test func microNanoAndPcapngGiveIdenticalRecords() throws {
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let traffic = SyntheticTraffic(packets: 3_000, clients: 60, seconds: 20, seed: 11)
        // Whole-microsecond timestamps, so that the microsecond file loses nothing.
        var results: [PcapWriter.Format: PumpResult] = [:]
        for format in [PcapWriter.Format.pcapMicro, .pcapNano, .pcapng] {
            var w = PcapWriter(linkType: 1, format: format)
            for f in traffic.frames { w.append(f.bytes, timestamp: f.timestamp / 1000 * 1000, wireLength: f.wireLength) }
            let url = dir.appendingPathComponent("t-\(format)")
            try w.write(to: url)
            let local = LocalNetworks(try SyntheticTraffic.localNetworks.map { try NetworkPrefix(parsing: $0) })
            results[format] = try Pump.file(url, configuration: .init(windowLength: 1_000_000_000, localNetworks: local))
        }
        let micro = try #require(results[.pcapMicro]), nano = try #require(results[.pcapNano]), ng = try #require(results[.pcapng])
        #expect(micro.records.count > 10)
        #expect(micro.packets == UInt64(traffic.frames.count))
        #expect(micro.records == nano.records)
        #expect(micro.records == ng.records)
    }

    @Test func subsecondTimestampsPickTheRightWindow() throws {
        // One frame just before and one just after a 1 s boundary, 1 µs apart: the
        // microsecond, nanosecond and pcapng files must all split them.
        let boundary: Int64 = 1_700_000_001 * 1_000_000_000
        let frame = FrameBuilder.ethernet(ip: FrameBuilder.ipv4(
            src: MixedFrames.client, dst: MixedFrames.server, proto: 17, payload: FrameBuilder.ports(5000, 53)))
        let dir = try TestProcess.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for format in [PcapWriter.Format.pcapMicro, .pcapNano, .pcapng] {
            var w = PcapWriter(linkType: 1, format: format)
            w.append(frame, timestamp: boundary - 1_000)
            w.append(frame, timestamp: boundary)
            w.append(frame, timestamp: boundary + 999_999_000)
            let url = dir.appendingPathComponent("b-\(format)")
            try w.write(to: url)
            let records = try Pump.file(url, configuration: .init(windowLength: 1_000_000_000)).records
            #expect(records.map(\.start) == [boundary - 1_000_000_000, boundary], "\(format)")
            #expect(records.map(\.packets) == [1, 2], "\(format)")
        }
    }
}
