import Testing
@testable import TrafficCore
import TrafficTestSupport

@Suite("PacketDecoder: random and mutated input")
struct DecoderFuzzTests {
    static let links: [LinkType] = LinkType.supported

    static func checkInvariants(_ p: DecodedPacket, _ context: @autoclosure () -> String) -> Bool {
        switch p.kind {
        case .ip:
            let wantsPorts = Service.hasPorts(p.ipProtocol) && !p.isLaterFragment
            // An IP packet has ports exactly when its protocol has them and it is a first fragment.
            guard p.hasPorts == wantsPorts else {
                Issue.record("\(context()): hasPorts \(p.hasPorts) for \(describe(p))")
                return false
            }
            if !p.hasPorts && (p.sourcePort != 0 || p.destinationPort != 0) {
                Issue.record("\(context()): ports without hasPorts: \(describe(p))")
                return false
            }
        case .nonIP, .malformed:
            if p.hasPorts || p.isLaterFragment {
                Issue.record("\(context()): a \(describe(p)) carries transport fields")
                return false
            }
        }
        return true
    }

    @Test(arguments: links)
    func randomBytesNeverCrash(_ link: LinkType) {
        var rng = SplitMix64(seed: UInt64(bitPattern: Int64(link.rawValue)) &+ 77)
        var kinds = [0, 0, 0]
        for _ in 0..<2000 {
            let length = Int(rng.next() % 120)
            var bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            // Steer the first bytes towards the valid ones so the deeper layers are reached too.
            if length > 0 && rng.next() % 2 == 0 {
                bytes[0] = [0x45, 0x46, 0x4F, 0x60, 0x00, 0x02][Int(rng.next() % 6)]
            }
            let p = decodeExact(bytes, link: link)
            kinds[Int(p.kind.rawValue)] += 1
            if !Self.checkInvariants(p, "random \(bytes)") { return }
        }
        #expect(kinds.reduce(0, +) == 2000)
    }

    @Test func mutatedFramesNeverCrash() {
        let seeds: [(LinkType, [UInt8])] = TruncationTests.cases.map { ($0.link, $0.frame) }
        var rng = SplitMix64(seed: 2026)
        for round in 0..<6000 {
            let (link, original) = seeds[round % seeds.count]
            var frame = original
            for _ in 0..<(1 + Int(rng.next() % 4)) where !frame.isEmpty {
                frame[Int(rng.next() % UInt64(frame.count))] = UInt8(truncatingIfNeeded: rng.next())
            }
            frame = Array(frame.prefix(Int(rng.next() % UInt64(frame.count + 1))))
            let p = decodeExact(frame, link: link)
            if !Self.checkInvariants(p, "mutated \(link) \(frame)") { return }
            // Bytes past what was read cannot change an IP answer (but what was cut off can
            // now be read: an ICMP type byte saying "reply", TCP flags, a DNS message).
            if p.kind == .ip {
                var longer = decodeExact(frame + [0xFF, 0x00, 0xAA, 0x55, 0x86, 0xDD, 0x08, 0x00], link: link)
                if !p.isReply { longer.isReply = false }
                if p.tcpFlags == TCPFlags.unknown.rawValue { longer.tcpFlags = p.tcpFlags }
                if DNSFacts(rawValue: p.dns).kind == .cut { longer.dns = p.dns }
                #expect(longer == p, "appending bytes changed \(describe(p)) to \(describe(longer))")
            }
        }
    }

    @Test func decodingIsDeterministicAndReadsOnlyTheBuffer() {
        // The same bytes at two different addresses (one followed by IP-looking garbage) decode alike.
        let frame = FrameBuilder.ethernet(ip: TruncationTests.tcp4()).prefix(30)
        let exact = decodeExact(frame, link: .ethernet)
        let padded = Array(frame) + TruncationTests.tcp4()
        let prefixed = padded.withUnsafeBytes { raw in
            PacketDecoder(linkType: .ethernet)!.decode(UnsafeRawBufferPointer(rebasing: raw[0..<frame.count]))
        }
        #expect(exact == prefixed)
        expectDecoded(exact, .malformed(.truncatedIP))
    }
}
